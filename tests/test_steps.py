"""Unit tests of the steps on small hand-made batches, and of the configuration."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from corpusalign.config import BuildConfig, ConfigError, NormaliseConfig, config_from_dict, load_config
from corpusalign.stats import StepStats
from corpusalign.steps import duplicates
from corpusalign.steps.base import BATCH_COLUMNS
from corpusalign.steps.dedup import DedupSignatureStep, jaccard, similar_pairs
from corpusalign.steps.duplicates import find_duplicates
from corpusalign.steps.langid import LanguageIdStep
from corpusalign.steps.normalise import NormaliseStep
from corpusalign.steps.select import SelectStep
from corpusalign.store.schema import TEXT_FIELDS

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
BATCH_SCHEMA = {c: pl.String for c in BATCH_COLUMNS} | {"_seq": pl.UInt64, "source_line": pl.Int64}


def make_batch(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A reader-shaped batch: every column of BATCH_COLUMNS, defaults for what a row leaves out."""
    full = []
    for i, r in enumerate(rows):
        row: dict[str, Any] = {c: None for c in BATCH_COLUMNS}
        row.update(_seq=i, concept_id=f"c{i}", lang="en", origin="source", source_file="in.jsonl", source_line=i + 1)
        row.update(r)
        full.append(row)
    return pl.DataFrame(full, schema=BATCH_SCHEMA)


# ----------------------------------------------------------------------------------------- normalise
def test_normalise_rules_and_original() -> None:
    batch = make_batch(
        [
            {"text": "Cafe\u0301  x\t\ty\r\n"},  # NFD, tabs, CRLF
            {"text": "Already clean."},
            {"text": "a\x00b\u200bc\ufeff d\x07"},  # control characters, zero-width space, BOM
            {"text": "  line one  \n\n\n\n  line two\u3000\u00a0end "},  # blank lines, exotic spaces
            {"text": None, "prompt": "Say  hi", "response": "Hi."},
            {"text": None},
        ]
    )
    out = NormaliseStep(NormaliseConfig()).process(batch, StepStats())
    assert out["text"].to_list() == ["Café x y", "Already clean.", "abc d", "line one\n\nline two end", None, None]
    assert out["text"][0] == "Caf\u00e9 x y"  # composed: one code point
    assert out["prompt"][4] == "Say hi" and out["response"][4] == "Hi."
    original = out["original"].to_list()
    assert original[0] == {f: ("Cafe\u0301  x\t\ty\r\n" if f == "text" else None) for f in TEXT_FIELDS}
    assert original[1] is None, "unchanged text keeps no original"
    assert original[2]["text"] == "a\x00b\u200bc\ufeff d\x07"
    assert original[4] == {f: ("Say  hi" if f == "prompt" else None) for f in TEXT_FIELDS}
    assert original[5] is None
    # nothing else is touched and no row is dropped
    assert out.height == batch.height
    assert out.select(c for c in BATCH_COLUMNS if c not in TEXT_FIELDS).equals(
        batch.select(c for c in BATCH_COLUMNS if c not in TEXT_FIELDS)
    )


def test_normalise_options() -> None:
    batch = make_batch([{"text": "ﬁne\t\tx\x07"}])  # "fi" ligature
    keep = NormaliseStep(NormaliseConfig(collapse_whitespace=False, strip_control=False)).process(batch, StepStats())
    assert keep["text"][0] == "ﬁne\t\tx\x07"
    nfkc = NormaliseStep(NormaliseConfig(form="NFKC")).process(batch, StepStats())
    assert nfkc["text"][0] == "fine x"


def test_normalise_empty_batch() -> None:
    """A batch whose records were all quarantined has no rows; the step must still work."""
    out = NormaliseStep(NormaliseConfig()).process(make_batch([]), StepStats())
    assert out.height == 0 and "original" in out.columns


