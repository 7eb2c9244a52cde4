"""Probe a candidate signal for appended content in short strings: the best word prefix of the target.

``prefix_gain`` only looks at targets of two or more sentences; a short string with another name
appended ("Danish" -> "Kideni Faranga ya Guinea") is one "sentence". This probe cuts a one-sentence
target into units (words; for languages written without spaces, runs of one script), embeds every
prefix of whole units, and measures ``word_prefix_gain = max_k cos(source, first k units) -
cos(source, target)`` on the held-out pairs that ``bench_quality.py`` dumped with its decisions:
how well it separates ``extra_content`` faults from good pairs, per domain and language, over all
of them and over only those the gate keeps.

    python bench/bench_quality.py --seeds 0 2 --embedding-cache bench/_work/quality-emb.npz \
        --dump-pairs bench/_work/pfx/pairs.parquet --out bench/_work/pfx/base.json
    python bench/probe_word_prefix.py --seeds 0 2
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpusalign.verify.scores import _HAN as HAN  # noqa: E402
from corpusalign.verify.scores import target_prefix  # noqa: E402

#: A one-sentence target of 2 to this many units gets its word prefixes (:func:`word_prefixes`).
WORD_PREFIX_MAX_UNITS = 12
_WORD = re.compile(r"\S+")
_KANA_HAN = (("\u3040", "\u309f", "hiragana"), ("\u30a0", "\u30fa", "katakana"), ("\u30fc", "\u30ff", "katakana"))
_PREFIX_TRAIL = " \t\n,;:・、，-–—/|"


def _unit_class(ch: str) -> str | None:
    """The unit class of one character: ``han``, ``hiragana``, ``katakana``, ``other`` for any other
    letter or digit, ``None`` for punctuation and symbols (which stay with the unit before them)."""
    if HAN.match(ch) or ch == "々":
        return "han"
    for lo, hi, name in _KANA_HAN:
        if lo <= ch <= hi:
            return name
    return "other" if ch.isalnum() else None


def _unit_ends(text: str) -> list[int]:
    """Where each unit of ``text`` ends: words, and inside a word each run of one of Han, hiragana,
    katakana or other letters (Japanese is written without spaces: ``デンマーク語`` is two units)."""
    ends: list[int] = []
    for word in _WORD.finditer(text):
        previous = None
        for i in range(word.start(), word.end()):
            cls = _unit_class(text[i])
            if cls is None:
                continue
            if previous is not None and cls != previous and (cls != "other" or previous != "other"):
                ends.append(i)
            previous = cls
        ends.append(word.end())
    return ends


def word_prefixes(text: str, lang: str | None = None) -> list[str]:
    """Every prefix of whole units of a one-sentence target of 2 to :data:`WORD_PREFIX_MAX_UNITS`
    units, shortest first; ``[]`` for any other text.

    A unit is a word, or inside a word a run of one script (Han, hiragana, katakana, other): the cut
    points of a text with another short string appended, where :func:`target_prefix` (which cuts at
    sentences) has none. ``lang`` is accepted for symmetry with the other text scores.

    Example::

        >>> word_prefixes("Kideni Faranga ya Guinea", "sw")
        ['Kideni', 'Kideni Faranga', 'Kideni Faranga ya']
        >>> word_prefixes("デンマーク語ギニアフラン", "ja")
        ['デンマーク', 'デンマーク語']
        >>> word_prefixes("Löschen", "de")
        []
    """
    text = (text or "").strip()
    if not text or target_prefix(text) is not None:
        return []
    ends = _unit_ends(text)
    if not 2 <= len(ends) <= WORD_PREFIX_MAX_UNITS:
        return []
    cuts = (text[:end].rstrip(_PREFIX_TRAIL) for end in ends[:-1])
    return list(dict.fromkeys(c for c in cuts if c))


def add_cache_options(ap: argparse.ArgumentParser) -> None:
    """The embedding caches of the probes: the quality benchmark's, and one for the word prefixes."""
    ap.add_argument("--embedding-cache", type=Path, default=HERE / "_work" / "quality-emb.npz")
    ap.add_argument("--prefix-cache", type=Path, default=HERE / "_work" / "pfx" / "prefix-emb.npz")


def cached_embedder(args: argparse.Namespace):  # noqa: ANN201 - bench_quality.CachingEmbedder
    """multilingual-e5-small with both caches of :func:`add_cache_options` loaded."""
    from bench_quality import CachingEmbedder

    from corpusalign.embed import make_embedder

    embedder = CachingEmbedder(make_embedder("e5"))
    embedder.load(args.embedding_cache)
    embedder.load(args.prefix_cache)
    return embedder


def word_prefix_gain(pairs: pl.DataFrame, embedder) -> np.ndarray:  # noqa: ANN001
    """``max_k cos(source, first k units) - cos(source, target)`` of each pair (NaN without word
    prefixes); every text and prefix embedded once, in one call."""
    src, tgt, langs = pairs["src_text"].to_list(), pairs["tgt_text"].to_list(), pairs["lang"].to_list()
    cuts = [word_prefixes(t, lang) for t, lang in zip(tgt, langs)]
    embedder.encode(sorted({p for c in cuts for p in c} | set(src) | set(tgt)))
    gain = np.full(len(tgt), np.nan)
    for i, c in enumerate(cuts):
        if c:
            s, t, p = embedder.encode([src[i]])[0], embedder.encode([tgt[i]])[0], embedder.encode(c)
            gain[i] = float((p @ s).max() - t @ s)
    return gain


def main(argv: list[str] | None = None) -> int:
    from probe_target_gap import auc

    from corpusalign.verify.scores import domain_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--pairs", default=str(HERE / "_work" / "pfx" / "pairs-seed{}.parquet"))
    add_cache_options(ap)
    args = ap.parse_args(argv)
    embedder = cached_embedder(args)
    print(f"{'seed':<6}{'cell':<14}{'n good':>7}{'n extra':>8}{'AUC all':>9}{'AUC kept':>10}{'extra kept':>11}{'good>0':>8}")
    for seed in args.seeds:
        pairs = pl.read_parquet(args.pairs.format(seed))
        pairs = pairs.with_columns(pl.col("src_text").map_elements(domain_of, return_dtype=pl.String).alias("domain"))
        gain = word_prefix_gain(pairs, embedder)
        embedder.save(args.prefix_cache)
        pairs = pairs.with_columns(pl.Series("wpg", gain))
        for (domain, lang), cell in sorted(pairs.group_by("domain", "lang"), key=lambda x: x[0]):
            cell = cell.filter(pl.col("wpg").is_not_nan())
            good, bad = cell.filter(pl.col("kind") == "good"), cell.filter(pl.col("kind") == "extra_content")
            if bad.height < 5 or good.height < 5:
                continue
            missed = bad.filter(pl.col("keep"))
            kept = good.filter(pl.col("keep"))
            a_all = auc(-good["wpg"].to_numpy(), -bad["wpg"].to_numpy())
            a_kept = auc(-kept["wpg"].to_numpy(), -missed["wpg"].to_numpy()) if missed.height >= 3 else float("nan")
            pos = float((good["wpg"] > 0).mean())
            print(
                f"{seed:<6}{domain + '/' + lang:<14}{good.height:>7}{bad.height:>8}{a_all:>9.3f}{a_kept:>10.3f}"
                f"{missed.height:>11}{pos:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
