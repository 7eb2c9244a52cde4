"""The base gate of a language, before any weights: its length model, imputed values and hard rules.

Each hard rule is set per (language, length domain): the strictest candidate setting that drops at
most ``RULE_MAX_GOOD_DROP`` of the domain's good pairs (:func:`_domain_rules`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from corpusalign.verify.features import LENGTH_COLUMN
from corpusalign.verify.gate import (
    DEFAULT_IMPUTE,
    DEFAULT_RULES,
    LENGTH_FIELDS,
    LENGTH_REFERENCE_CHARS,
    DomainGate,
    LanguageGate,
    domain_index,
)
from corpusalign.verify.gate import hard_rules as gate_hard_rules
from corpusalign.verify.scores import DOMAINS

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
#: Rules of a domain of a language with too few good calibration pairs to show that the stricter
#: settings are safe there: no length or language-ID rule, and a misaligned pair only when another
#: source of the pool fits the target by 0.05 of cosine better than its own (on UDHR, a shifted
#: paragraph scores 0.05-0.09, a right one up to about 0.02).
THIN_DOMAIN_RULES = {"len_z_max": 1e9, "lid_other_min": 2.0, "gap_min": 0.05}
#: Rules of every gate calibration fits: language-neutral copies are left to the probability, and the
#: misaligned rule needs another source of the pool to fit the target at least as well.
NEW_GATE_RULES = {"neutral_copy_ok": 1.0, "gap_min": 0.0}


def _length_model(llr: np.ndarray, chars: np.ndarray, fit_shape: bool) -> dict[str, float]:
    """Robust fit of ``llr ~ mean + slope * log(chars / 40)`` with variance ``std**2 + var_chars / chars``.

    With ``fit_shape=False`` (few pairs, or little spread of lengths) slope and var_chars stay 0.
    """
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