# ------------------------------------------------------------------------------------------ langid
SENTENCES = {
    "de": "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
    "ja": "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。",
    "sw": "Kila mtu ana haki ya kuishi, haki ya uhuru, na haki ya kulindwa nafsi yake.",
    "en": "All human beings are born free and equal in dignity and rights.",
}


@pytest.fixture(scope="module")
def lid() -> LanguageIdStep:
    step = LanguageIdStep(BuildConfig(src="en", tgt=("de", "ja", "sw")))
    step.setup()
    return step


def test_language_id(lid: LanguageIdStep) -> None:
    rows = [{"lang": lang, "text": text} for lang, text in SENTENCES.items()] + [{"lang": "de", "text": ""}, {"lang": "ja"}]
    stats = StepStats()
    out = lid.process(make_batch(rows), stats)
    assert out["lid_lang"].to_list() == ["de", "ja", "sw", "en", None, None]
    scores = out["lid_score"].to_list()
    assert all(0.5 < s <= 1.0 for s in scores[:4])
    assert scores[4] is None and scores[5] is None
    assert out["lid_score"].dtype == pl.Float32
    assert stats.counters["identified"] == 4 and stats.counters["agrees_with_lang"] == 4


def test_language_id_of_several_fields() -> None:
    step = LanguageIdStep(BuildConfig(src="en", tgt=("de",), fields=("prompt", "response")))
    rows = [{"lang": "de", "prompt": "Wie spät ist es jetzt in Berlin?", "response": "Es ist genau drei Uhr nachmittags."}]
    assert step.process(make_batch(rows), StepStats())["lid_lang"].to_list() == ["de"]


# ------------------------------------------------------------------------------------------- dedup
LONG = (
    "Everyone has the right to freedom of thought, conscience and religion; this right includes freedom "
    "to change his religion or belief, and freedom, either alone or in community with others."
)
OTHER_LONG = (
    "Everyone has the right to rest and leisure, including reasonable limitation of working hours and "
    "periodic holidays with pay, and to a standard of living adequate for health."
)


