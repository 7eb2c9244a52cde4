"""The driver: :func:`calibrate` scores the pairs (corrupting them first in the synthetic mode), fits the
gates on the training concepts, measures them on the held-out ones and refits on all."""

from __future__ import annotations

import logging
import math
from typing import Any

import polars as pl

from corpusalign.embed.base import Embedder
from corpusalign.verify.calibrate.data import _datasets, _split, _to_concepts
from corpusalign.verify.calibrate.fit import MIN_PAIRS, _fit_gates, _refit
from corpusalign.verify.calibrate.metrics import DOUBT_P, CalibrationResult, apply_gates, doubtful_references, evaluate
from corpusalign.verify.calibrate.scoring import LidSpec, score_pairs
from corpusalign.verify.calibrate.thresholds import KEPT_CONFIDENCE, MAX_KEPT, MAX_RECALL_LOSS, RECALL_TARGET
from corpusalign.verify.calibrate.unlabelled import _calibrate_unlabelled
from corpusalign.verify.corrupt import make_noisy_set
from corpusalign.verify.gate import LanguageGate

log = logging.getLogger(__name__)

#: In synthetic mode, languages are corrupted in several rounds until they have this many pairs (at most ``MAX_ROUNDS``).
TARGET_PAIRS = 600
MAX_ROUNDS = 8
#: Synthetic mode: share of truncations that keep their final punctuation (harder than a plain cut-off).
KEEP_PUNCT_SHARE = 1 / 3


#: Synthetic mode: seeds of the corruptions within the k-th data set are offset by ``k + 1`` times this.
DATASET_SEED_STEP = 1_000_003


