"""The logistic fits: one joint model over all languages and domains, its out-of-fold probabilities, and the
finished gates (weights, thresholds) per language and for ``"*"``; the refit on all pairs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from corpusalign.verify.calibrate.design import _any_language_design, _Design, _design
from corpusalign.verify.calibrate.thresholds import (
    KEPT_CONFIDENCE,
    MAX_KEPT,
    MAX_RECALL_LOSS,
    RECALL_TARGET,
    _choose_thresholds,
    _pooled_domain_thresholds,
)
from corpusalign.verify.gate import DESIGN_COLUMNS, DomainGate, LanguageGate
from corpusalign.verify.scores import DOMAINS

#: A language with fewer distinct pairs (concepts) than this gets the pooled model and threshold.
MIN_PAIRS = 40
#: Weight of the per-language and per-domain deviations in the joint model (smaller = stronger pull
#: towards the shared weights).
SHRINK = 0.5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


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