def _find(batch: pl.DataFrame, cfg: BuildConfig, parts: int | None = None) -> pl.DataFrame:
    """find_duplicates over ``batch`` staged as one file, as a build stages it."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "part-000000.parquet"
        batch.write_parquet(staged)
        return find_duplicates([staged], cfg, Path(tmp) / "dedup", parts=parts)


def _duplicates(texts: list[str], cfg: BuildConfig | None = None, ids: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """{concept_id: (dup_of, dup_kind)} for source rows with ``texts`` (each concept also has a de row)."""
    cfg = cfg or BuildConfig(src="en", tgt=("de",))
    ids = ids or [f"c{i}" for i in range(len(texts))]
    rows = []
    for i, (cid, t) in enumerate(zip(ids, texts, strict=True)):
        rows.append({"_seq": i, "concept_id": cid, "lang": "en", "text": t})
        rows.append({"_seq": i, "concept_id": cid, "lang": "de", "text": "Etwas anderes.", "origin": "human"})
    batch = DedupSignatureStep(cfg).process(make_batch(rows), StepStats())
    assert batch.filter(pl.col("lang") == "de")["dedup_key"].null_count() == len(texts), "only source rows are signed"
    dups = _find(batch, cfg)
    id_of = dict(zip(range(len(ids)), ids, strict=True))
    return {id_of[s]: (d, k) for s, d, k in dups.iter_rows()}


def test_jaccard_of_character_ngrams() -> None:
    """|A & B| / |A | B| over the sets of character n-grams; a text of n characters or fewer is one n-gram."""
    import random

    def reference(a: str, b: str, n: int) -> float:
        grams = [{t[i : i + n] for i in range(len(t) - n + 1)} if len(t) > n else {t} for t in (a, b)]
        return len(grams[0] & grams[1]) / len(grams[0] | grams[1])

    assert jaccard("abcdef", "abcdef", 5) == 1.0
    assert jaccard("abcdefg", "abcdexg", 5) == 0.2  # {abcde, bcdef, cdefg} vs {abcde, bcdex, cdexg}: 1 / 5
    rng = random.Random(1)
    for _ in range(5000):
        a, b = ("".join(rng.choice("ab c") for _ in range(rng.randint(0, 14))) for _ in range(2))
        assert jaccard(a, b, 5) == reference(a, b, 5), (a, b)


def test_exact_duplicates_point_to_first_concept() -> None:
    texts = ["The cat sat on the mat.", "A different sentence.", "the cat  sat on the MAT.", "The cat sat on the mat."]
    assert _duplicates(texts) == {"c2": ("c0", "duplicate"), "c3": ("c0", "duplicate")}


def test_near_duplicates_of_long_texts() -> None:
    edited = LONG.replace("thought", "thoughts").replace("others.", "others!")
    assert edited != LONG
    found = _duplicates([OTHER_LONG, LONG, edited, LONG.replace("religion", "faith")])
    assert found["c2"] == ("c1", "near_duplicate")
    assert "c0" not in found and "c1" not in found


def test_different_texts_left_alone() -> None:
    assert _duplicates([LONG, OTHER_LONG, "He can't swim.", "She can't swim.", "Short."]) == {}


def test_short_texts_only_exact() -> None:
    cfg = load_config(None, src="en", tgt=("de",), dedup__threshold=0.3)
    a, b = "He can't swim today, sadly.", "She can't swim today, sadly."
    assert len(b) < cfg.dedup.near_min_chars
    assert _duplicates([a, b], cfg) == {}
    # the same edit on texts over near_min_chars is found at this threshold
    pad = " The river was far too cold for anyone in the village."
    assert _duplicates([a + pad, b + pad], cfg) == {"c1": ("c0", "near_duplicate")}
    # and exact duplicates of short texts are still found
    assert _duplicates([a, a], cfg) == {"c1": ("c0", "duplicate")}


def test_same_id_other_text_is_duplicate_id() -> None:
    cfg = BuildConfig(src="en", tgt=("de",))
    texts = ["First text.", "Second text.", "First text."]
    rows = [{"_seq": i, "concept_id": "x", "lang": "en", "text": t} for i, t in enumerate(texts)]
    batch = DedupSignatureStep(cfg).process(make_batch(rows), StepStats())
    dups = _find(batch, cfg)
    assert dups.rows() == [(1, "x", "duplicate_id"), (2, "x", "duplicate")]


def _reference_duplicates(rows: pl.DataFrame, cfg: BuildConfig) -> dict[int, tuple[str, str]]:
    """Stage 2 in plain Python over the whole corpus at once: the rule find_duplicates distributes."""
    from corpusalign.steps.dedup import jaccard

    src = rows.filter(pl.col("lang") == cfg.src).sort("_seq")
    seq, cid, key, bands = (src[c].to_list() for c in ("_seq", "concept_id", "dedup_key", "lsh_bands"))
    text = src.select(
        pl.concat_str([pl.col(f).fill_null("") for f in cfg.fields], separator="\x1f")
        .str.to_lowercase()
        .str.replace_all(r"\s+", " ")
    )[:, 0].to_list()
    out: dict[int, tuple[str, str]] = {}

    def groups(items: list[tuple[Any, int]]) -> dict[Any, list[int]]:
        g: dict[Any, list[int]] = {}
        for k, i in items:
            g.setdefault(k, []).append(i)
        return {k: v for k, v in g.items() if len(v) > 1}

    for members in groups([(cid[i], i) for i in range(len(seq))]).values():
        first = min(members, key=lambda i: seq[i])
        for i in members:
            if i != first:
                out[seq[i]] = (cid[i], "duplicate" if key[i] is not None and key[i] == key[first] else "duplicate_id")
    for members in groups([(key[i], i) for i in range(len(seq)) if key[i] is not None and seq[i] not in out]).values():
        first = min(members, key=lambda i: seq[i])
        out.update({seq[i]: (cid[first], "duplicate") for i in members if i != first})
    left = [i for i in range(len(seq)) if bands[i] is not None and seq[i] not in out]
    parent = {i: i for i in left}

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for b in range(cfg.dedup.bands):
        for members in groups([(bands[i][b], i) for i in left]).values():
            first = min(members, key=lambda i: seq[i])
            for i in members:
                if i != first and jaccard(text[first], text[i], cfg.dedup.ngram) >= cfg.dedup.threshold:
                    ra, rb = find(first), find(i)
                    parent[max(ra, rb, key=lambda j: seq[j])] = min(ra, rb, key=lambda j: seq[j])
    out.update({seq[i]: (cid[find(i)], "near_duplicate") for i in left if find(i) != i})
    return out


def test_find_duplicates_equals_one_pass_over_the_corpus_for_any_partitioning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staged in several files and run in 1, 3 or 7 partitions: the same groups and representatives
    as the plain one-pass rule, with planted same-id, exact, chained-near and cross-file duplicates;
    and one shuffle file per unit and kind, however many partitions."""
    rng = random.Random(7)
    words = "right freedom thought conscience religion belief community others rest leisure hours pay".split()
    cfg = load_config(None, src="en", tgt=("de",), dedup__threshold=0.6)
    base = [" ".join(rng.choice(words) for _ in range(14)) + f" number {i}." for i in range(60)]
    texts: list[str] = []
    ids: list[str] = []
    for i in range(240):
        r = rng.random()
        if r < 0.15 and texts:
            t = rng.choice(texts).upper()  # an exact duplicate after casefolding
        elif r < 0.35:
            t = rng.choice(base).replace(rng.choice(words), rng.choice(words), 1) + "!"  # a near duplicate
        elif r < 0.42:
            t = "Short one."  # exact duplicates of a short text
        else:
            t = rng.choice(base) if rng.random() < 0.3 else " ".join(rng.choice(words) for _ in range(12)) + f" {i}."
        texts.append(t)
        ids.append(f"c{rng.randrange(6)}" if rng.random() < 0.05 else f"k{i}")
    rows = []
    for i, (cid, t) in enumerate(zip(ids, texts, strict=True)):
        rows.append({"_seq": i, "concept_id": cid, "lang": "en", "text": t})
        rows.append({"_seq": i, "concept_id": cid, "lang": "de", "text": "Etwas.", "origin": "human"})
    signed = DedupSignatureStep(cfg).process(make_batch(rows), StepStats())
    staged = []
    for k, lo in enumerate(range(0, signed.height, 90)):
        staged.append(tmp_path / f"part-{k:06d}.parquet")
        signed.slice(lo, 90).write_parquet(staged[-1])
    want = _reference_duplicates(signed, cfg)
    assert {k for _, k in want.values()} == {"duplicate", "duplicate_id", "near_duplicate"}, "every kind is planted"
    written: list[Path] = []
    real_write = duplicates.write_pieces
    monkeypatch.setattr(
        duplicates, "write_pieces", lambda pieces, path, schema: written.append(path) or real_write(pieces, path, schema)
    )
    for parts in (1, 3, 7):
        stats = StepStats()
        written.clear()
        got = find_duplicates(staged, cfg, tmp_path / "dedup", parts=parts, stats=stats)
        assert {s: (d, k) for s, d, k in got.iter_rows()} == want, parts
        map_units = len(duplicates._map_groups([min(90, signed.height - lo) for lo in range(0, signed.height, 90)], 2))
        assert len(written) == len(set(written)) == 4 * map_units + 2 * parts, (
            "ids, exact, texts, bands per map unit; pairs twice"
        )
        assert got["_seq"].is_sorted()
        assert stats.rows == 240 and stats.counters["near_duplicate"] == sum(k == "near_duplicate" for _, k in want.values())
        assert not (tmp_path / "dedup").exists(), "the partition files are removed"


