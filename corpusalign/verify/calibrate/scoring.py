"""Scoring pairs for calibration: the verification score columns and language ID of a batch of pairs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from corpusalign.embed.base import Embedder
from corpusalign.verify.features import lid_predictions, pair_features
from corpusalign.verify.scores import target_prefix

#: How :func:`score_pairs` gets ``lid_expected`` when the pairs lack it (see :func:`~corpusalign.verify.calibrate.calibrate`).
LidSpec = Callable[[list[str], list[str]], np.ndarray] | str | bool | None


def _lid_columns(texts: list[str], langs: list[str], lid: LidSpec) -> list[pl.Series]:
    """``lid_expected`` (and, with fastText, ``lid_lang`` and ``lid_score``: the top guess and its
    probability) for the texts, as columns."""
    if lid is False:
        return [pl.Series("lid_expected", [None] * len(texts), dtype=pl.Float32)]
    if callable(lid):
        return [pl.Series("lid_expected", np.asarray(lid(texts, langs), dtype=np.float32), dtype=pl.Float32)]
    top, top_p, expected = lid_predictions(texts, langs, model_path=lid if isinstance(lid, str) else None)
    return [
        pl.Series("lid_expected", expected, dtype=pl.Float32),
        pl.Series("lid_lang", top, dtype=pl.String),
        pl.Series("lid_score", top_p, dtype=pl.Float32),
    ]


def score_pairs(
    pairs: pl.DataFrame,
    embedder: Embedder,
    lid: LidSpec = None,
    margin_k: int = 4,
    pool: str | None = None,
    src: str | None = None,
) -> pl.DataFrame:
    """``pairs`` with the verification scores added (``FEATURE_COLUMNS`` and ``EXTRA_COLUMNS``).

    Every distinct text and target prefix (for ``prefix_gain``) is embedded once, all in one call.
    The margin pool of a pair is its language (and its ``pool`` column value, when given: each
    synthetic round is its own pool). ``lid_expected`` is kept when ``pairs`` has it, else computed
    with ``lid`` (see :func:`~corpusalign.verify.calibrate.calibrate`). ``src``: the source language, for language ID's look at
    copies of the source (:func:`~corpusalign.verify.features.neutral_copies`).
    """
    tgt = pairs["tgt_text"].to_list()
    prefixes = [p for t, lang in zip(tgt, pairs["lang"].to_list()) if (p := target_prefix(t, lang)) is not None]
    texts = list(dict.fromkeys(pairs["src_text"].to_list() + tgt + prefixes))
    vecs = embedder.encode(texts)  # sources, targets and target prefixes in one batched call
    index = {t: i for i, t in enumerate(texts)}

    def lookup(some: list[str]) -> np.ndarray:
        return vecs[[index[t] for t in some]]

    src_lang = src
    keys = ["lang"] if pool is None else [pool, "lang"]
    parts = []
    for _, part in pairs.group_by(keys, maintain_order=True):
        src, tgt = part["src_text"].to_list(), part["tgt_text"].to_list()
        feats = pair_features(
            src, tgt, lookup(src), lookup(tgt), str(part["lang"][0]), margin_k=margin_k, encode=lookup, src_lang=src_lang
        )
        parts.append(pl.concat([part, feats], how="horizontal"))
    out = pl.concat(parts)
    if "lid_expected" not in out.columns:
        cols = _lid_columns(out["tgt_text"].to_list(), out["lang"].to_list(), lid)
        out = out.with_columns([c for c in cols if c.name not in out.columns])
    return out
