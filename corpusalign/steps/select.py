"""The select step: the one place where thresholds turn scores into decisions.

Reads the scores the earlier steps added; adds ``drop_reason`` and ``drop_detail`` (null for rows
kept). The runner writes rows with a reason to ``rejected/``, so every dropped row can be looked up.

Row reasons, first match wins:

==================  ===========================================================================
``duplicate_id``    another record earlier in the input has the same concept id but other text
``duplicate``       the concept's normalised source text equals an earlier concept's
``near_duplicate``  the source text is a near duplicate (MinHash LSH, Jaccard >= threshold)
``translation_failed``  the translator tried and failed (after its retries); the reason is in
                    ``drop_detail``. Running the same build again retries these rows.
``missing_target``  no translation for this language (nothing in the input, no translator hit)
``empty``           a text field is empty after normalisation
``too_long``        a text field is longer than ``select.max_chars`` characters
``wrong_language``  language ID says another language with score >= ``select.lid_min_score``,
                    for texts of at least ``select.lid_min_chars`` characters (shorter texts are
                    too short for reliable language ID and are not judged by it)
==================  ===========================================================================

Verification reasons, for target rows the row reasons left alone, from the calibrated gate of the
row's language (``corpusalign.verify.gate.decide``; the most specific reason that applies):
``untranslated``, ``wrong_language``, ``placeholder_mismatch``, ``number_mismatch``, ``truncated``,
``misaligned``, ``low_similarity``.

Concept reasons, applied after the row reasons:

* ``source_rejected``: the source row was rejected, so the concept has no anchor;
* ``incomplete_concept``: with ``on_missing_language: drop_concept``, any target row was rejected;
* ``too_few_languages``: fewer than ``min_languages`` rows of the concept would remain.

Besides a counter per reason and language (``<reason>.<lang>``) and ``kept``, the step counts the
target rows kept and dropped per language and length domain of the concept's source text (the first
of ``fields``; :func:`corpusalign.verify.scores.domain_codes`: ``short``, ``sentence``,
``paragraph``): ``domain.<lang>.<domain>.kept`` and ``domain.<lang>.<domain>.dropped``. Source rows
and ``missing_target`` rows (no text to judge) are not counted. The report's "kept per domain and
language" table reads these counters.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.lid import label_column
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step
from corpusalign.verify.gate import REASONS
from corpusalign.verify.scores import DOMAINS, domain_codes, word_count

ROW_REASONS = (
    "duplicate_id",
    "duplicate",
    "near_duplicate",
    "translation_failed",
    "missing_target",
    "empty",
    "too_long",
    "wrong_language",
)
#: Reasons the verification gate gives (corpusalign.verify.gate.decide), after the row reasons.
GATE_REASONS = REASONS
CONCEPT_REASONS = ("source_rejected", "incomplete_concept", "too_few_languages")
DROP_REASONS = tuple(dict.fromkeys(ROW_REASONS + GATE_REASONS + CONCEPT_REASONS))


class SelectStep(Step):
    name = "select"
    adds = ("drop_reason", "drop_detail")

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.reads = ("_seq", "lang", *cfg.fields, "origin", "lid_lang", "lid_score", "dup_of", "dup_kind", "translate_error")
        self.gates = cfg.verify.language_gates() if cfg.verify.enabled else {}
        if self.gates:
            from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_COLUMNS

            self.reads = (*self.reads, *FEATURE_COLUMNS, *EXTRA_COLUMNS, "verify_p")

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        if "translate_error" not in batch.columns:  # a batch that no translator saw
            batch = batch.with_columns(pl.lit(None, dtype=pl.String).alias("translate_error"))
        with stats.timed(batch.height):
            out = self.row_rules(batch)
            if self.gates:
                out = self._gate(out)
            out = self._concept_rules(out)
            counts = out.filter(pl.col("drop_reason").is_not_null()).group_by("drop_reason", "lang").len()
            for reason_name, lang, n in counts.iter_rows():
                stats.count(f"{reason_name}.{lang}", n)
            stats.count("kept", out.filter(pl.col("drop_reason").is_null()).height)
            self._count_domains(out, stats)
        return out

    def row_rules(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``batch`` with ``drop_reason`` and ``drop_detail`` of the row reasons alone (:data:`ROW_REASONS`)."""
        s = self.cfg.select
        fields = self.cfg.fields
        n_chars = pl.max_horizontal(pl.col(f).str.len_chars().fill_null(0) for f in fields)
        text_chars = pl.sum_horizontal(pl.col(f).str.len_chars().fill_null(0) for f in fields)
        any_empty = pl.any_horizontal(pl.col(f).is_null() | (pl.col(f) == "") for f in fields)
        wrong_lang = (
            pl.col("lid_lang").is_not_null()
            & (pl.col("lid_lang") != label_column("lang", self.cfg.langs))  # pt-BR rows: lid.176 says pt
            & (pl.col("lid_score") >= s.lid_min_score)
            & (text_chars >= s.lid_min_chars)
        )
        rules: list[tuple[str, pl.Expr, pl.Expr]] = [
            ("duplicate_id", pl.col("dup_kind") == "duplicate_id", pl.format("id also used by an earlier record")),
            ("duplicate", pl.col("dup_kind") == "duplicate", pl.format("same text as {}", pl.col("dup_of"))),
            ("near_duplicate", pl.col("dup_kind") == "near_duplicate", pl.format("near duplicate of {}", pl.col("dup_of"))),
            ("translation_failed", pl.col("translate_error").is_not_null(), pl.col("translate_error")),
            (
                "missing_target",
                pl.col("origin").is_null(),
                pl.format("no {} text in the input or the translator", pl.col("lang")),
            ),
            ("empty", any_empty, pl.lit("empty after normalisation")),
            ("too_long", n_chars > s.max_chars, pl.format("{} chars > {}", n_chars, pl.lit(s.max_chars))),
            (
                "wrong_language",
                wrong_lang,
                pl.format("language ID says {} ({})", pl.col("lid_lang"), pl.col("lid_score").round(3)),
            ),
        ]
        reason = pl.lit(None, dtype=pl.String)
        detail = pl.lit(None, dtype=pl.String)
        for name, cond, why in reversed(rules):
            hit = cond.fill_null(False)
            reason = pl.when(hit).then(pl.lit(name)).otherwise(reason)
            detail = pl.when(hit).then(why).otherwise(detail)
        return batch.with_columns(reason.alias("drop_reason"), detail.alias("drop_detail"))

    def _count_domains(self, out: pl.DataFrame, stats: StepStats) -> None:
        """Count ``domain.<lang>.<domain>.kept`` / ``.dropped``: target rows by the length domain of their
        concept's source text. Source rows and ``missing_target`` rows are left out."""
        src, field = self.cfg.src, self.cfg.fields[0]
        targets = out.filter((pl.col("lang") != src) & pl.col("drop_reason").ne_missing("missing_target")).select(
            "_seq", "lang", pl.col("drop_reason").is_null().alias("_kept")
        )
        if not targets.height:
            return
        sources = out.filter((pl.col("lang") == src) & pl.col("_seq").is_in(targets["_seq"].unique().implode())).unique(
            "_seq", keep="first", maintain_order=True
        )
        texts = sources[field].to_list()  # word_count is Python (placeholders, CJK): one call per concept
        words = np.fromiter((word_count(t or "") for t in texts), dtype=np.int64, count=len(texts))
        codes = pl.DataFrame({"_seq": sources["_seq"], "_domain": domain_codes(words)})
        counts = (
            targets.join(codes, on="_seq", how="left")
            .with_columns(pl.col("_domain").fill_null(0))  # no source row: 0 words, as domain_of("") says
            .group_by("lang", "_domain", "_kept")
            .len()
        )
        for lang, code, kept, n in counts.iter_rows():
            stats.count(f"domain.{lang}.{DOMAINS[code]}.{'kept' if kept else 'dropped'}", n)

    def _gate(self, out: pl.DataFrame) -> pl.DataFrame:
        from corpusalign.steps.verify import gate_for
        from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_COLUMNS
        from corpusalign.verify.gate import decide

        out = out.with_row_index("_row")
        todo = out.filter(pl.col("drop_reason").is_null() & pl.col("verify_p").is_not_null())
        decided = []
        for (lang,), part in todo.group_by("lang", maintain_order=True):
            gate = gate_for(self.gates, str(lang))
            reasons, details = decide(
                part.select(*FEATURE_COLUMNS, *EXTRA_COLUMNS, "verify_p"),
                gate,
                part["lid_lang"].to_list(),
                str(lang),
                part["lid_score"].to_list(),
            )
            decided.append(
                pl.DataFrame(
                    {"_row": part["_row"], "_g_reason": reasons, "_g_detail": details},
                    schema={"_row": pl.UInt32, "_g_reason": pl.String, "_g_detail": pl.String},
                )
            )
        if not decided:
            return out.drop("_row")
        gated = pl.concat(decided)
        out = out.join(gated, on="_row", how="left", maintain_order="left")
        return out.with_columns(
            pl.coalesce("drop_reason", "_g_reason").alias("drop_reason"),
            pl.when(pl.col("drop_reason").is_null())
            .then(pl.col("_g_detail"))
            .otherwise(pl.col("drop_detail"))
            .alias("drop_detail"),
        ).drop("_row", "_g_reason", "_g_detail")

    def _concept_rules(self, out: pl.DataFrame) -> pl.DataFrame:
        s = self.cfg.select
        key = "_seq"  # one input record = one concept, even when two records share an id
        src_reason = pl.col("drop_reason").filter(pl.col("lang") == self.cfg.src).first().over(key)
        out = out.with_columns(src_reason.alias("_src_reason"))
        out = out.with_columns(
            pl.when(pl.col("drop_reason").is_null() & pl.col("_src_reason").is_not_null())
            .then(pl.lit("source_rejected"))
            .otherwise(pl.col("drop_reason"))
            .alias("drop_reason"),
            pl.when(pl.col("drop_reason").is_null() & pl.col("_src_reason").is_not_null())
            .then(pl.format("source row rejected: {}", pl.col("_src_reason")))
            .otherwise(pl.col("drop_detail"))
            .alias("drop_detail"),
        ).drop("_src_reason")
        if s.on_missing_language == "drop_concept":
            any_dropped = pl.col("drop_reason").is_not_null().any().over(key)
            out = out.with_columns(
                pl.when(pl.col("drop_reason").is_null() & any_dropped)
                .then(pl.lit("incomplete_concept"))
                .otherwise(pl.col("drop_reason"))
                .alias("drop_reason"),
                pl.when(pl.col("drop_reason").is_null() & any_dropped)
                .then(pl.lit("a language of this concept was rejected"))
                .otherwise(pl.col("drop_detail"))
                .alias("drop_detail"),
            )
        kept = pl.col("drop_reason").is_null().sum().over(key)
        few = pl.col("drop_reason").is_null() & (kept < s.min_languages)
        return out.with_columns(
            pl.when(few).then(pl.lit("too_few_languages")).otherwise(pl.col("drop_reason")).alias("drop_reason"),
            pl.when(few)
            .then(pl.format("only {} language(s) left, fewer than {}", kept, pl.lit(s.min_languages)))
            .otherwise(pl.col("drop_detail"))
            .alias("drop_detail"),
        )