def test_similar_pairs_answers_as_jaccard_does() -> None:
    """The batched confirm (one set per run of equal first texts, a size bound before intersecting)
    gives exactly ``jaccard >= threshold``, at the threshold itself too."""
    rng = random.Random(3)
    words = "tom mary is still asleep here now the cat dog sat on mat".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 12))) for _ in range(60)] + ["", "abc", "aaaaaaaaaa"]
    pairs = sorted((rng.choice(texts), rng.choice(texts)) for _ in range(3000))
    pairs += [("abcdefgh", "abcdefghij"), ("abcdefghij", "abcdefgh"), ("12345678", "12345678")]  # A in B: J = |A| / |B|
    for n, threshold in ((5, 0.8), (3, 0.5), (5, 4 / 6)):
        firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
        want = [jaccard(a, b, n) >= threshold for a, b in pairs]
        assert similar_pairs(firsts, seconds, n, threshold) == want
        assert any(want) and not all(want)


def test_dedup_can_be_switched_off() -> None:
    cfg = load_config(None, src="en", tgt=("de",), dedup__exact=False, dedup__near=False)
    assert _duplicates(["Same.", "Same.", LONG, LONG + "!"], cfg) == {}


# ------------------------------------------------------------------------------------------ select
def _concept(seq: int, **langs: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of one concept: ``lang=overrides`` (None: the language is missing)."""
    rows = []
    for lang, over in langs.items():
        row = {
            "_seq": seq,
            "concept_id": f"c{seq}",
            "lang": lang,
            "text": f"A perfectly ordinary sentence in {lang}.",
            "origin": "source" if lang == "en" else "human",
            "lid_lang": lang,
            "lid_score": 0.99,
            "dup_of": None,
            "dup_kind": None,
        }
        if over is None:
            row.update(text=None, origin=None, lid_lang=None, lid_score=None)
        else:
            row.update(over)
        rows.append(row)
    return rows


SELECT_SCHEMA = BATCH_SCHEMA | {"lid_lang": pl.String, "lid_score": pl.Float32, "dup_of": pl.String, "dup_kind": pl.String}


def _select(rows: list[dict[str, Any]], **select: Any) -> dict[tuple[int, str], str | None]:
    cfg = load_config(None, src="en", tgt=("de", "ja"), verify__enabled=False, **{f"select__{k}": v for k, v in select.items()})
    full = [{c: None for c in SELECT_SCHEMA} | {"source_file": "in.jsonl", "source_line": 1} | r for r in rows]
    out = SelectStep(cfg).process(pl.DataFrame(full, schema=SELECT_SCHEMA), StepStats())
    assert out.filter(pl.col("drop_reason").is_not_null())["drop_detail"].null_count() == 0, "every drop says why"
    return {(s, lang): reason for s, lang, reason in out.select("_seq", "lang", "drop_reason").iter_rows()}


OK: dict[str, Any] = {}


def test_select_keeps_a_good_concept() -> None:
    assert set(_select(_concept(0, en=OK, de=OK, ja=OK)).values()) == {None}


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"text": ""}, "empty"),
        ({"text": "x" * 51}, "too_long"),
        ({"lid_lang": "fr", "lid_score": 0.95}, "wrong_language"),
    ],
)
def test_select_row_reasons(over: dict[str, Any], reason: str) -> None:
    got = _select(_concept(0, en=OK, de=over, ja=OK), max_chars=50)
    assert got == {(0, "en"): None, (0, "de"): reason, (0, "ja"): None}


def test_select_missing_target() -> None:
    assert _select(_concept(0, en=OK, de=None, ja=OK)) == {(0, "en"): None, (0, "de"): "missing_target", (0, "ja"): None}


def test_select_language_id_needs_confidence_and_length() -> None:
    unsure = {"lid_lang": "fr", "lid_score": 0.5}
    short = {"text": "Ja, danke.", "lid_lang": "fr", "lid_score": 0.99}
    assert set(_select(_concept(0, en=OK, de=unsure, ja=OK)).values()) == {None}
    assert set(_select(_concept(0, en=OK, de=short, ja=OK)).values()) == {None}
    assert _select(_concept(0, en=OK, de=unsure, ja=OK), lid_min_score=0.4)[(0, "de")] == "wrong_language"


@pytest.mark.parametrize("kind", ["duplicate_id", "duplicate", "near_duplicate"])
def test_select_duplicates_reject_the_whole_concept(kind: str) -> None:
    got = _select(_concept(0, en=OK, de=OK, ja=OK) + _concept(1, en={"dup_of": "c0", "dup_kind": kind}, de=OK, ja=OK))
    assert got[(1, "en")] == kind
    assert got[(1, "de")] == got[(1, "ja")] == "source_rejected"
    assert {got[(0, lang)] for lang in ("en", "de", "ja")} == {None}


def test_select_source_rejected() -> None:
    got = _select(_concept(0, en={"text": ""}, de=OK, ja=OK))
    assert got == {(0, "en"): "empty", (0, "de"): "source_rejected", (0, "ja"): "source_rejected"}


def test_select_first_reason_wins() -> None:
    got = _select(
        _concept(0, en=OK, de={"text": "", "origin": None, "lid_lang": "fr"}, ja={"text": "y" * 60, "lid_lang": "fr"}),
        max_chars=50,
    )
    assert got[(0, "de")] == "missing_target" and got[(0, "ja")] == "too_long"


def test_select_incomplete_concept_only_in_drop_concept_mode() -> None:
    rows = _concept(0, en=OK, de=None, ja=OK)
    assert _select(rows, on_missing_language="drop_concept") == {
        (0, "en"): "incomplete_concept",
        (0, "de"): "missing_target",
        (0, "ja"): "incomplete_concept",
    }
    assert _select(rows, on_missing_language="keep_partial")[(0, "ja")] is None


def test_select_too_few_languages() -> None:
    rows = _concept(0, en=OK, de=None, ja={"text": ""}) + _concept(1, en=OK, de=None, ja=OK)
    got = _select(rows)
    assert got[(0, "en")] == "too_few_languages"
    assert (got[(1, "en")], got[(1, "ja")]) == (None, None)
    three = _select(rows, min_languages=3)
    assert three[(1, "en")] == three[(1, "ja")] == "too_few_languages"
    assert _select(_concept(0, en=OK, de=None, ja=None), min_languages=1)[(0, "en")] is None


def test_select_concepts_are_independent() -> None:
    got = _select(
        _concept(0, en={"text": ""}, de=OK, ja=OK) + _concept(1, en=OK, de=OK, ja=OK), on_missing_language="drop_concept"
    )
    assert {got[(1, lang)] for lang in ("en", "de", "ja")} == {None}


SENTENCE_EN = "All human beings are born free and equal in dignity and rights."  # 12 words: a sentence


def test_select_counts_kept_and_dropped_per_domain_and_language() -> None:
    """Target rows are counted by the length domain of their concept's source text; source rows and
    missing_target rows are not counted."""
    rows = (
        _concept(0, en={"text": "Save"}, de={"text": "Speichern"}, ja={"text": "保存"})
        + _concept(1, en={"text": "Open the file"}, de={"text": ""}, ja=None)  # de empty; ja missing: not counted
        + _concept(2, en={"text": SENTENCE_EN}, de=OK, ja={"lid_lang": "ko", "lid_score": 0.99})  # ja wrong_language
        + _concept(3, en={"text": SENTENCE_EN + " Really."}, de=OK, ja=OK)
    )
    cfg = load_config(None, src="en", tgt=("de", "ja"), verify__enabled=False)
    full = [{c: None for c in SELECT_SCHEMA} | {"source_file": "in.jsonl", "source_line": 1} | r for r in rows]
    stats = StepStats()
    out = SelectStep(cfg).process(pl.DataFrame(full, schema=SELECT_SCHEMA), stats)
    reasons = {(s, lang): r for s, lang, r in out.select("_seq", "lang", "drop_reason").iter_rows()}
    assert (reasons[(1, "de")], reasons[(1, "ja")], reasons[(2, "ja")]) == ("empty", "missing_target", "wrong_language")

    domains = {k: v for k, v in stats.counters.items() if k.startswith("domain.")}
    assert domains == {
        "domain.de.short.kept": 1,
        "domain.de.short.dropped": 1,
        "domain.ja.short.kept": 1,  # concept 1's ja row never existed: no domain.ja.short.dropped
        "domain.de.sentence.kept": 2,
        "domain.ja.sentence.kept": 1,
        "domain.ja.sentence.dropped": 1,
    }
    assert stats.counters["missing_target.ja"] == 1
    # every counted row is a target row that existed: the domains add up to those rows, per language
    existed = out.filter((pl.col("lang") != "en") & pl.col("drop_reason").ne_missing("missing_target"))
    for lang in ("de", "ja"):
        counted = sum(v for k, v in domains.items() if k.startswith(f"domain.{lang}."))
        assert counted == existed.filter(pl.col("lang") == lang).height


def test_select_domain_of_a_multi_field_concept_is_its_first_fields_source() -> None:
    cfg = load_config(None, src="en", tgt=("de",), fields=("prompt", "response"), verify__enabled=False)
    long_answer = "It is a long answer that has far more than six words in it."
    rows = [
        {"_seq": 0, "concept_id": "c0", "lang": "en", "prompt": "Hi?", "response": long_answer, "origin": "source"},
        {"_seq": 0, "concept_id": "c0", "lang": "de", "prompt": "Hallo?", "response": "Eine lange Antwort.", "origin": "human"},
    ]
    full = [{c: None for c in SELECT_SCHEMA} | {"source_file": "in.jsonl", "source_line": 1} | r for r in rows]
    stats = StepStats()
    SelectStep(cfg).process(pl.DataFrame(full, schema=SELECT_SCHEMA), stats)
    assert {k: v for k, v in stats.counters.items() if k.startswith("domain.")} == {"domain.de.short.kept": 1}


# ------------------------------------------------------------------------------------------ config
def test_unknown_yaml_key_is_named(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("src: en\ntgt: [de]\nbatch_sise: 10\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(p)
    p.write_text("select:\n  max_char: 10\n")
    with pytest.raises(ConfigError, match=r"select.*max_char"):
        load_config(p)


@pytest.mark.parametrize("code", ["english", "e", "d1", "", "xx", "en-XX"])
def test_bad_language_code(code: str) -> None:
    with pytest.raises(ConfigError, match="not a known language tag"):
        BuildConfig(src="en", tgt=("de", code))
    with pytest.raises(ConfigError, match="not a known language tag"):
        load_config(None, src=code, tgt=["de"])


def test_language_tags_are_written_in_canonical_case() -> None:
    assert BuildConfig(src="EN", tgt=("de", "en-us")).langs == ("en", "de", "en-US")


def test_source_cannot_be_target() -> None:
    with pytest.raises(ConfigError, match="source language"):
        load_config(None, src="en", tgt=["de", "en"])
    with pytest.raises(ConfigError, match="repeated"):
        BuildConfig(src="en", tgt=("de", "de"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"fields": ["body"]}, "body"),
        ({"batch_size": 0}, "batch_size"),
        ({"shards": {"max_rows": 0}}, "max_rows"),
        ({"dedup": {"num_perm": 100, "bands": 16}}, "multiple"),
        ({"select": {"on_missing_language": "drop"}}, "on_missing_language"),
        ({"normalise": {"form": "NFD"}}, "NFC"),
        ({"translate": {"translator": "google"}}, "google"),
        ({"tgt": "de"}, None),
    ],
)
def test_config_values_checked(data: dict[str, Any], words: str | None) -> None:
    if words is None:  # a comma string is accepted for a list
        assert config_from_dict(data).tgt == ("de",)
        return
    with pytest.raises(ConfigError, match=words):
        config_from_dict(data)


def test_config_is_frozen() -> None:
    cfg = BuildConfig()
    with pytest.raises(AttributeError):
        cfg.src = "de"  # type: ignore[misc]


@pytest.mark.skipif(not (PIPELINES / "default.yaml").exists(), reason="no pipelines/default.yaml")
def test_default_pipeline_loads_and_matches_defaults() -> None:
    cfg = load_config(PIPELINES / "default.yaml")
    assert cfg == BuildConfig(), "pipelines/default.yaml documents the defaults"
    over = load_config(PIPELINES / "default.yaml", tgt=["ja"], select__max_chars=10)
    assert over.tgt == ("ja",) and over.select.max_chars == 10 and over.select.min_languages == 2


BUILD_PIPELINES = sorted(p for p in PIPELINES.glob("*.yaml") if not p.name.startswith("train-")) if PIPELINES.exists() else []


@pytest.mark.parametrize("path", BUILD_PIPELINES, ids=lambda p: p.name)
def test_every_pipeline_file_loads(path: Path) -> None:
    """Build pipeline files; ``train-*.yaml`` are training parameters (tests/test_train_loop.py)."""
    cfg = load_config(path)
    assert cfg.src not in cfg.tgt


# ----------------------------------------------------------------------------------------- verify
class _CountingEmbedder:
    """A stand-in for an embedder: hashed unit vectors, and every text it was asked to embed."""

    name, model, dim = "counting", "hash", 16

    def __init__(self) -> None:
        self.seen: list[str] = []

    def setup(self) -> None:
        pass

    def describe(self) -> str:
        return "counting"

    def encode(self, texts: list[str]) -> Any:
        import zlib

        import numpy as np

        self.seen.extend(texts)
        vecs = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts])
        return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("prefix_gain", [True, False])
def test_verify_step_embeds_target_prefixes_unless_switched_off(prefix_gain: bool) -> None:
    from corpusalign.steps.verify import VerifyStep

    rows = []
    for seq, (en, de) in enumerate(
        [
            ("It is hot. The train leaves at five.", "Es ist heiß. Der Zug fährt um fünf ab."),
            ("Good morning.", "Guten Morgen."),
            ("Where is the station?", "Wo ist der Bahnhof? Ich habe mich verlaufen."),
        ]
    ):
        rows.append({"_seq": seq, "concept_id": f"c{seq}", "lang": "en", "text": en, "origin": "source"})
        rows.append({"_seq": seq, "concept_id": f"c{seq}", "lang": "de", "text": de, "origin": "human"})
    batch = make_batch(rows).with_columns(pl.lit(0.99, dtype=pl.Float32).alias("lid_expected"))
    cfg = load_config(None, src="en", tgt=("de",), verify__prefix_gain=prefix_gain)
    embedder = _CountingEmbedder()
    out = VerifyStep(embedder, cfg).process(batch, StepStats())  # type: ignore[arg-type]
    de = out.filter(pl.col("lang") == "de").sort("_seq")
    prefixes = {"Es ist heiß.", "Wo ist der Bahnhof?"}  # the two German targets of two sentences
    assert prefixes <= set(embedder.seen) if prefix_gain else not prefixes & set(embedder.seen)
    assert len(embedder.seen) == 6 + (2 if prefix_gain else 0)  # every distinct text once
    gain = de["prefix_gain"].to_list()
    assert (gain[1] is None) and ((gain[0] is not None and gain[2] is not None) if prefix_gain else gain == [None] * 3)
    assert de["verify_p"].null_count() == 0
