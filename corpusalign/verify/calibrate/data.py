"""Calibration data: the bundled sample, long pairs from a wide concept table and back, the held-out split."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl


def sample_files() -> list[str]:
    """The bundled sample files (UDHR en/de/ja/sw, Tatoeba en/de/ja, CLDR names en/de/ja/sw)."""
    from importlib import resources

    root = resources.files("corpusalign") / "data" / "sample"
    return [str(root / name) for name in ("udhr_en_de_ja_sw.jsonl", "tatoeba_en_de_ja.jsonl", "cldr_names_en_de_ja_sw.jsonl")]


def concept_pairs(concepts: pl.DataFrame, src: str, tgts: Sequence[str]) -> pl.DataFrame:
    """Long ``concept_id, lang, src_text, tgt_text`` pairs from a wide concept table (one column per language).

    Other language columns of the table are kept available to the synthetic ``wrong_language`` fault
    only through the targets listed; pass every language you want to appear.
    """
    rows = []
    for lang in tgts:
        if lang in concepts.columns:
            rows.append(
                concepts.select(
                    pl.col("concept_id").cast(pl.String),
                    pl.lit(lang).alias("lang"),
                    pl.col(src).alias("src_text"),
                    pl.col(lang).alias("tgt_text"),
                )
            )
    return pl.concat(rows).filter(pl.col("src_text").is_not_null() & pl.col("tgt_text").is_not_null())


_LANG_COLUMN = re.compile(r"^[a-z]{2,3}$")


def _to_concepts(pairs: pl.DataFrame, src: str) -> pl.DataFrame:
    """The wide concept table (``concept_id``, ``src``, one column per language) behind long ``pairs``.

    Extra columns of ``pairs`` named by a language code (``fr``, ``es``) hold the concept's text in
    that language; they join the table (used by ``wrong_language`` faults only).
    """
    wide = pairs.select("concept_id", "lang", "tgt_text").unique(["concept_id", "lang"], keep="first", maintain_order=True)
    wide = wide.pivot(on="lang", index="concept_id", values="tgt_text")
    extra = [c for c in pairs.columns if _LANG_COLUMN.match(c) and c not in wide.columns and c not in (src, "lang")]
    srcs = pairs.select("concept_id", pl.col("src_text").alias(src), *extra).unique(
        "concept_id", keep="first", maintain_order=True
    )
    return srcs.join(wide, on="concept_id", how="left", maintain_order="left")


def _datasets(pairs: pl.DataFrame) -> list[tuple[str, list[str]]]:
    """``(data set, its concept ids)`` in first-seen order by the ``dataset`` column (a concept counts in
    the first data set it appears in); empty without that column or with fewer than two data sets."""
    if "dataset" not in pairs.columns or pairs["dataset"].n_unique() < 2:
        return []
    first = pairs.select("concept_id", pl.col("dataset").fill_null("")).unique("concept_id", keep="first", maintain_order=True)
    return [(str(name), part["concept_id"].to_list()) for (name,), part in first.group_by("dataset", maintain_order=True)]


def _split(concepts: Sequence[str], share: float, seed: int) -> set[str]:
    uniq = sorted(set(concepts))
    rng = np.random.default_rng(seed + 7919)
    n = int(round(len(uniq) * share))
    return set(np.array(uniq, dtype=object)[rng.permutation(len(uniq))[:n]].tolist())
