"""Calibrate verification gates: fit, per target language, the model that turns scores into keep/drop.

Three modes, by what the input pairs carry:

* **labelled** (``pairs`` has a ``label`` column, ``True`` = good pair, and optionally ``kind``):
  the labels are used as they are.
* **synthetic** (no ``label`` column, ``labels=True``): the pairs are taken as good translations and
  :func:`corpusalign.verify.corrupt.make_noisy_set` corrupts half of them (``rounds`` times with
  different seeds for small languages), which gives labelled data with known fault kinds. A third of
  the truncations keep their final punctuation (:data:`KEEP_PUNCT_SHARE`), so that the gate also
  weighs length and similarity, not only the missing full stop.
* **unlabelled** (``labels=False``): no labels at all; per language a two-component Gaussian
  mixture on the margin separates a "good" upper component from the rest and the gate keeps pairs
  more likely in the upper component. Precision and recall are then *estimated* from the mixture.

In the labelled and synthetic modes the concepts are split once (``heldout_share`` held out). On the
training part, per language:

1. **Hard rules per domain** (:func:`_domain_rules`). Every pair falls into a length domain of its
   source (short string, sentence, paragraph: :data:`~corpusalign.verify.scores.DOMAINS`). For each
   domain with ``MIN_CELL_GOOD`` good pairs, each hard rule takes the strictest of its candidate
   settings (:data:`RULE_CANDIDATES`) that drops at most ``RULE_MAX_GOOD_DROP`` (0.5%) of the
   domain's good pairs: language ID's rule goes off for one-word Swahili labels, the length rule
   relaxes for terse Japanese, and so on. A thinner domain gets :data:`THIN_DOMAIN_RULES`.
2. **Weights**: one logistic regression over the pairs that pass the hard rules (scikit-learn,
   standardised inputs, classes balanced within each language): shared weights plus deviations
   that the L2 penalty pulls towards them, one per language with at least ``min_pairs`` concepts
   and one per domain with as many (:func:`_fit_joint`). Swahili, with 51 UDHR paragraphs and the
   CLDR names, stays close to the pooled model while German and Japanese fit their own.
3. **Thresholds, recall first** (:func:`_choose_thresholds`): on 5-fold out-of-fold probabilities
   (folds by concept) of the final keep decision (hard rules included), each (language, domain)
   with ``MIN_THRESHOLD_GOOD`` good pairs gets the highest threshold that keeps ``recall_target``
   (:data:`RECALL_TARGET`, 97%) of its good pairs: every domain and language keeps its data first,
   and the faults are then as few as that threshold allows. A thinner domain takes the lower of the
   domain's threshold over all languages and the language's own. ``recall_target=None`` chooses one
   threshold per language by the fault-bound rule instead (:func:`_pick_threshold`: F1-optimal,
   then raised until the 95% Wilson upper bound of each fault kind's kept rate is at most
   ``max_kept``, for at most ``max_recall_loss`` of recall).

Which threshold each language and domain got, and why, is in ``metrics["thresholds"]``; the
relaxed rules in ``metrics["rules"]``. The ``"*"`` gate for unseen languages is a separate fit over
all languages with one pooled length model, as it meets them at run time. The held-out part is then
scored once with the finished gates: its precision, recall and F1 per language, per length domain
and per fault kind are the reported metrics (``metrics``). Finally the weights, length models and
rules are refitted on all pairs (thresholds stay; ``refit=False`` keeps the training-part weights).

Example::

    result = calibrate(good_pairs, make_embedder("e5"), src="en")
    result.metrics["per_language"]["de"]  # {"precision": ..., "recall": ..., "f1": ..., ...}
    write_pipeline(result, "pipelines/my_gates.yaml", base_pipeline="pipelines/default.yaml")

Command line (what produced the shipped ``gates_e5_small.json``, from the real data in
``../shared/data/parallel``; ``--sample`` uses the bundled UDHR, Tatoeba and CLDR files instead)::

    python -m corpusalign.verify.calibrate --input udhr_en_de_ja_sw.blocks.jsonl tatoeba_en_de_ja.dev.jsonl \
        cldr_en_de_ja_sw.names.jsonl gettext_en_de_ja.ui.jsonl --embedder e5 --seed 0 --out corpusalign/verify/gates_e5_small.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from corpusalign.embed.base import Embedder
from corpusalign.verify.corrupt import make_noisy_set
from corpusalign.verify.features import LENGTH_COLUMN, lid_predictions, pair_features
from corpusalign.verify.gate import (
    DEFAULT_IMPUTE,
    DEFAULT_RULES,
    DESIGN_COLUMNS,
    LENGTH_FIELDS,
    DomainGate,
    LanguageGate,
    decide,
    design_matrix,
    domain_index,
)
from corpusalign.verify.gate import hard_rules as gate_hard_rules
from corpusalign.verify.scores import DOMAINS, target_prefix

log = logging.getLogger(__name__)

#: A language with fewer distinct pairs (concepts) than this gets the pooled model and threshold.
MIN_PAIRS = 40
#: In synthetic mode, languages are corrupted in several rounds until they have this many pairs (at most ``MAX_ROUNDS``).
TARGET_PAIRS = 600
MAX_ROUNDS = 8
#: Synthetic mode: share of truncations that keep their final punctuation (harder than a plain cut-off).
KEEP_PUNCT_SHARE = 1 / 3
LidSpec = Callable[[list[str], list[str]], np.ndarray] | str | bool | None


@dataclass
class CalibrationResult:
    """Fitted gates (``{lang: LanguageGate}``, with ``"*"``), their held-out ``metrics`` and the scored held-out pairs."""

    gates: dict[str, LanguageGate]
    metrics: dict[str, Any]
    heldout: pl.DataFrame | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


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
    with ``lid`` (see :func:`calibrate`). ``src``: the source language, for language ID's look at
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


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------


def _length_model(llr: np.ndarray, chars: np.ndarray, fit_shape: bool) -> dict[str, float]:
    """Robust fit of ``llr ~ mean + slope * log(chars / 40)`` with variance ``std**2 + var_chars / chars``.

    With ``fit_shape=False`` (few pairs, or little spread of lengths) slope and var_chars stay 0.
    """
    from corpusalign.verify.gate import LENGTH_REFERENCE_CHARS

    llr = llr.astype(np.float64)
    chars = np.maximum(chars.astype(np.float64), 1.0)
    if len(llr) < 2:
        return {
            "len_log_ratio_mean": float(llr.mean()) if len(llr) else 0.0,
            "len_log_ratio_std": 0.5,
            "len_log_ratio_slope": 0.0,
            "len_log_ratio_var_chars": 0.0,
        }
    x = np.log(chars) - math.log(LENGTH_REFERENCE_CHARS)
    keep = np.ones(len(llr), dtype=bool)
    slope, mean = 0.0, float(np.median(llr))
    for _ in range(3):  # trimmed least squares: misfits in "good" data must not bend the line
        if fit_shape and x[keep].std() > 0.3:
            slope, mean = (float(v) for v in np.polyfit(x[keep], llr[keep], 1))
        else:
            mean = float(np.median(llr[keep]))
        resid = llr - (mean + slope * x)
        mad = 1.4826 * float(np.median(np.abs(resid[keep]))) or 0.05
        keep = np.abs(resid) <= 3.5 * mad
    r2 = resid[keep] ** 2
    inv = 1.0 / chars[keep]
    var_chars = 0.0
    if fit_shape and inv.std() > 0:
        var_chars = max(0.0, float(np.polyfit(inv, r2, 1)[0]))
    s2 = max(float(np.mean(r2 - var_chars * inv)), 0.05**2)
    return {
        "len_log_ratio_mean": mean,
        "len_log_ratio_std": math.sqrt(s2),
        "len_log_ratio_slope": slope,
        "len_log_ratio_var_chars": var_chars,
    }


#: Candidate ``margin_min`` values of the hard misaligned rule, strictest first; the first that rejects at
#: most ``MARGIN_RULE_MAX_GOOD`` of the good pairs is taken (languages with ``MIN_RULE_PAIRS`` good pairs).
MARGIN_MIN_CANDIDATES = (0.99, 0.98, 0.97, 0.96)
MARGIN_RULE_MAX_GOOD = 0.01
MIN_RULE_PAIRS = 200


def _margin_rule(good: pl.DataFrame) -> float:
    nn = good["nn_pair"].cast(pl.Float64).fill_null(1.0).to_numpy()
    margin = good["margin"].cast(pl.Float64).fill_null(np.inf).to_numpy()
    for cand in MARGIN_MIN_CANDIDATES:
        if float(((nn < 0.5) & (margin < cand)).mean()) <= MARGIN_RULE_MAX_GOOD:
            return cand
    return DEFAULT_RULES["margin_min"]


def _settings(name: str, values: Sequence[float]) -> tuple[dict[str, float], ...]:
    return tuple({name: v} for v in values)


#: Hard-rule settings tried for each domain of each language, strictest first; the last never fires.
#: A domain takes the strictest setting that drops at most ``RULE_MAX_GOOD_DROP`` of its good pairs.
#: Each entry: (reason, candidate settings, the other rules of the reason set off while it is measured).
#: The misaligned rule trades a stricter margin for a wider competing-source gap: in a dense pool of
#: names a right pair is often not the nearest neighbour by a hair, a shifted one by a clear gap.
RULE_CANDIDATES: tuple[tuple[str, tuple[dict[str, float], ...], dict[str, float]], ...] = (
    ("truncated", _settings("len_z_max", (4.0, 5.0, 6.0, 8.0, 1e9)), {}),
    ("wrong_language", _settings("script_min", (0.5, 0.3, 0.1, -1.0)), {"lid_other_min": 2.0}),
    ("wrong_language", _settings("lid_other_min", (0.5, 0.7, 0.9, 2.0)), {"script_min": -1.0}),
    (
        "misaligned",
        tuple({"margin_min": m, "gap_min": 0.0} for m in (0.99, 0.98, 0.97, 0.96, 0.95))
        + tuple({"margin_min": 0.99, "gap_min": g} for g in (0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1))
        + ({"margin_min": 0.0, "gap_min": 0.0},),
        {},
    ),
    ("untranslated", _settings("copy_sim_max", (0.9, 0.95, 2.0)), {}),
    ("number_mismatch", _settings("num_min", (0.5, 0.3, -1.0)), {}),
)
#: A hard rule may drop at most this share of a domain's good calibration pairs (else it is relaxed there).
RULE_MAX_GOOD_DROP = 0.005
#: Good pairs a (language, domain) needs to judge its own rules and threshold; fewer: the domain's
#: pooled decision over all languages (and, without that, the language's).
MIN_CELL_GOOD = 40
#: Good pairs a (language, domain) needs for a threshold of its own: at a 97% recall target, 100
#: pairs leave 3 below the threshold, so one odd "good" pair (a translation that runs on into the next
#: paragraph) does not pull the threshold to the floor.
MIN_THRESHOLD_GOOD = 100
#: Rules of a domain of a language with too few good calibration pairs to show that the stricter
#: settings are safe there: no length or language-ID rule, and a misaligned pair only when another
#: source of the pool fits the target by 0.05 of cosine better than its own (on UDHR, a shifted
#: paragraph scores 0.05-0.09, a right one up to about 0.02).
THIN_DOMAIN_RULES = {"len_z_max": 1e9, "lid_other_min": 2.0, "gap_min": 0.05}
#: Rules of every gate this module fits: language-neutral copies are left to the probability, and the
#: misaligned rule needs another source of the pool to fit the target at least as well.
NEW_GATE_RULES = {"neutral_copy_ok": 1.0, "gap_min": 0.0}


def _distinct_good(feats: pl.DataFrame) -> pl.DataFrame:
    good = feats.filter(pl.col("label")) if "label" in feats.columns else feats
    return good.filter(pl.col("len_log_ratio").is_not_null()).unique(
        ["lang", "src_text", "tgt_text"], keep="first", maintain_order=True
    )


def _base_gate(feats: pl.DataFrame, lang: str) -> LanguageGate:
    """A gate with no weights yet: length model, imputed values and hard rules (per domain, see
    :func:`_domain_rules`), measured on the distinct good pairs of ``feats`` (synthetic rounds repeat
    the same good pairs)."""
    good = _distinct_good(feats)
    chars = good[LENGTH_COLUMN].to_numpy()
    length = _length_model(good["len_log_ratio"].to_numpy(), chars, fit_shape=good.height >= 200)
    lid = good["lid_expected"].cast(pl.Float64).drop_nulls()
    impute = {
        "margin": 1.0,
        "lid_expected": float(lid.median()) if len(lid) else 0.5,
        "log_chars": float(np.median(np.log1p(chars))) if len(chars) else math.log1p(40),
    }
    for name in ("prefix_gain", "source_gap"):  # a missing value counts as a typical good pair's
        known = good[name].cast(pl.Float64).drop_nulls() if name in good.columns else pl.Series([], dtype=pl.Float64)
        impute[name] = float(known.median()) if len(known) else DEFAULT_IMPUTE[name]
    rules: dict[str, float] = dict(NEW_GATE_RULES)
    if good.height >= MIN_RULE_PAIRS:
        rules["margin_min"] = _margin_rule(good)
    gate = LanguageGate(weights={}, bias=0.0, threshold=0.5, impute=impute, rules=rules, **length)
    return LanguageGate(**{**gate.__dict__, "domains": _domain_rules(good, gate, lang)})


def _strictest_rule(
    good: pl.DataFrame,
    gate: LanguageGate,
    lang: str,
    reason: str,
    candidates: tuple[dict[str, float], ...],
    off: dict[str, float],
) -> dict[str, float]:
    """The strictest of ``candidates`` (rule settings) for ``reason`` that drops at most ``RULE_MAX_GOOD_DROP`` of ``good``."""
    for setting in candidates:
        probe = LanguageGate(**{**gate.__dict__, "rules": {**gate.rules, **off, **setting}, "domains": {}})
        fires = hard_rules(probe, good, lang)[reason]
        if float(fires.mean()) <= RULE_MAX_GOOD_DROP:
            return setting
    return candidates[-1]


def _domain_rules(good: pl.DataFrame, gate: LanguageGate, lang: str) -> dict[str, DomainGate]:
    """Per domain, the hard-rule settings that drop at most ``RULE_MAX_GOOD_DROP`` of its good pairs.

    Language ID cannot tell a one-word Swahili label from Sundanese, a length ratio means little for
    "Delete" -> "削除", and a pool of UI strings is dense with near-synonyms: a rule that would
    throw away real data of a domain is relaxed, or switched off, for that domain alone; the
    domain also gets its own length model (a terse kanji label is not a truncated sentence). A domain
    with fewer than ``MIN_CELL_GOOD`` good pairs cannot show that a rule is safe for it: there it
    gets ``THIN_DOMAIN_RULES`` (length and language ID left to the probability, the misaligned rule
    only where another source fits the target clearly better), the others keep the language's settings.
    """
    dom = domain_index(good)
    out: dict[str, DomainGate] = {}
    for code, domain in enumerate(DOMAINS):
        part = good.filter(pl.Series(dom == code))
        if part.height < MIN_CELL_GOOD:
            out[domain] = DomainGate(rules=dict(THIN_DOMAIN_RULES))
            continue
        chars = part[LENGTH_COLUMN].to_numpy()
        length = _length_model(part["len_log_ratio"].to_numpy(), chars, fit_shape=part.height >= 200)
        cell = LanguageGate(**{**gate.__dict__, **length})  # the rules are measured under the domain's length model
        rules = {}
        for reason, candidates, off in RULE_CANDIDATES:
            for name, value in _strictest_rule(part, cell, lang, reason, candidates, off).items():
                if value != gate.rule(name):
                    rules[name] = value
        out[domain] = DomainGate(rules=rules, length=length)
    return out


def _with_length(gate: LanguageGate, base: LanguageGate, **changes: Any) -> LanguageGate:
    """``gate`` with the length model, imputed values and rules of ``base``, plus ``changes``."""
    return LanguageGate(
        **{**gate.__dict__, **{f: getattr(base, f) for f in LENGTH_FIELDS}, "impute": base.impute, "rules": base.rules, **changes}
    )


def _hard_mask(feats: pl.DataFrame, gate: LanguageGate, lang: str) -> np.ndarray:
    """True where a hard rule of ``gate`` rejects the row (whatever the probability)."""
    fires = hard_rules(gate, feats, lang)
    return np.logical_or.reduce(list(fires.values())) if fires else np.zeros(feats.height, dtype=bool)


def hard_rules(gate: LanguageGate, feats: pl.DataFrame, lang: str) -> dict[str, np.ndarray]:
    """Where each hard rule of ``gate`` fires on ``feats`` (with its language-ID columns, when present)."""
    return gate_hard_rules(feats, gate, _lid_guesses(feats), lang, _lid_scores(feats))


def _lid_guesses(feats: pl.DataFrame) -> list[str | None] | None:
    return feats["lid_lang"].to_list() if "lid_lang" in feats.columns else None


def _lid_scores(feats: pl.DataFrame) -> list[float | None] | None:
    return feats["lid_score"].to_list() if "lid_score" in feats.columns else None


def _fit_lr(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Weights and bias on the raw design matrix of a balanced, standardised logistic regression."""
    from corpusalign.extras import require

    linear_model = require("sklearn.linear_model", extra="calibrate", purpose="calibrating verification gates")
    if len(np.unique(y)) < 2:  # one class only: a constant model
        return np.zeros(x.shape[1]), (8.0 if y.all() else -8.0)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    lr = linear_model.LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000, random_state=seed)
    lr.fit((x - mu) / sd, y)
    w = lr.coef_[0] / sd
    b = float(lr.intercept_[0] - (lr.coef_[0] * mu / sd).sum())
    return w, b


