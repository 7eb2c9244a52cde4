"""Verify that every target row says what its source row says.

Reads the text fields, ``lang``, ``origin`` and ``lid_expected``; adds the verification scores of
:data:`corpusalign.verify.features.FEATURE_COLUMNS` (``cos``, ``margin``, ``nn_pair``,
``len_log_ratio``, ``num_agree``, ``placeholder_ok``, ``copy_sim``, ``script_ok``) and ``verify_p``,
the calibrated gate's probability that the pair is a faithful translation, plus the working columns
:data:`~corpusalign.verify.features.EXTRA_COLUMNS` that the gate's rules read in the select step
(not stored in shards). Source rows and rows without text get nulls. Drops nothing: the select step
applies the gate.

Per batch and target language, the pool for margin scoring is that language's pairs in the batch
(``batch_size`` concepts, 10,000 by default), embedded in one batched call per side, plus one call
for the prefixes of the targets of 2 or more sentences (``prefix_gain``: the target without its last
sentence; ``verify.prefix_gain: false`` skips it); every distinct text is embedded once. A
multi-field concept is scored field by field and keeps the scores of its weakest field (lowest
``verify_p``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.embed.base import Embedder
from corpusalign.langtags import tag_fallbacks
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step
from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_COLUMNS, pair_features
from corpusalign.verify.gate import LanguageGate, predict_proba

SCORE_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c != "lid_expected")
_DTYPES = {
    "nn_pair": pl.Boolean,
    "placeholder_ok": pl.Boolean,
    "src_chars": pl.Float32,
    "end_punct_ok": pl.Float32,
    "sent_diff": pl.Float32,
    "prefix_gain": pl.Float32,
    "source_gap": pl.Float32,
}


def gate_for(gates: dict[str, LanguageGate], lang: str) -> LanguageGate:
    """The gate of ``lang``, else of a broader tag (``pt-BR`` -> ``pt``, ``zh-Hant-TW`` -> ``zh-Hant`` ->
    ``zh-TW`` -> ``zh``), else ``*``."""
    for tag in (lang, *tag_fallbacks(lang)):
        if tag in gates:
            return gates[tag]
    if "*" in gates:
        return gates["*"]
    raise KeyError(f"no verification gate for language {lang!r} and no '*' fallback; run corpusalign calibrate")


class VerifyStep(Step):
    name = "verify"
    holds_model = True
    wants_gpu = True

    def __init__(self, embedder: Embedder, cfg: BuildConfig) -> None:
        self.embedder = embedder
        self.cfg = cfg
        self.gates = cfg.verify.language_gates()
        self.reads = ("_seq", "lang", *cfg.fields, "origin", "lid_expected")
        self.adds = (*SCORE_COLUMNS, *EXTRA_COLUMNS, "verify_p")
        #: Called with the number of texts embedded, for progress bars.
        self.on_progress: Callable[[int], None] | None = None

    def setup(self) -> None:
        for lang in self.cfg.tgt:
            gate_for(self.gates, lang)  # fail before any work when a gate is missing
        self.embedder.setup()

    def describe(self) -> str:
        return f"{super().describe()} using {self.embedder.describe()}"

    def _embed(self, texts: list[str], cache: dict[str, np.ndarray], stats: StepStats) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            start = time.perf_counter()
            vectors = self.embedder.encode(todo)
            stats.count("model_ms", round((time.perf_counter() - start) * 1000))  # time inside the embedding model
            stats.count("texts_embedded", len(todo))
            for text, vec in zip(todo, vectors, strict=True):
                cache[text] = vec
            if self.on_progress:
                self.on_progress(len(todo))
        if not texts:
            return np.zeros((0, self.embedder.dim or 1), dtype=np.float32)
        return np.stack([cache[t] for t in texts])

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        cfg = self.cfg
        src = batch.filter(pl.col("lang") == cfg.src).select("_seq", *(pl.col(f).alias(f"_src_{f}") for f in cfg.fields))
        targets = batch.filter((pl.col("lang") != cfg.src) & pl.col("origin").is_not_null())
        pairs = targets.select("_seq", "lang", *cfg.fields, "lid_expected").join(src, on="_seq", how="inner")
        pairs = pairs.filter(pl.all_horizontal(pl.col(f).is_not_null() & (pl.col(f) != "") for f in cfg.fields))
        cache: dict[str, np.ndarray] = {}
        scored: list[pl.DataFrame] = []
        with stats.timed(pairs.height):
            for (lang,), part in pairs.group_by("lang", maintain_order=True):
                gate = gate_for(self.gates, str(lang))
                best: pl.DataFrame | None = None
                for f in cfg.fields:
                    src_texts = part[f"_src_{f}"].to_list()
                    tgt_texts = part[f].to_list()
                    feats = pair_features(
                        src_texts,
                        tgt_texts,
                        self._embed(src_texts, cache, stats),
                        self._embed(tgt_texts, cache, stats),
                        str(lang),
                        margin_k=cfg.verify.margin_k,
                        encode=(lambda texts: self._embed(texts, cache, stats)) if cfg.verify.prefix_gain else None,
                        src_lang=cfg.src,
                    ).with_columns(part["lid_expected"].alias("lid_expected"))
                    feats = feats.with_columns(pl.Series("verify_p", predict_proba(feats, gate), dtype=pl.Float32))
                    if best is None:
                        best = feats
                    else:  # keep, row by row, the scores of the weaker field
                        weaker = (feats["verify_p"] < best["verify_p"]).fill_null(False)
                        best = pl.DataFrame({c: feats[c].zip_with(weaker, best[c]) for c in best.columns})
                assert best is not None
                scored.append(pl.concat([part.select("_seq", "lang"), best.select(*self.adds)], how="horizontal"))
                stats.histogram(f"verify_p.{lang}", best["verify_p"].to_numpy(), [i / 20 for i in range(21)])
                stats.histogram(f"margin.{lang}", best["margin"].drop_nulls().to_numpy(), [0.5 + i * 0.05 for i in range(21)])
                stats.histogram(f"cos.{lang}", best["cos"].to_numpy(), [i / 20 for i in range(21)])
                stats.count(f"scored.{lang}", part.height)
        schema = {"_seq": pl.UInt64, "lang": pl.String, **{c: _DTYPES.get(c, pl.Float32) for c in self.adds}}
        result = pl.concat([s.cast(schema) for s in scored]) if scored else pl.DataFrame(schema=schema)
        return batch.join(result, on=["_seq", "lang"], how="left", maintain_order="left")


class SkipVerifyStep(Step):
    """Adds the verification columns as nulls: what a build with ``verify.enabled: false`` writes."""

    name = "verify"
    reads = ()
    adds = (*SCORE_COLUMNS, "verify_p")

    def describe(self) -> str:
        return "verify: off (scores left null)"

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        return batch.with_columns(*(pl.lit(None, dtype=_DTYPES.get(c, pl.Float32)).alias(c) for c in self.adds))
