"""Make a synthetic, deterministic en/de/ja JSONL corpus of a given size from real Tatoeba sentences.

A *row* is one concept in one language, so ``--rows N`` writes ``ceil(N / 3)`` records, each with
``concept_id``, ``en``, ``de`` and ``ja``. Each concept joins two to four Tatoeba sentences picked by
a seeded RNG, the same sentences in every language, so concepts are distinct, real text in the right
language. On top of that:

* about 3% of the records are **exact duplicates** of an earlier record (same texts, new id);
* about 2% are **near duplicates** of an earlier record of at least ``NEAR_MIN_CHARS`` English
  characters: one letter of the English text (and of the German one) replaced by another letter,
  which keeps the character 5-gram Jaccard similarity around 0.9 (above the 0.8 dedup threshold).

Records that happen to combine the same sentences add more duplicates, as a real corpus would; with
a few thousand source sentences their share grows with the corpus (about 6% of the records at 1M
concepts, 15% at 10M), and with it the work of deduplication. With ``--distinct`` a fresh record never
reuses the set of sentences of an earlier one (it is drawn again), so the duplicates that differ in
nothing but order or repetition are the planted ones and their share stays the same at any size
(``bench/bench_scale.py --corpus distinct`` uses it).

Concepts still share sentences, and pairs of concepts sharing two or three of theirs (near-duplicate
*candidates* for dedup) grow with the square of the corpus, since a few thousand sentences are all
there is to draw from. With ``--shuffle-words`` each fresh record's English and German words are put
in a random order of their own (across its sentences; Japanese is left as drawn, dedup does not read
it), so records that draw the same sentences share their words but hardly any character 5-gram that
spans two words: dedup's work is then almost only the planted duplicates (95% of the near duplicates
found at 10M concepts), about the same share at any size, and the
text per record has the same distribution at any size (every record is drawn the same way). The text
is word salad in the right language, which is all the non-model pipeline needs
(``bench/bench_scale.py``'s default).
Same ``--seed``, same source file, same ``--rows``: the same bytes. A JSON file next to the corpus
(``NAME.meta.json``) records how many were planted, and a TSV file (``NAME.planted.tsv``, columns
``copy``, ``original``, ``kind``) which: the 0-based record index of each planted duplicate, the index of
the record it copies and ``exact_duplicate`` or ``near_duplicate`` (record ``i`` has concept id
``bench.SEED.i``, zero-padded to 7 digits).

Usage::

    python bench/make_corpus.py --rows 1000000 --seed 0 -o bench/_work/corpus-1000000.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import string
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
SOURCES = (
    REPO.parent / "shared" / "data" / "parallel" / "tatoeba_en_de_ja.dev.jsonl",
    REPO / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl",
)
LANGS = ("en", "de", "ja")
JOINERS = {"en": " ", "de": " ", "ja": ""}
EXACT_SHARE = 0.03
NEAR_SHARE = 0.02
NEAR_MIN_CHARS = 100  # one changed letter in 100+ chars keeps 5-gram Jaccard >= ~0.9
SENTENCES_PER_CONCEPT = ((2, 0.5), (3, 0.4), (4, 0.1))  # (count, probability)
WARMUP = 1000  # the first records are always fresh, so duplicates have something to copy


def default_source() -> Path:
    for p in SOURCES:
        if p.exists():
            return p
    raise FileNotFoundError(f"no Tatoeba source found; looked at {', '.join(map(str, SOURCES))}")


def load_sentences(path: Path) -> list[tuple[str, str, str]]:
    """Unique (en, de, ja) triples with text in all three languages, in file order."""
    seen: set[str] = set()
    out: list[tuple[str, str, str]] = []
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = orjson.loads(line)
            texts = tuple(rec.get(lang) for lang in LANGS)
            if all(isinstance(t, str) and t.strip() for t in texts) and texts[0] not in seen:
                seen.add(texts[0])
                out.append(texts)  # type: ignore[arg-type]
    if len(out) < 100:
        raise ValueError(f"{path}: only {len(out)} usable en/de/ja sentences")
    return out


def _edit_letter(text: str, rng: random.Random) -> str:
    """Replace one ASCII letter by a different letter (never only a case change: dedup casefolds)."""
    positions = [i for i, c in enumerate(text) if c in string.ascii_letters]
    if not positions:
        return text + " x"
    i = rng.choice(positions)
    old = text[i].lower()
    new = rng.choice([c for c in string.ascii_lowercase if c != old])
    return text[:i] + (new.upper() if text[i].isupper() else new) + text[i + 1 :]


def _shuffle_words(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    rng.shuffle(words)
    return " ".join(words)


def make_corpus(
    rows: int, out: Path, seed: int = 0, source: Path | None = None, distinct: bool = False, shuffle_words: bool = False
) -> dict:
    """Write the corpus to ``out`` (atomically) and return what was planted."""
    source = source or default_source()
    sents = load_sentences(source)
    rng = random.Random(seed)
    n_records = math.ceil(rows / len(LANGS))
    counts, weights = zip(*SENTENCES_PER_CONCEPT, strict=True)
    records: list[tuple[str, str, str]] = []  # texts of every record so far, for duplicates
    long_records: list[int] = []  # indices of records whose English text is long enough to near-duplicate
    planted = {"fresh": 0, "exact_duplicate": 0, "near_duplicate": 0}
    drawn: set[int] = set()  # hashes of the sentence sets of fresh records so far
    redrawn = 0
    pairs: list[tuple[int, int, str]] = []  # (copy, original, kind): which records were planted
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        buf: list[bytes] = []
        for i in range(n_records):
            r = rng.random()
            if i >= WARMUP and r < EXACT_SHARE:
                original = rng.randrange(len(records))
                texts = records[original]
                planted["exact_duplicate"] += 1
                pairs.append((i, original, "exact_duplicate"))
            elif i >= WARMUP and r < EXACT_SHARE + NEAR_SHARE and long_records:
                original = long_records[rng.randrange(len(long_records))]
                en, de, ja = records[original]
                texts = (_edit_letter(en, rng), _edit_letter(de, rng), ja)
                planted["near_duplicate"] += 1
                pairs.append((i, original, "near_duplicate"))
            else:
                while True:
                    k = rng.choices(counts, weights)[0]
                    idx = [rng.randrange(len(sents)) for _ in range(k)]
                    key = hash(frozenset(idx))
                    if not distinct or key not in drawn:
                        break
                    redrawn += 1
                if distinct:
                    drawn.add(key)
                picked = [sents[j] for j in idx]
                texts = tuple(JOINERS[lang].join(s[j] for s in picked) for j, lang in enumerate(LANGS))  # type: ignore[assignment]
                if shuffle_words:
                    texts = (_shuffle_words(texts[0], rng), _shuffle_words(texts[1], rng), texts[2])
                planted["fresh"] += 1
            if len(texts[0]) >= NEAR_MIN_CHARS:
                long_records.append(len(records))
            records.append(texts)
            rec = {"concept_id": f"bench.{seed}.{i:07d}", "en": texts[0], "de": texts[1], "ja": texts[2]}
            buf.append(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
            if len(buf) >= 10_000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    os.replace(tmp, out)
    truth = out.with_name(out.name + ".planted.tsv")
    truth.write_text("copy\toriginal\tkind\n" + "".join(f"{c}\t{o}\t{k}\n" for c, o, k in pairs))
    meta = {
        "rows": n_records * len(LANGS),
        "records": n_records,
        "seed": seed,
        "source": str(source),
        "source_sentences": len(sents),
        "planted": planted,
        "distinct": distinct,
        "shuffle_words": shuffle_words,
        "redrawn": redrawn,
        "planted_pairs": truth.name,
        "bytes": out.stat().st_size,
    }
    out.with_name(out.name + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, required=True, help="rows (concepts x 3 languages) to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", type=Path, default=None, help="Tatoeba en/de/ja JSONL (default: shared copy, else bundled)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--distinct", action="store_true", help="no fresh record repeats an earlier one's set of sentences")
    ap.add_argument(
        "--shuffle-words", action="store_true", help="each fresh record's en and de words in a random order of their own"
    )
    args = ap.parse_args()
    start = time.perf_counter()
    meta = make_corpus(args.rows, args.output, args.seed, args.source, args.distinct, args.shuffle_words)
    print(json.dumps({**meta, "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