def calibrate(
    pairs: pl.DataFrame,
    embedder: Embedder,
    src: str,
    lid: LidSpec = None,
    target_precision: float | None = None,
    seed: int = 0,
    *,
    labels: bool = True,
    margin_k: int = 4,
    heldout_share: float = 0.3,
    min_pairs: int = MIN_PAIRS,
    rounds: int | None = None,
    refit: bool = True,
    recall_target: float | None = RECALL_TARGET,
    max_kept: float | None = MAX_KEPT,
    max_recall_loss: float = MAX_RECALL_LOSS,
    kept_confidence: float | None = KEPT_CONFIDENCE,
) -> CalibrationResult:
    """Fit one :class:`LanguageGate` per target language of ``pairs`` plus the pooled ``"*"`` gate.

    ``pairs``: ``concept_id, lang, src_text, tgt_text`` and optionally ``label`` (bool, ``True`` =
    faithful), ``kind`` (fault kind, for the metrics), ``lid_expected``, ``lid_lang`` and ``lid_score``; in the
    synthetic mode, extra columns named by a language code (``fr``) give the concept's text in
    languages that are not calibrated but may fill ``wrong_language`` faults, and a ``dataset`` column
    (the dev file of each pair) corrupts each data set once more within itself when there are two or
    more: the faults then come both from the whole dev set (a name followed by a sentence of another
    corpus) and from its own data set (a name followed by another name, in a pool as dense as that
    data set), as a build meets them. ``embedder``:
    the embedder the gates are for. ``src``: the source language. ``lid``: how to get
    ``lid_expected`` (and ``lid_lang`` and ``lid_score``, the top guess and its probability, which the
    hard ``wrong_language`` rule needs) when
    ``pairs`` lacks it: ``None``/``True`` the bundled fastText lid.176, a path to another fastText
    model, a callable ``(texts, langs) -> probabilities`` (no top guess then), or ``False`` (none:
    the gates then impute it). ``target_precision``: choose thresholds for the best recall at this
    precision instead of the best F1. ``max_kept``/``kept_confidence``/``max_recall_loss``: then
    raise each threshold until the upper confidence bound (at ``kept_confidence``; ``None``: the
    point estimate) of every fault kind's kept rate is at most ``max_kept``, at a cost of at most
    ``max_recall_loss`` recall (``max_kept=None``: no such step; see :mod:`corpusalign.verify.calibrate`
    and :func:`~.thresholds._pick_threshold`). ``max_kept=0.02, kept_confidence=None, max_recall_loss=0.03`` is the
    rule the gates used before.
    ``labels=False``: the unlabelled mode (:mod:`.unlabelled`).
    ``rounds``: synthetic mode, how many corrupted copies per language (default: enough for about
    600 pairs, at most 8). ``refit``: refit the weights on all pairs after the held-out evaluation.

    Returns the gates and ``metrics``: ``mode``, ``embedder``, per-language/overall/short-text
    precision, recall and F1 on the held-out concepts and, per fault kind, the share of faulty pairs
    kept (lower is better); ``thresholds``: per language the F1 (or precision-target) threshold
    (``first``), the chosen one, the out-of-fold recall at each, ``[kept, n]`` per fault kind at the
    chosen one and the kinds still over ``max_kept``; ``doubtful_references``: how many dev pairs labelled
    good the finished gates drop by a hard rule or with p < :data:`~.metrics.DOUBT_P` (listed in ``result.doubtful``:
    read them before trusting the labels).
    """
    need = {"concept_id", "lang", "src_text", "tgt_text"}
    if not need <= set(pairs.columns):
        raise ValueError(f"pairs needs the columns {sorted(need)}, has {pairs.columns}")
    pairs = pairs.filter(pl.col("src_text").is_not_null() & pl.col("tgt_text").is_not_null() & (pl.col("lang") != src))
    pairs = pairs.with_columns(pl.col("concept_id").cast(pl.String))
    if pairs.height == 0:
        raise ValueError("no pairs to calibrate on")
    if not labels:
        return _calibrate_unlabelled(pairs, embedder, src, lid, margin_k, seed)

    pool = None
    if "label" in pairs.columns:
        mode = "labelled"
        data = pairs
    else:
        mode = "synthetic"
        concepts = _to_concepts(pairs, src)
        tgts = sorted(pairs["lang"].unique().to_list())
        counts = dict(pairs.group_by("lang").len().iter_rows())
        own_sets = [(name, concepts.filter(pl.col("concept_id").is_in(ids))) for name, ids in _datasets(pairs)]
        noisy = []
        for lang in tgts:
            n_rounds = rounds or max(1, min(MAX_ROUNDS, math.ceil(TARGET_PAIRS / max(counts[lang], 1))))
            for r in range(n_rounds):
                # every language's other columns stay available for wrong_language
                part = make_noisy_set(
                    concepts, src, [lang], seed=seed * 1000 + r * 17 + tgts.index(lang), keep_punct_share=KEEP_PUNCT_SHARE
                )
                noisy.append(part.with_columns(pl.lit(str(r)).alias("_round")))
                # and again within each data set: a UI label followed by another label of its catalog,
                # a name replaced by another name, in a pool as dense as that data set alone
                for k, (dataset, own) in enumerate(own_sets):
                    if own.height < 2 or own[lang].null_count() == own.height:
                        continue
                    part = make_noisy_set(
                        own,
                        src,
                        [lang],
                        seed=seed * 1000 + r * 17 + tgts.index(lang) + DATASET_SEED_STEP * (k + 1),
                        keep_punct_share=KEEP_PUNCT_SHARE,
                    )
                    noisy.append(part.with_columns(pl.lit(f"{dataset}.{r}").alias("_round")))
        data = pl.concat(noisy)
        pool = "_round"
    log.info("calibrate (%s): %d pairs, languages %s", mode, data.height, sorted(data["lang"].unique().to_list()))
    feats = score_pairs(data, embedder, lid, margin_k=margin_k, pool=pool, src=src)

    held = _split(feats["concept_id"].to_list(), heldout_share, seed)
    is_held = feats["concept_id"].is_in(list(held))
    train, test = feats.filter(~is_held), feats.filter(is_held)

    gates, choice, thresholds = _fit_gates(
        train,
        seed,
        target_precision,
        min_pairs,
        recall_target=recall_target,
        max_kept=max_kept,
        max_recall_loss=max_recall_loss,
        kept_confidence=kept_confidence,
    )
    scored = apply_gates(test, gates) if test.height else None
    metrics: dict[str, Any] = {
        "mode": mode,
        "embedder": embedder.describe(),
        "seed": seed,
        "margin_k": margin_k,
        "n_pairs": feats.height,
        "n_train": train.height,
        "n_heldout": test.height,
        "recall_target": recall_target,
        "target_precision": target_precision if recall_target is None else None,
        "max_kept": max_kept if recall_target is None else None,
        "max_recall_loss": max_recall_loss if recall_target is None else None,
        "kept_confidence": kept_confidence if recall_target is None else None,
        "model": choice,
        "thresholds": thresholds,
        "rules": {lang: {d: dg.rules for d, dg in g.domains.items() if dg.rules} for lang, g in gates.items()},
        "refit_on_all": refit,
    }
    if scored is not None:
        metrics.update(evaluate(scored))
        # the pooled gate on every language, as a stand-in for languages without their own gate
        metrics["pooled_gate"] = evaluate(apply_gates(test, {"*": gates["*"]}))["overall"]
    if refit:
        gates = _refit(gates, choice, feats, seed)
    for lang, gate in list(gates.items()):
        m = metrics.get("per_language", {}).get(lang) if lang != "*" else metrics.get("pooled_gate")
        if m:
            gates[lang] = LanguageGate(**{**gate.__dict__, "precision": m["precision"], "recall": m["recall"]})
    doubtful = doubtful_references(apply_gates(feats, gates))
    metrics["doubtful_references"] = doubtful.height
    if doubtful.height:
        log.info("%d dev pairs labelled good are dropped by a hard rule or with p < %s", doubtful.height, DOUBT_P)
    return CalibrationResult(gates=gates, metrics=metrics, heldout=scored, doubtful=doubtful)