#: F-beta that thresholds maximise (beta < 1 favours precision: fewer faulty pairs kept).
THRESHOLD_BETA = 1.0
#: Thresholds are kept within this range.
THRESHOLD_RANGE = (0.05, 0.95)
#: Kept-rate target per fault kind (the product target): a threshold is raised above the F1-optimal
#: one until the upper confidence bound (:data:`KEPT_CONFIDENCE`) of each fault kind's out-of-fold kept
#: rate is at most this. ``None``: thresholds for F1 alone.
MAX_KEPT = 0.03
#: One-sided confidence of the Wilson upper bound on a kind's kept rate that must stay under
#: ``MAX_KEPT``: the fewer out-of-fold pairs a kind has (Swahili, UDHR paragraphs), the lower its
#: measured rate must be (0 of 130 pairs: bound 2.0%; 1 of 130: 3.4%; 5 of 500: 2.0%). ``None``: the
#: point estimate, with the earlier objective (fewest kinds over ``MAX_KEPT``; it was used with
#: ``MAX_KEPT=0.02``, ``MAX_RECALL_LOSS=0.03``).
KEPT_CONFIDENCE = 0.95
#: ... but by at most this much lost recall of good pairs (absolute, against the F1-optimal threshold):
#: a kind the model cannot separate at that cost stays over the target rather than costing more.
MAX_RECALL_LOSS = 0.05
#: With the point estimate, a fault kind with fewer out-of-fold pairs than this in a language is not
#: held to the target there (one kept pair would decide).
MIN_KIND_PAIRS = 20
#: With the upper bound, kinds of at least this many pairs count (the bound itself accounts for few pairs).
MIN_KIND_PAIRS_BOUND = 5


