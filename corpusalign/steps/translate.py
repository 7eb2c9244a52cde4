"""Fill missing target-language rows with a translator.

Reads the source row of each concept and the target rows whose ``origin`` is null (nothing in the
input); writes the text fields, ``origin``, ``translator``, ``model`` and ``translator_params`` of the
rows it fills. Rows the translator has no translation for stay null and are rejected later as
``missing_target``; rows whose translation failed (after the translator's own retries) get the
reason in ``translate_error`` and are rejected as ``translation_failed``. Drops nothing.

One translator call per target language and field, over the unique source texts of the batch,
so a text repeated in a batch is translated once. A concept is filled only when every field
translated.
"""

from __future__ import annotations

import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step
from corpusalign.translate.base import Failed, Translator


class TranslateStep(Step):
    name = "translate"

    def __init__(self, translator: Translator, cfg: BuildConfig) -> None:
        self.translator = translator
        self.cfg = cfg
        self.holds_model = translator.holds_model
        self.wants_gpu = translator.name in ("seq2seq", "causal")  # transformers models; tm and openai need none here
        self.reads = ("_seq", "lang", *cfg.fields, "origin", "translator", "model")
        self.adds = (*cfg.fields, "origin", "translator", "model", "translator_params", "translate_error")

    def setup(self) -> None:
        self.translator.setup()

    def describe(self) -> str:
        return f"{super().describe()} using {self.translator.describe()}"

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        batch = batch.with_columns(
            pl.lit(None, dtype=pl.String).alias("translator_params"), pl.lit(None, dtype=pl.String).alias("translate_error")
        )
        missing = batch.filter(pl.col("origin").is_null())
        with stats.timed(missing.height):
            if missing.height == 0:
                return batch
            sources = batch.filter(pl.col("lang") == self.cfg.src).select(
                "_seq", *(pl.col(f).alias(f"_src_{f}") for f in self.cfg.fields)
            )
            todo = missing.select("_seq", "lang").join(sources, on="_seq", how="inner", maintain_order="left")
            hits, misses = getattr(self.translator, "hits", 0), getattr(self.translator, "misses", 0)
            filled: list[pl.DataFrame] = []
            for (lang,), part in todo.group_by("lang", maintain_order=True):
                cols = {"_seq": part["_seq"], "lang": part["lang"]}
                errors = pl.Series([None] * part.height, dtype=pl.String)
                for f in self.cfg.fields:
                    unique = part[f"_src_{f}"].drop_nulls().unique(maintain_order=True)
                    results = self.translator.translate(unique.to_list(), self.cfg.src, str(lang))
                    text = [r if isinstance(r, str) else None for r in results]
                    why = [f"{f}: {r.reason}" if isinstance(r, Failed) else None for r in results]
                    mapping = pl.DataFrame(
                        {"s": unique, "t": pl.Series(text, dtype=pl.String), "e": pl.Series(why, dtype=pl.String)}
                    )
                    joined = part.select(pl.col(f"_src_{f}").alias("s")).join(mapping, on="s", how="left", maintain_order="left")
                    cols[f"_new_{f}"] = joined["t"]
                    errors = pl.select(pl.coalesce(errors, joined["e"])).to_series()
                cols["_new_translate_error"] = errors
                filled.append(pl.DataFrame(cols))
            done = pl.concat(filled)
            complete = pl.all_horizontal(pl.col(f"_new_{f}").is_not_null() for f in self.cfg.fields)
            failed = done.filter(pl.col("_new_translate_error").is_not_null()).select("_seq", "lang", "_new_translate_error")
            new = done.filter(complete & pl.col("_new_translate_error").is_null()).drop("_new_translate_error")
            stats.count("requested", todo.height)
            stats.count("filled", new.height)
            stats.count("failed", failed.height)
            stats.count("not_found", todo.height - new.height - failed.height)
            if hasattr(self.translator, "hits"):
                stats.count("cache_hits", self.translator.hits - hits)
                stats.count("cache_misses", self.translator.misses - misses)
            new = new.with_columns(
                pl.lit(self.translator.origin).alias("_new_origin"),
                pl.lit(self.translator.name).alias("_new_translator"),
                pl.lit(self.translator.model, dtype=pl.String).alias("_new_model"),
                pl.lit(self.translator.params_json(), dtype=pl.String).alias("_new_translator_params"),
            )
            out = batch.join(new, on=["_seq", "lang"], how="left", maintain_order="left")
            out = out.join(failed, on=["_seq", "lang"], how="left", maintain_order="left")
            hit = pl.col("_new_origin").is_not_null()
            updates = [
                pl.when(hit).then(pl.col(f"_new_{c}")).otherwise(pl.col(c)).alias(c)
                for c in (*self.cfg.fields, "origin", "translator", "model", "translator_params")
            ]
            updates.append(pl.col("_new_translate_error").alias("translate_error"))
            return out.with_columns(updates).drop([c for c in out.columns if c.startswith("_new_")])
