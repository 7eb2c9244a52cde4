"""Fill missing target-language rows with a translator.

Reads the source row of each concept and the target rows whose ``origin`` is null (nothing in the
input); writes the text fields, ``origin``, ``translator`` and ``model`` of the rows it fills. Rows
the translator cannot fill stay null and are rejected later as ``missing_target``. Drops nothing.

One translator call per target language and field, over the unique source texts of the batch,
so a text repeated in a batch is translated once.
"""

from __future__ import annotations

import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step
from corpusalign.translate.base import Translator


class TranslateStep(Step):
    name = "translate"

    def __init__(self, translator: Translator, cfg: BuildConfig) -> None:
        self.translator = translator
        self.cfg = cfg
        self.reads = ("_seq", "lang", *cfg.fields, "origin", "translator", "model")
        self.adds = (*cfg.fields, "origin", "translator", "model")

    def setup(self) -> None:
        self.translator.setup()

    def describe(self) -> str:
        return f"{super().describe()} using {self.translator.describe()}"

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        missing = batch.filter(pl.col("origin").is_null())
        with stats.timed(missing.height):
            if missing.height == 0:
                return batch
            sources = batch.filter(pl.col("lang") == self.cfg.src).select(
                "_seq", *(pl.col(f).alias(f"_src_{f}") for f in self.cfg.fields)
            )
            todo = missing.select("_seq", "lang").join(sources, on="_seq", how="inner", maintain_order="left")
            filled: list[pl.DataFrame] = []
            for (lang,), part in todo.group_by("lang", maintain_order=True):
                cols = {"_seq": part["_seq"], "lang": part["lang"]}
                for f in self.cfg.fields:
                    unique = part[f"_src_{f}"].unique(maintain_order=True)
                    out = self.translator.translate(unique.to_list(), self.cfg.src, str(lang))
                    mapping = pl.DataFrame({"s": unique, "t": pl.Series(out, dtype=pl.String)})
                    cols[f"_new_{f}"] = part.select(pl.col(f"_src_{f}").alias("s")).join(
                        mapping, on="s", how="left", maintain_order="left"
                    )["t"]
                filled.append(pl.DataFrame(cols))
            new = pl.concat(filled).filter(pl.all_horizontal(pl.col(f"_new_{f}").is_not_null() for f in self.cfg.fields))
            stats.count("requested", todo.height)
            stats.count("filled", new.height)
            stats.count("not_found", todo.height - new.height)
            new = new.with_columns(
                pl.lit(self.translator.origin).alias("_new_origin"),
                pl.lit(self.translator.name).alias("_new_translator"),
                pl.lit(self.translator.model, dtype=pl.String).alias("_new_model"),
            )
            out = batch.join(new, on=["_seq", "lang"], how="left", maintain_order="left")
            hit = pl.col("_new_origin").is_not_null()
            updates = [
                pl.when(hit).then(pl.col(f"_new_{c}")).otherwise(pl.col(c)).alias(c)
                for c in (*self.cfg.fields, "origin", "translator", "model")
            ]
            return out.with_columns(updates).drop([c for c in out.columns if c.startswith("_new_")])