def wilson_upper(kept: int, n: int, confidence: float = KEPT_CONFIDENCE) -> float:
    """One-sided Wilson score upper bound, at ``confidence``, of a rate observed as ``kept`` of ``n``."""
    if n <= 0:
        return 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    rate = kept / n
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def _pick_threshold(
    p: np.ndarray,
    y: np.ndarray,
    hard: np.ndarray,
    target_precision: float | None,
    kinds: np.ndarray | None = None,
    max_kept: float | None = None,
    max_recall_loss: float = MAX_RECALL_LOSS,
    kept_confidence: float | None = KEPT_CONFIDENCE,
) -> tuple[float, dict[str, Any]]:
    """The threshold of ``keep = p >= t & ~hard``, and how it was chosen.

    First the threshold maximising F-beta (:data:`THRESHOLD_BETA`), or recall at
    ``target_precision``. Then, with ``max_kept`` and ``kinds`` (the fault kind of each row; good
    rows are ignored), it is raised among the thresholds that lose at most ``max_recall_loss`` of
    good-pair recall:

    * ``kept_confidence`` set (the default): to the lowest threshold with the least total excess
      ``sum(max(0, upper - max_kept))`` over the fault kinds of at least :data:`MIN_KIND_PAIRS_BOUND`
      pairs, ``upper`` being the Wilson upper bound (:func:`wilson_upper`) of the kind's kept rate.
      A kind that no threshold in the budget can prove under ``max_kept`` still counts for every
      kept pair it loses, so thin kinds get a wider margin;
    * ``kept_confidence=None``: to the lowest threshold at which the fewest fault kinds (of at least
      :data:`MIN_KIND_PAIRS` pairs) are kept in more than ``max_kept`` of their cases (point estimate).

    Ties go to the higher F-beta. Returns ``(threshold, info)``; ``info`` holds the first threshold,
    the recall at both, per checked kind ``[kept, n]`` at the chosen threshold and the kinds still
    over the target.
    """
    beta2 = THRESHOLD_BETA**2
    cands = np.unique(np.concatenate([[0.5], np.quantile(p, np.linspace(0.0, 1.0, 401))])) if len(p) else np.array([0.5])
    n_good = max(float(y.sum()), 1.0)

    def rates(t: float) -> tuple[float, float, float]:
        keep = (p >= t) & ~hard
        tp = float((keep & y).sum())
        prec = tp / max(float(keep.sum()), 1.0)
        rec = tp / n_good
        return prec, rec, (1 + beta2) * prec * rec / max(beta2 * prec + rec, 1e-12)

    best_t, best = 0.5, (-1.0, -1.0)
    for t in cands:
        prec, rec, fb = rates(float(t))
        if target_precision is not None:
            score = (rec, prec) if prec >= target_precision else (-1.0, prec)
        else:
            score = (fb, -abs(t - 0.5))
        if score > best:
            best, best_t = score, float(t)
    # a threshold far from the balanced model's 0.5 means the probabilities say little there: stay in range
    best_t = min(max(best_t, THRESHOLD_RANGE[0]), THRESHOLD_RANGE[1])
    info: dict[str, Any] = {"first": round(best_t, 4), "recall_first": round(rates(best_t)[1], 4)}
    if max_kept is None or kinds is None:
        return best_t, info

    bad = ~y.astype(bool)
    bound = kept_confidence is not None
    min_pairs = MIN_KIND_PAIRS_BOUND if bound else MIN_KIND_PAIRS
    sizes = {k: int((bad & (kinds == k)).sum()) for k in sorted({str(k) for k in kinds[bad]})}
    checked = [k for k, n in sizes.items() if n >= min_pairs]

    def kept_counts(t: float) -> dict[str, int]:
        keep = (p >= t) & ~hard
        return {k: int(keep[bad & (kinds == k)].sum()) for k in checked}

    def over(t: float) -> list[str]:
        counts = kept_counts(t)
        if bound:
            return [k for k in checked if wilson_upper(counts[k], sizes[k], kept_confidence) > max_kept]
        return [k for k in checked if counts[k] / sizes[k] > max_kept]

    def objective(t: float) -> float:
        if not bound:
            return -float(len(over(t)))
        counts = kept_counts(t)
        return -sum(max(0.0, wilson_upper(counts[k], sizes[k], kept_confidence) - max_kept) for k in checked)

    rec0 = rates(best_t)[1]
    chosen, chosen_score = best_t, (objective(best_t), rates(best_t)[2])
    for t in [float(c) for c in cands if best_t < c <= THRESHOLD_RANGE[1]] + [THRESHOLD_RANGE[1]]:
        _, rec, fb = rates(t)
        if rec < rec0 - max_recall_loss - 1e-12:
            break  # recall only falls as the threshold rises
        score = (objective(t), fb)
        if score > chosen_score:
            chosen, chosen_score = t, score
    counts = kept_counts(chosen)
    info.update(
        threshold=round(chosen, 4),
        recall=round(rates(chosen)[1], 4),
        kinds_checked=checked,
        kinds_kept={k: [counts[k], sizes[k]] for k in checked},
        kinds_over_target=over(chosen),
    )
    return chosen, info


