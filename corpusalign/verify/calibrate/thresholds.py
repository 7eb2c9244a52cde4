"""Thresholds from out-of-fold probabilities: the recall-first rule (the default) and the fault-bound rule.

* recall first (:func:`_recall_threshold`): the highest threshold that keeps ``RECALL_TARGET`` of the
  good pairs of a (language, domain);
* fault bound (:func:`_pick_threshold`): F1-optimal, then raised until the Wilson upper bound
  (:func:`wilson_upper`) of each fault kind's kept rate is at most ``MAX_KEPT``, for at most
  ``MAX_RECALL_LOSS`` of recall.

:func:`_choose_thresholds` applies them to a language and its domains.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from corpusalign.verify.calibrate.design import _Design
from corpusalign.verify.scores import DOMAINS

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

#: Share of a (language, domain)'s good pairs the threshold keeps out of fold (recall first).
RECALL_TARGET = 0.97
#: Where hard rules alone miss the recall target, the share of the remaining good pairs the threshold keeps.
UNREACHABLE_KEEP = 0.99
#: A domain with too few good pairs for a threshold of its own (``MIN_THRESHOLD_GOOD``) gets one that keeps
#: this share of the good pairs it is set on: over all languages' pairs of that domain when they are
#: enough, else over all the language's pairs. Recall first: where a cell cannot show what its 97%
#: costs, it keeps the data (UDHR-sized paragraph and Swahili sentence cells).
THIN_DOMAIN_KEEP = 0.99
#: The lowest threshold the recall-first rule may choose.
THRESHOLD_FLOOR = 0.01
#: Good pairs a (language, domain) needs for a threshold of its own: at a 97% recall target, 100
#: pairs leave 3 below the threshold, so one odd "good" pair (a translation that runs on into the next
#: paragraph) does not pull the threshold to the floor.
MIN_THRESHOLD_GOOD = 100


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
    threshold that keeps ``recall_target`` of them; a thinner domain takes the lower of the language's
    own threshold and ``pooled[domain]`` (the threshold that keeps ``THIN_DOMAIN_KEEP`` of that domain's
    good pairs over all languages), so that a small language is not held to a threshold set on other
    languages' probabilities alone; a domain too thin even over all languages takes the lower of the
    language's threshold and the one that keeps ``THIN_DOMAIN_KEEP`` of all the language's good pairs.
    ``recall_target=None``: the fault-bound rule of :func:`_pick_threshold` for the language, no
    domain thresholds.
    """
    if recall_target is None:
        t, how = _pick_threshold(p[rows], d.y[rows], d.hard[rows], kinds=d.kind[rows], **pick)
        return t, {}, how
    t, how = _recall_threshold(p[rows], d.y[rows], d.hard[rows], recall_target)
    per_domain: dict[str, float] = {}
    how["domains"] = {}
    careful: float | None = None  # keeps THIN_DOMAIN_KEEP of all the language's good pairs; made when needed
    for code, name in enumerate(DOMAINS):
        cell = rows & (d.dom == code)
        if int(d.y[cell].sum()) >= MIN_THRESHOLD_GOOD:
            per_domain[name], how["domains"][name] = _recall_threshold(p[cell], d.y[cell], d.hard[cell], recall_target)
        elif name in pooled and cell.any():
            per_domain[name] = min(pooled[name], t)
            how["domains"][name] = {"threshold": round(per_domain[name], 4), "pooled": True, "good": int(d.y[cell].sum())}
        elif cell.any():
            if careful is None:
                careful = _recall_threshold(p[rows], d.y[rows], d.hard[rows], max(recall_target, THIN_DOMAIN_KEEP))[0]
            per_domain[name] = min(careful, t)
            how["domains"][name] = {"threshold": round(per_domain[name], 4), "language": True, "good": int(d.y[cell].sum())}
    return t, per_domain, how


def _pooled_domain_thresholds(oof: np.ndarray, d: _Design, recall_target: float | None) -> dict[str, float]:
    if recall_target is None:
        return {}
    out = {}
    for code, name in enumerate(DOMAINS):
        cell = d.dom == code
        if int(d.y[cell].sum()) >= MIN_THRESHOLD_GOOD:
            out[name] = _recall_threshold(oof[cell], d.y[cell], d.hard[cell], max(recall_target, THIN_DOMAIN_KEEP))[0]
    return out
