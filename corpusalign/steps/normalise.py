"""Normalise every text field: Unicode normal form, line endings, control characters, whitespace.

Reads the text fields; rewrites them and adds ``original`` (a struct holding the text as read for the
fields that changed; null when nothing changed). Drops nothing.

Rules, in order: ``\\r\\n`` and ``\\r`` to ``\\n``; C0/C1 control characters other than tab and
newline, zero-width space, word joiner and BOM removed; Unicode ``NFC`` (or ``NFKC``; after the removal,
so that characters a removed one separated are composed and the result is stable); runs of other
whitespace (tabs, no-break and ideographic spaces) to one space; spaces around newlines removed; more
than one blank line to one; leading and trailing whitespace stripped.

Example: ``"Cafe\\u0301  x\\t\\ty\\r\\n"`` becomes ``"Café x y"``.
"""

from __future__ import annotations

import polars as pl

from corpusalign.config import NormaliseConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step
from corpusalign.store.schema import TEXT_FIELDS

_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u200B\u2060\uFEFF]"


def normalise_expr(expr: pl.Expr, cfg: NormaliseConfig) -> pl.Expr:
    """The normalisation as a Polars expression (also used to derive concept ids)."""
    e = expr.str.replace_all(r"\r\n?", "\n")
    if cfg.strip_control:
        e = e.str.replace_all(_CONTROL, "")
    e = e.str.normalize(cfg.form)
    if cfg.collapse_whitespace:
        e = e.str.replace_all(r"[^\S\n]+", " ").str.replace_all(r" ?\n ?", "\n").str.replace_all(r"\n{3,}", "\n\n")
    return e.str.strip_chars()


class NormaliseStep(Step):
    name = "normalise"
    reads = TEXT_FIELDS
    adds = (*TEXT_FIELDS, "original")

    def __init__(self, cfg: NormaliseConfig) -> None:
        self.cfg = cfg

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        with stats.timed(batch.height):
            normalised = batch.select(*(normalise_expr(pl.col(f), self.cfg).alias(f"_n_{f}") for f in TEXT_FIELDS))
            changed = {f: (batch[f] != normalised[f"_n_{f}"]).fill_null(False) for f in TEXT_FIELDS}
            any_changed = pl.Series([False] * batch.height, dtype=pl.Boolean)  # typed: a batch may be empty
            for f in TEXT_FIELDS:
                any_changed = any_changed | changed[f]
            original = pl.DataFrame(
                {f: batch[f].zip_with(changed[f], pl.Series([None] * batch.height, dtype=pl.String)) for f in TEXT_FIELDS}
            ).to_struct("original")
            original = original.zip_with(any_changed, pl.Series([None] * batch.height, dtype=original.dtype))
            out = batch.with_columns(*(normalised[f"_n_{f}"].alias(f) for f in TEXT_FIELDS), original)
            stats.count("rows_changed", int(any_changed.sum()))
        return out