@dataclass
class _Design:
    """Design matrices of a set of pairs, each language with its own length statistics and rules."""

    x: np.ndarray
    y: np.ndarray
    hard: np.ndarray
    lang: np.ndarray
    dom: np.ndarray  # domain index (``DOMAINS``) per row
    concept: np.ndarray
    bases: dict[str, LanguageGate]
    kind: np.ndarray  # fault kind per row ("good"; "faulty" for a faulty pair without a ``kind`` column)


def _design(feats: pl.DataFrame) -> _Design:
    xs, ys, hards, langs, doms, concepts, kinds = [], [], [], [], [], [], []
    bases: dict[str, LanguageGate] = {}
    for (lang,), part in feats.group_by("lang", maintain_order=True):
        base = bases[str(lang)] = _base_gate(part, str(lang))
        xs.append(design_matrix(part, base))
        y = part["label"].to_numpy().astype(bool)
        ys.append(y)
        hards.append(_hard_mask(part, base, str(lang)))
        langs.append(np.full(part.height, str(lang), dtype=object))
        doms.append(domain_index(part))
        concepts.append(part["concept_id"].to_numpy())
        kind = part["kind"].fill_null("faulty").to_numpy().astype(object) if "kind" in part.columns else None
        kinds.append(np.where(y, "good", "faulty").astype(object) if kind is None else np.where(y, "good", kind))
    return _Design(
        np.vstack(xs),
        np.concatenate(ys),
        np.concatenate(hards),
        np.concatenate(langs),
        np.concatenate(doms),
        np.concatenate(concepts),
        bases,
        np.concatenate(kinds),
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def _f1(p: np.ndarray, y: np.ndarray, hard: np.ndarray, t: float) -> float:
    return _prf((p >= t) & ~hard, y)["f1"]


#: Weight of the per-language and per-domain deviations in the joint model (smaller = stronger pull
#: towards the shared weights).
SHRINK = 0.5


@dataclass
class _Joint:
    """A fitted joint model in raw design space: shared weights, per-language deviations included in
    ``langs`` (languages without their own use ``"*"``), per-domain offsets in ``domains``."""

    langs: dict[str, tuple[np.ndarray, float]]
    domains: dict[str, tuple[np.ndarray, float]]

    def predict(self, x: np.ndarray, lang: np.ndarray, dom: np.ndarray) -> np.ndarray:
        logit = np.empty(len(x))
        for lang_ in np.unique(lang):
            rows = lang == lang_
            w, b = self.langs.get(str(lang_), self.langs["*"])
            logit[rows] = x[rows] @ w + b
        for code, name in enumerate(DOMAINS):
            rows = dom == code
            if name in self.domains and rows.any():
                w, b = self.domains[name]
                logit[rows] += x[rows] @ w + b
        return _sigmoid(logit)


def _fit_joint(
    x: np.ndarray,
    y: np.ndarray,
    lang: np.ndarray,
    dom: np.ndarray,
    own: Sequence[str],
    seed: int,
    domains: Sequence[str] = DOMAINS,
    shrink: float = SHRINK,
) -> _Joint:
    """One logistic regression for all languages and domains: shared weights plus, for each language
    in ``own`` and for each domain of ``domains`` with both classes, a deviation (weights and intercept) that the L2
    penalty pulls towards 0 (``shrink`` scales the deviation columns, so a small language or domain
    stays close to the shared model while a large one can move away). Inputs are standardised;
    classes are balanced within each language and languages weigh with the square root of their size.
    """
    from corpusalign.extras import require

    linear_model = require("sklearn.linear_model", extra="calibrate", purpose="calibrating verification gates")
    n_feat = x.shape[1]
    if len(np.unique(y)) < 2:  # one class only: a constant model
        const = (np.zeros(n_feat), 8.0 if y.all() else -8.0)
        return _Joint({"*": const, **{lang_: const for lang_ in own}}, {})
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    xs = (x - mu) / sd
    groups = [("lang", lang_, lang == lang_) for lang_ in own]
    groups += [
        ("dom", name, dom == code) for code, name in enumerate(DOMAINS) if name in domains and len(np.unique(y[dom == code])) == 2
    ]
    blocks = [xs] + [shrink * np.hstack([xs, np.ones((len(xs), 1))]) * mask[:, None] for _, _, mask in groups]
    weight = np.ones(len(y))
    for lang_ in np.unique(lang):
        rows = lang == lang_
        for cls in (True, False):
            rc = rows & (y == cls)
            if rc.any():
                weight[rc] = math.sqrt(rows.sum()) / (2 * rc.sum())
    weight *= len(y) / weight.sum()
    lr = linear_model.LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    lr.fit(np.hstack(blocks), y, sample_weight=weight)
    coef, b0 = lr.coef_[0], float(lr.intercept_[0])

    def raw(ws: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        return ws / sd, float(b - (ws * mu / sd).sum())

    out = _Joint({"*": raw(coef[:n_feat], b0)}, {})
    for i, (what, name, _) in enumerate(groups):
        dev = coef[n_feat + i * (n_feat + 1) : n_feat + (i + 1) * (n_feat + 1)]
        if what == "lang":
            out.langs[name] = raw(coef[:n_feat] + shrink * dev[:n_feat], b0 + shrink * dev[n_feat])
        else:
            out.domains[name] = raw(shrink * dev[:n_feat], shrink * dev[n_feat])
    return out


def _own_domains(d: _Design, min_pairs: int) -> list[str]:
    """Domains with at least ``min_pairs`` distinct concepts: they get their own offsets from the shared model
    (a handful of paragraphs would only fit noise)."""
    return [name for code, name in enumerate(DOMAINS) if len(np.unique(d.concept[d.dom == code])) >= min_pairs]


def _own_languages(d: _Design, min_pairs: int) -> list[str]:
    """Languages with at least ``min_pairs`` distinct concepts and both classes: they get their own
    deviation from the shared model (synthetic rounds repeat concepts, so concepts are counted)."""
    out = []
    for lang in d.bases:
        rows = d.lang == lang
        if len(np.unique(d.concept[rows])) >= min_pairs and len(np.unique(d.y[rows])) == 2:
            out.append(lang)
    return out


#: Share of a (language, domain)'s good pairs the threshold keeps out of fold (recall first).
RECALL_TARGET = 0.97


def _recall_threshold(p: np.ndarray, y: np.ndarray, hard: np.ndarray, target: float) -> tuple[float, dict[str, Any]]:
    """The highest threshold of ``keep = p >= t & ~hard`` that keeps at least ``target`` of the good pairs.

    Where the hard rules alone drop more than ``1 - target`` (``reachable`` false), the threshold keeps
    ``UNREACHABLE_KEEP`` of the good pairs the rules leave: recall cannot reach the target there, and
    a threshold at the floor would let every fault through for nothing. Returns ``(threshold, info)``
    with the recall reached.
    """
    y = y.astype(bool)
    n_good = int(y.sum())
    need = math.ceil(target * n_good - 1e-9)
    passing = np.sort(p[y & ~hard])[::-1]
    reachable = len(passing) >= need
    if not reachable:
        need = math.ceil(UNREACHABLE_KEEP * len(passing) - 1e-9)
    t = float(passing[need - 1]) if need > 0 else THRESHOLD_FLOOR
    t = min(max(t, THRESHOLD_FLOOR), THRESHOLD_RANGE[1])
    keep = (p >= t) & ~hard
    info = {
        "threshold": round(t, 4),
        "recall": round(float((keep & y).sum() / max(n_good, 1)), 4),
        "good": n_good,
        "reachable": reachable,
    }
    return t, info


#: Where hard rules alone miss the recall target, the share of the remaining good pairs the threshold keeps.
UNREACHABLE_KEEP = 0.99
#: The lowest threshold the recall-first rule may choose.
THRESHOLD_FLOOR = 0.01


def _choose_thresholds(
    p: np.ndarray,
    d: _Design,
    rows: np.ndarray,
    recall_target: float | None,
    pooled: dict[str, float],
    pick: dict[str, Any],
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """A language's threshold (all its pairs) and its per-domain thresholds, from out-of-fold ``p``.

    Recall first (``recall_target``): each domain with ``MIN_THRESHOLD_GOOD`` good pairs gets the highest
    threshold that keeps ``recall_target`` of them; a thinner domain takes the lower of
    ``pooled[domain]`` (the same rule over all languages) and the language's own threshold, so that a
    small language is not held to a threshold set on other languages' probabilities alone.
    ``recall_target=None``: the fault-bound rule of :func:`_pick_threshold` for the language, no
    domain thresholds.
    """
    if recall_target is None:
        t, how = _pick_threshold(p[rows], d.y[rows], d.hard[rows], kinds=d.kind[rows], **pick)
        return t, {}, how
    t, how = _recall_threshold(p[rows], d.y[rows], d.hard[rows], recall_target)
    per_domain: dict[str, float] = {}
    how["domains"] = {}
    for code, name in enumerate(DOMAINS):
        cell = rows & (d.dom == code)
        if int(d.y[cell].sum()) >= MIN_THRESHOLD_GOOD:
            per_domain[name], how["domains"][name] = _recall_threshold(p[cell], d.y[cell], d.hard[cell], recall_target)
        elif name in pooled and cell.any():
            per_domain[name] = min(pooled[name], t)
            how["domains"][name] = {"threshold": round(per_domain[name], 4), "pooled": True, "good": int(d.y[cell].sum())}
    return t, per_domain, how


def _oof_joint(d: _Design, own: Sequence[str], seed: int, folds: int, domains: Sequence[str] = DOMAINS) -> np.ndarray:
    """Out-of-fold probabilities (folds by concept) of the joint model fitted on the soft rows."""
    uniq = np.unique(d.concept)
    fold_of = dict(zip(uniq, np.random.default_rng(seed).permutation(len(uniq)) % folds))
    fold = np.array([fold_of[c] for c in d.concept])
    soft = ~d.hard
    oof = np.zeros(len(d.y))
    for k in range(folds):
        te = fold == k
        if te.any():
            tr = soft & ~te
            joint = _fit_joint(d.x[tr], d.y[tr], d.lang[tr], d.dom[tr], own, seed, domains)
            oof[te] = joint.predict(d.x[te], d.lang[te], d.dom[te])
    return oof


def _pooled_domain_thresholds(oof: np.ndarray, d: _Design, recall_target: float | None) -> dict[str, float]:
    if recall_target is None:
        return {}
    out = {}
    for code, name in enumerate(DOMAINS):
        cell = d.dom == code
        if int(d.y[cell].sum()) >= MIN_THRESHOLD_GOOD:
            out[name] = _recall_threshold(oof[cell], d.y[cell], d.hard[cell], recall_target)[0]
    return out


def _gate_from(
    base: LanguageGate, joint: _Joint, lang: str, threshold: float, per_domain: dict[str, float], n_train: int
) -> LanguageGate:
    """The finished gate of ``lang``: ``base``'s length model and rules, the joint model's weights for
    ``lang`` and its domain offsets, and the thresholds."""
    w, b = joint.langs.get(lang, joint.langs["*"])
    domains = {}
    for name in DOMAINS:
        rules = base.domains[name].rules if name in base.domains else {}
        length = base.domains[name].length if name in base.domains else {}
        dw, db = joint.domains.get(name, (None, 0.0))
        if dw is None and name not in per_domain and not rules and not length:
            continue
        domains[name] = DomainGate(
            weights={} if dw is None else {c: float(v) for c, v in zip(DESIGN_COLUMNS, dw)},
            bias=float(db),
            threshold=per_domain.get(name),
            rules=rules,
            length=length,
        )
    return LanguageGate(
        **{
            **base.__dict__,
            "weights": {c: float(v) for c, v in zip(DESIGN_COLUMNS, w)},
            "bias": float(b),
            "n_train": n_train,
            "threshold": threshold,
            "domains": domains,
        }
    )


def _fit_gates(
    feats: pl.DataFrame,
    seed: int,
    target_precision: float | None,
    min_pairs: int,
    folds: int = 5,
    recall_target: float | None = RECALL_TARGET,
    max_kept: float | None = MAX_KEPT,
    max_recall_loss: float = MAX_RECALL_LOSS,
    kept_confidence: float | None = KEPT_CONFIDENCE,
) -> tuple[dict[str, LanguageGate], dict[str, str], dict[str, Any]]:
    """Gates per language and ``"*"``, which model each language uses (``own`` or ``pooled``) and how
    each threshold was chosen.

    Languages with ``min_pairs`` concepts get the joint model's shared weights plus their own
    deviation, every domain its offsets (:func:`_fit_joint`); smaller languages the shared weights.
    Each language's length z-score and hard rules use its own statistics (:func:`_base_gate`).
    Thresholds come from 5-fold out-of-fold probabilities (folds by concept), see
    :func:`_choose_thresholds`. ``"*"`` is :func:`_fit_any_language`.
    """
    d = _design(feats)
    own = _own_languages(d, min_pairs)
    domains = _own_domains(d, min_pairs)
    oof = _oof_joint(d, own, seed, folds, domains)
    soft = ~d.hard
    joint = _fit_joint(d.x[soft], d.y[soft], d.lang[soft], d.dom[soft], own, seed, domains)
    pick = {
        "target_precision": target_precision,
        "max_kept": max_kept,
        "max_recall_loss": max_recall_loss,
        "kept_confidence": kept_confidence,
    }
    pooled = _pooled_domain_thresholds(oof, d, recall_target)
    any_gate, how = _fit_any_language(feats, seed, folds, recall_target, pick, domains)
    gates = {"*": any_gate}
    all_rows = np.ones(len(d.y), dtype=bool)
    shared = _choose_thresholds(oof, d, all_rows, recall_target, pooled, pick)
    thresholds: dict[str, Any] = {"*": how}
    choice: dict[str, str] = {}
    for lang, base in d.bases.items():
        rows = d.lang == lang
        # a small language's own out-of-fold recall is too noisy to place a threshold: it takes the shared ones
        if lang in own:
            threshold, per_domain, thresholds[lang] = _choose_thresholds(oof, d, rows, recall_target, pooled, pick)
        else:
            threshold, per_domain, how_shared = shared
            thresholds[lang] = {**how_shared, "shared": True}
        gates[lang] = _gate_from(base, joint, lang, threshold, per_domain, int((rows & soft).sum()))
        choice[lang] = "own" if lang in own else "pooled"
    return gates, choice, thresholds


def _any_language_design(feats: pl.DataFrame) -> _Design:
    """The design of all pairs as if their language were unknown: one length model and one rule set for all."""
    return _design(feats.with_columns(pl.lit("*").alias("lang")))


def _fit_any_language(
    feats: pl.DataFrame, seed: int, folds: int, recall_target: float | None, pick: dict[str, Any], domains: Sequence[str]
) -> tuple[LanguageGate, dict[str, Any]]:
    """The ``"*"`` gate: every language at once, with one pooled length model (what it meets at run
    time), and how its threshold was chosen."""
    d = _any_language_design(feats)
    oof = _oof_joint(d, [], seed, folds, domains)
    soft = ~d.hard
    joint = _fit_joint(d.x[soft], d.y[soft], d.lang[soft], d.dom[soft], [], seed, domains)
    pooled = _pooled_domain_thresholds(oof, d, recall_target)
    threshold, per_domain, how = _choose_thresholds(oof, d, np.ones(len(d.y), dtype=bool), recall_target, pooled, pick)
    return _gate_from(d.bases["*"], joint, "*", threshold, per_domain, int(soft.sum())), how


def _refit(gates: dict[str, LanguageGate], choice: dict[str, str], feats: pl.DataFrame, seed: int) -> dict[str, LanguageGate]:
    """The gates with weights, length statistics and rules refitted on ``feats``; thresholds and model choices kept."""

    def keep_thresholds(new: LanguageGate, old: LanguageGate) -> LanguageGate:
        domains = {
            name: DomainGate(**{**dg.__dict__, "threshold": old.domains[name].threshold if name in old.domains else None})
            for name, dg in new.domains.items()
        }
        return LanguageGate(**{**new.__dict__, "threshold": old.threshold, "domains": domains})

    d = _design(feats)
    soft = ~d.hard
    own = [lang for lang, c in choice.items() if c == "own"]
    domains = _own_domains(d, MIN_PAIRS)
    joint = _fit_joint(d.x[soft], d.y[soft], d.lang[soft], d.dom[soft], own, seed, domains)
    da = _any_language_design(feats)
    any_joint = _fit_joint(da.x[~da.hard], da.y[~da.hard], da.lang[~da.hard], da.dom[~da.hard], [], seed, domains)
    out = {"*": keep_thresholds(_gate_from(da.bases["*"], any_joint, "*", 0.5, {}, int((~da.hard).sum())), gates["*"])}
    for lang, gate in gates.items():
        if lang == "*":
            continue
        base = d.bases.get(lang)
        if base is None:
            out[lang] = gate
            continue
        fresh = _gate_from(base, joint, lang, 0.5, {}, int((soft & (d.lang == lang)).sum()))
        out[lang] = keep_thresholds(fresh, gate)
    return out


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def _prf(keep: np.ndarray, y: np.ndarray) -> dict[str, float]:
    tp = float((keep & y).sum())
    prec = tp / keep.sum() if keep.sum() else 1.0
    rec = tp / y.sum() if y.sum() else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "precision": round(float(prec), 4),
        "recall": round(float(rec), 4),
        "f1": round(float(f1), 4),
        "n": int(len(y)),
        "n_good": int(y.sum()),
    }


def apply_gates(feats: pl.DataFrame, gates: dict[str, LanguageGate]) -> pl.DataFrame:
    """``feats`` with ``verify_p``, ``keep``, ``reason`` and ``detail`` from ``gates`` (``"*"`` for other languages)."""
    parts = []
    for (lang,), part in feats.group_by("lang", maintain_order=True):
        gate = gates.get(str(lang), gates.get("*"))
        if gate is None:
            raise KeyError(f"no gate for {lang!r} and no '*' gate")
        probe = part.drop("verify_p", strict=False)
        reasons, details = decide(probe, gate, _lid_guesses(part), str(lang), _lid_scores(part))
        from corpusalign.verify.gate import predict_proba

        parts.append(
            part.with_columns(
                pl.Series("verify_p", predict_proba(probe, gate), dtype=pl.Float32),
                pl.Series("reason", reasons, dtype=pl.String),
                pl.Series("detail", details, dtype=pl.String),
            ).with_columns(pl.col("reason").is_null().alias("keep"))
        )
    return pl.concat(parts)


def evaluate(scored: pl.DataFrame) -> dict[str, Any]:
    """Precision/recall/F1 overall, per language and per length domain; per fault kind the share kept."""

    def block(df: pl.DataFrame) -> dict[str, Any]:
        out = _prf(df["keep"].to_numpy(), df["label"].to_numpy().astype(bool))
        if "kind" in df.columns:
            kinds: dict[str, Any] = {}
            for (kind,), part in df.group_by("kind", maintain_order=True):
                kept = float(part["keep"].mean())
                kinds[str(kind)] = {"n": part.height, "kept": round(kept, 4)}
            out["kinds"] = dict(sorted(kinds.items()))
        return out

    dom = domain_index(scored)
    return {
        "overall": block(scored),
        "per_language": {str(lang): block(part) for (lang,), part in scored.sort("lang").group_by("lang", maintain_order=True)},
        "per_domain": {
            name: block(scored.filter(pl.Series(dom == code))) for code, name in enumerate(DOMAINS) if (dom == code).any()
        },
    }


# ---------------------------------------------------------------------------------------------
# the three modes
# ---------------------------------------------------------------------------------------------


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


def _split(concepts: Sequence[str], share: float, seed: int) -> set[str]:
    uniq = sorted(set(concepts))
    rng = np.random.default_rng(seed + 7919)
    n = int(round(len(uniq) * share))
    return set(np.array(uniq, dtype=object)[rng.permutation(len(uniq))[:n]].tolist())


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
    languages that are not calibrated but may fill ``wrong_language`` faults. ``embedder``:
    the embedder the gates are for. ``src``: the source language. ``lid``: how to get
    ``lid_expected`` (and ``lid_lang`` and ``lid_score``, the top guess and its probability, which the
    hard ``wrong_language`` rule needs) when
    ``pairs`` lacks it: ``None``/``True`` the bundled fastText lid.176, a path to another fastText
    model, a callable ``(texts, langs) -> probabilities`` (no top guess then), or ``False`` (none:
    the gates then impute it). ``target_precision``: choose thresholds for the best recall at this
    precision instead of the best F1. ``max_kept``/``kept_confidence``/``max_recall_loss``: then
    raise each threshold until the upper confidence bound (at ``kept_confidence``; ``None``: the
    point estimate) of every fault kind's kept rate is at most ``max_kept``, at a cost of at most
    ``max_recall_loss`` recall (``max_kept=None``: no such step; see the module docstring and
    :func:`_pick_threshold`). ``max_kept=0.02, kept_confidence=None, max_recall_loss=0.03`` is the
    rule the gates used before.
    ``labels=False``: the unlabelled mode (see the module docstring).
    ``rounds``: synthetic mode, how many corrupted copies per language (default: enough for about
    600 pairs, at most 8). ``refit``: refit the weights on all pairs after the held-out evaluation.

    Returns the gates and ``metrics``: ``mode``, ``embedder``, per-language/overall/short-text
    precision, recall and F1 on the held-out concepts and, per fault kind, the share of faulty pairs
    kept (lower is better); ``thresholds``: per language the F1 (or precision-target) threshold
    (``first``), the chosen one, the out-of-fold recall at each, ``[kept, n]`` per fault kind at the
    chosen one and the kinds still over ``max_kept``.
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
        noisy = []
        for lang in tgts:
            n_rounds = rounds or max(1, min(MAX_ROUNDS, math.ceil(TARGET_PAIRS / max(counts[lang], 1))))
            for r in range(n_rounds):
                # every language's other columns stay available for wrong_language
                part = make_noisy_set(
                    concepts, src, [lang], seed=seed * 1000 + r * 17 + tgts.index(lang), keep_punct_share=KEEP_PUNCT_SHARE
                )
                noisy.append(part.with_columns(pl.lit(r, dtype=pl.Int32).alias("_round")))
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
    return CalibrationResult(gates=gates, metrics=metrics, heldout=scored)


def _calibrate_unlabelled(
    pairs: pl.DataFrame, embedder: Embedder, src: str, lid: LidSpec, margin_k: int, seed: int
) -> CalibrationResult:
    from corpusalign.extras import require

    mixture = require("sklearn.mixture", extra="calibrate", purpose="calibrating verification gates")
    feats = score_pairs(pairs, embedder, lid, margin_k=margin_k, src=src)
    gates: dict[str, LanguageGate] = {}
    per_lang: dict[str, Any] = {}
    for (lang,), part in list(feats.group_by("lang", maintain_order=True)) + [(("*",), feats)]:
        m = part["margin"].drop_nulls().to_numpy().astype(np.float64).reshape(-1, 1)
        base = _base_gate(part, str(lang))
        if len(m) < 10:
            continue
        gm = mixture.GaussianMixture(2, random_state=seed).fit(m)
        hi = int(np.argmax(gm.means_[:, 0]))
        grid = np.linspace(m.min(), m.max(), 2001).reshape(-1, 1)
        post = gm.predict_proba(grid)[:, hi]
        cut = float(grid[np.argmax(post >= 0.5), 0])
        scale = 60.0  # steep logistic around the cut: p = 0.5 at the boundary between the components
        gate = _with_length(base, base, weights={"margin": scale}, bias=-scale * cut, threshold=0.5, n_train=len(m))
        gate = LanguageGate(**{**gate.__dict__, "impute": {**base.impute, "margin": cut + 0.05}})
        # estimated precision/recall from the mixture: mass of the upper component above/below the cut
        resp = gm.predict_proba(m)[:, hi]
        keep = m[:, 0] >= cut
        est_p = float(resp[keep].sum() / max(keep.sum(), 1))
        est_r = float(resp[keep].sum() / max(resp.sum(), 1e-9))
        gates[str(lang)] = LanguageGate(**{**gate.__dict__, "precision": round(est_p, 4), "recall": round(est_r, 4)})
        per_lang[str(lang)] = {
            "margin_cut": round(cut, 4),
            "good_share_estimated": round(float(resp.mean()), 4),
            "precision_estimated": round(est_p, 4),
            "recall_estimated": round(est_r, 4),
            "n": int(len(m)),
        }
    metrics = {
        "mode": "unlabelled",
        "embedder": embedder.describe(),
        "seed": seed,
        "margin_k": margin_k,
        "n_pairs": feats.height,
        "per_language": per_lang,
        "note": "no labels: thresholds from a 2-component Gaussian mixture on the margin; precision and recall are "
        "estimates from the mixture, not measurements",
    }
    return CalibrationResult(gates=gates, metrics=metrics, heldout=None)


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def _comment_lines(result: CalibrationResult) -> list[str]:
    m = result.metrics
    lines = [
        f"verification gates calibrated by corpusalign.verify.calibrate ({m.get('mode')} mode) on "
        f"{_dt.date.today().isoformat()} with {m.get('embedder')}"
    ]
    estimated = m.get("mode") == "unlabelled"
    lines.append(
        "expected precision / recall per language"
        + (" (ESTIMATED from score distributions):" if estimated else " (held-out pairs):")
    )
    for lang, gate in sorted(result.gates.items()):
        if gate.precision is None:
            lines.append(f"  {lang}: unknown")
            continue
        pl_ = m.get("per_language", {}).get(lang, {})
        extra = f", F1 {pl_['f1']:.3f}, n={pl_['n']}" if "f1" in pl_ else ""
        lines.append(f"  {lang}: precision {gate.precision:.3f}, recall {gate.recall:.3f}{extra}, threshold {gate.threshold:.3f}")
    return lines


def summary_table(metrics: dict[str, Any]) -> str:
    """The held-out metrics as a plain-text table: one line per language, per length domain and the pooled gate."""
    if metrics.get("mode") == "unlabelled":
        lines = [f"unlabelled calibration ({metrics.get('note')})"]
        for lang, m in metrics.get("per_language", {}).items():
            lines.append(
                f"  {lang:4s} margin cut {m['margin_cut']:.3f}, estimated precision {m['precision_estimated']:.3f}, "
                f"recall {m['recall_estimated']:.3f} (n={m['n']})"
            )
        return "\n".join(lines)
    rows = [
        ("overall", metrics.get("overall")),
        *metrics.get("per_language", {}).items(),
        *metrics.get("per_domain", {}).items(),
        ("pooled *", metrics.get("pooled_gate")),
    ]
    kinds = sorted({k for _, m in rows if m for k in m.get("kinds", {}) if k != "good"})
    head = f"{'held-out':9s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>6s}  " + " ".join(f"{k[:12]:>12s}" for k in kinds)
    lines = [f"{metrics.get('mode')} calibration with {metrics.get('embedder')}; share of faulty pairs kept per kind:", head]
    for name, m in rows:
        if not m:
            continue
        cells = " ".join(f"{m['kinds'][k]['kept']:>12.3f}" if k in m.get("kinds", {}) else f"{'-':>12s}" for k in kinds)
        lines.append(f"{name:9s} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['n']:6d}  {cells}")
    return "\n".join(lines)


def write_pipeline(
    result: CalibrationResult, path: str | Path, base_pipeline: str | Path | None = None, embedder: str | None = None
) -> Path:
    """Write a pipeline YAML whose ``verify.gates`` hold ``result.gates``, with expected precision/recall as comments.

    With ``base_pipeline``, every other setting (and the rest of its ``verify`` section) is copied
    from that file; otherwise the file holds only the ``verify`` section. Load it like any pipeline
    file (``verify: {gates: {de: {...}, "*": {...}}}``).
    """
    import yaml

    base: dict[str, Any] = {}
    if base_pipeline is not None:
        with open(base_pipeline, encoding="utf-8") as f:
            base = yaml.safe_load(f) or {}
    verify = dict(base.pop("verify", None) or {})
    if embedder is not None:  # gates are fitted for one embedder: record which
        verify["embedder"] = embedder
    verify["gates"] = {lang: gate.to_dict() for lang, gate in sorted(result.gates.items(), key=lambda kv: kv[0] == "*")}
    head = "".join(f"# {line}\n" for line in _comment_lines(result))
    body = yaml.safe_dump(base, sort_keys=False, allow_unicode=True) if base else ""
    ver = yaml.safe_dump({"verify": verify}, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body + ver, encoding="utf-8")
    return path


def write_gates_json(result: CalibrationResult, path: str | Path, provenance: dict[str, Any]) -> Path:
    """Write ``{"provenance": ..., "metrics": ..., "gates": {lang: gate}}`` (the format of ``gates_e5_small.json``)."""
    doc = {
        "provenance": provenance,
        "metrics": result.metrics,
        "gates": {lang: gate.to_dict() for lang, gate in sorted(result.gates.items())},
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def _read_concepts(paths: Sequence[str]) -> pl.DataFrame:
    frames = [pl.read_ndjson(p, infer_schema_length=None) for p in paths]
    return pl.concat(frames, how="diagonal_relaxed")


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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpusalign.verify.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--input", nargs="*", default=None, help="JSONL concept files (concept_id + one column per language)")
    ap.add_argument("--sample", action="store_true", help="use the bundled sample (UDHR + Tatoeba + CLDR names)")
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="de,ja,sw", help="target languages to calibrate (comma-separated)")
    ap.add_argument(
        "--wrong-language-from",
        default="de,ja,sw,fr,es",
        help="languages whose texts may fill the wrong_language fault (comma-separated)",
    )
    ap.add_argument("--embedder", default="e5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--recall-target",
        type=_optional_float,
        default=RECALL_TARGET,
        help=f"share of good pairs each language and domain keeps out of fold (default {RECALL_TARGET}; "
        "'none': the fault-bound rule of --max-kept)",
    )
    ap.add_argument("--target-precision", type=float, default=None)
    ap.add_argument(
        "--max-kept",
        type=_optional_float,
        default=MAX_KEPT,
        help=f"kept-rate target per fault kind for the thresholds ('none': thresholds for F1 only; default {MAX_KEPT})",
    )
    ap.add_argument(
        "--max-recall-loss",
        type=float,
        default=MAX_RECALL_LOSS,
        help=f"most good-pair recall the kept-rate target may cost (default {MAX_RECALL_LOSS})",
    )
    ap.add_argument(
        "--kept-confidence",
        type=_optional_float,
        default=KEPT_CONFIDENCE,
        help="confidence of the upper bound of each kind's kept rate that must stay under --max-kept "
        f"('none': the point estimate and the earlier fewest-kinds rule; default {KEPT_CONFIDENCE})",
    )
    ap.add_argument("--unlabelled", action="store_true", help="no synthetic labels: mixture thresholds on the margin")
    ap.add_argument("--out", default=None, help="write the gates JSON here")
    ap.add_argument("--pipeline-out", default=None, help="write a pipeline YAML with the gates here")
    ap.add_argument("--base-pipeline", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    files = sample_files() if args.sample or not args.input else list(args.input)
    concepts = _read_concepts(files)
    tgts = [t for t in args.tgt.split(",") if t]
    extra = [t for t in args.wrong_language_from.split(",") if t and t not in tgts and t != args.src]
    pairs = concept_pairs(concepts, args.src, tgts)
    extra = [c for c in extra if c in concepts.columns]
    if extra:  # languages that only fill wrong_language faults ride along as extra columns
        pairs = pairs.join(
            concepts.select(pl.col("concept_id").cast(pl.String), *extra).unique("concept_id", keep="first"),
            on="concept_id",
            how="left",
            maintain_order="left",
        )
    from corpusalign.embed.base import make_embedder

    embedder = make_embedder(args.embedder)
    result = calibrate(
        pairs,
        embedder,
        args.src,
        target_precision=args.target_precision,
        seed=args.seed,
        labels=not args.unlabelled,
        recall_target=args.recall_target,
        max_kept=args.max_kept,
        max_recall_loss=args.max_recall_loss,
        kept_confidence=args.kept_confidence,
    )
    provenance = {
        "command": "python -m corpusalign.verify.calibrate " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": [Path(f).name for f in files],
        "src": args.src,
        "tgt": tgts,
        "date": _dt.date.today().isoformat(),
        "embedder": embedder.describe(),
        "corpusalign_version": _version(),
    }
    print(summary_table(result.metrics))
    if args.out:
        write_gates_json(result, args.out, provenance)
    if args.pipeline_out:
        write_pipeline(result, args.pipeline_out, args.base_pipeline)
    return 0


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off", "") else float(text)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("corpusalign")
    except Exception:  # noqa: BLE001 - not installed: run from a checkout
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
