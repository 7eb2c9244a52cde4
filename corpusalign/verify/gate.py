"""The calibrated verification gate: from the scores of a pair to keep-or-drop, with a reason.

A :class:`LanguageGate` is a logistic regression over the pair's scores (see :func:`design_matrix`
for the derived features it reads) plus a probability threshold, fitted per target language by
:func:`corpusalign.verify.calibrate.calibrate`. A row is kept when its probability reaches the
threshold and no hard rule fires. Hard rules catch faults no similarity can excuse:

==========================  =======================================================================
reason (most specific 1st)  hard rule (thresholds in ``LanguageGate.rules``)
==========================  =======================================================================
``untranslated``            ``copy_sim >= copy_sim_max`` (a copy of the source), unless the target
                            is language-neutral (``neutral``: a name, a month, a code, a number)
                            and ``neutral_copy_ok`` is set
``wrong_language``          ``script_ok < script_min``, or language ID's top guess is another
                            language with probability ``>= lid_other_min`` and the expected one
                            has ``lid_expected < lid_min_any``, or ``< lid_min`` while the target
                            has at least ``lid_min_chars`` characters (a hesitant guess, such as
                            ``fr`` at 0.19 for a Swahili sentence, is left to the probability)
``placeholder_mismatch``    ``placeholder_ok`` is false
``number_mismatch``         ``num_agree < num_min``
``truncated``               length z-score ``< -len_z_max``
``misaligned``              not ``nn_pair``, ``margin < margin_min`` and another source of the
                            pool fits the target at least ``gap_min`` better (``source_gap``)
``low_similarity``          (no hard rule: the probability is below the threshold)
==========================  =======================================================================

**Domains.** What a signal can be trusted with depends on the length of the text: language ID is
blind on "Funga" (Swahili for "Close"), a length ratio means little for "Delete" -> "削除", and a
pool of UI labels is dense with near-synonyms. Every pair falls into a domain by the length of its
source (:data:`~corpusalign.verify.scores.DOMAINS`: short strings of at most 6 words, sentences,
paragraphs of more than 25), and a gate may hold a :class:`DomainGate` per domain: offsets to the
weights and bias, its own threshold, and its own hard-rule settings (calibration relaxes or switches
off, for one domain, a rule that would drop good pairs of it). The rules are a vectorised table
(:func:`hard_rules`) whose thresholds are read per row (:func:`rule_values`).

A row dropped for a low probability alone gets the first reason whose soft sign it shows
(``copy_sim >= 0.5``; ``script_ok < 0.9`` or ``lid_expected`` below a tenth of the language's usual
value; a number disagreement; length z < -2; not ``nn_pair`` or ``margin < 1``), else
``low_similarity``.

The shipped :data:`DEFAULT_GATES` (de, ja, sw and ``"*"`` for any other language) were calibrated for
multilingual-e5-small; ``gates_e5_small.json`` records on what and how. A gate file without domains
(from an earlier release) loads and decides as it did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import polars as pl

from corpusalign.langtags import lid_label
from corpusalign.verify.features import LENGTH_COLUMN
from corpusalign.verify.scores import DOMAINS, domain_codes

#: Columns of :func:`design_matrix`, in order. ``len_z`` is the length z-score
#: ``(len_log_ratio - len_log_ratio_mean) / len_log_ratio_std``; ``log_chars`` is ``log(1 + source chars)``.
DESIGN_COLUMNS: tuple[str, ...] = (
    "cos",  # cosine of the embeddings
    "margin",  # ratio margin; imputed (``impute["margin"]``) for a pool of one
    "nn_pair",  # 1 mutual nearest neighbours, 0 not, 0.5 unknown
    "len_z_below",  # max(0, -len_z): shorter than usual (truncation)
    "len_z_above",  # max(0, len_z): longer than usual (added content)
    "num_agree",
    "placeholder_ok",
    "copy_sim",
    "script_ok",
    "lid_expected",  # imputed (``impute["lid_expected"]``) when language ID did not run
    "lid_log",  # log10(lid_expected + 1e-4): tells "unlikely" from "ruled out" (0 probability)
    "log_chars",  # imputed (``impute["log_chars"]``) without ``src_chars``
    "lid_x_chars",  # lid_expected * min(1, target chars / 40): language ID counts more on longer texts
    "margin_x_chars",  # (margin - 1) * min(1, source chars / 40)
    "cos_x_chars",  # cos * min(1, source chars / 40)
    "end_punct_ok",  # 1 when both or neither end a sentence (1 when unknown)
    "sent_extra",  # max(0, sent_diff): sentences the source lacks (0 when unknown)
    "sent_fewer",  # max(0, -sent_diff)
    "prefix_gain",  # cos(source, target prefix) - cos(source, target); imputed (``impute["prefix_gain"]``) without a prefix
    "source_gap",  # cos(target, best other source) - cos(target, source); imputed (``impute["source_gap"]``) for a pool of one
    "copy_neutral",  # copy_sim * neutral: a copy of a name, a month, a code or a number (often right)
    "word_log_ratio",  # log((target words + 1) / (source words + 1)); 0 when unknown
    "word_log_ratio_sq",  # its square: with the linear term, a word-count ratio away from the language's usual one
)

#: Hard-rule thresholds (see the module docstring); a gate may override any of them.
DEFAULT_RULES: dict[str, float] = {
    "copy_sim_max": 0.9,
    "script_min": 0.5,
    "lid_min": 0.01,
    "lid_min_chars": 25.0,
    "lid_min_any": 0.001,
    "lid_other_min": 0.5,
    "num_min": 0.5,
    "len_z_max": 4.0,
    "margin_min": 0.95,
    # a copy of a language-neutral text (``neutral``: names, numbers, codes) is not hard-dropped when >= 0.5
    "neutral_copy_ok": 0.0,
    # the misaligned rule also needs another source of the pool to fit the target at least this much better
    "gap_min": -1.0,
}
#: Typical ``prefix_gain`` and ``source_gap`` of a good pair (the shipped ``"*"`` gate's medians,
#: rounded): what a gate without its own imputed values assumes when they are missing.
PREFIX_GAIN_IMPUTE = -0.02
SOURCE_GAP_IMPUTE = -0.03
#: Imputed values for missing inputs (a calibrated gate stores its own).
DEFAULT_IMPUTE: dict[str, float] = {
    "margin": 1.0,
    "lid_expected": 0.5,
    "log_chars": math.log1p(40.0),
    "prefix_gain": PREFIX_GAIN_IMPUTE,
    "source_gap": SOURCE_GAP_IMPUTE,
}

#: The fields of a length model (:class:`LanguageGate`, or a :class:`DomainGate` override).
LENGTH_FIELDS = ("len_log_ratio_mean", "len_log_ratio_std", "len_log_ratio_slope", "len_log_ratio_var_chars")

REASONS: tuple[str, ...] = (
    "untranslated",
    "wrong_language",
    "placeholder_mismatch",
    "number_mismatch",
    "truncated",
    "misaligned",
    "low_similarity",
)


def _check_names(what: str, **named: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for a weight, rule or domain name that the gate does not know."""
    known = {"weights": DESIGN_COLUMNS, "rules": tuple(DEFAULT_RULES), "domains": DOMAINS}
    for kind, mapping in named.items():
        unknown = set(mapping) - set(known[kind])
        if unknown:
            raise ValueError(f"unknown {what} {kind} {sorted(unknown)}; known: {', '.join(known[kind])}")


@dataclass(frozen=True)
class DomainGate:
    """What a gate does differently for the pairs of one domain (short strings, sentences, paragraphs).

    ``weights`` (by :data:`DESIGN_COLUMNS` name) and ``bias`` are added to the language's; ``threshold``
    replaces its threshold (``None``: the language's); ``rules`` override hard-rule thresholds (a rule
    that drops too many good pairs of the domain is set where it never fires); ``length`` overrides
    the language's length model (:data:`LENGTH_FIELDS`): "Yesterday" -> "昨日" is short for Japanese
    sentences, not for Japanese UI labels.
    """

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    threshold: float | None = None
    rules: dict[str, float] = field(default_factory=dict)
    length: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_names("domain", weights=self.weights, rules=self.rules)
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.length and set(self.length) != set(LENGTH_FIELDS):
            raise ValueError(f"a domain's length model needs exactly {', '.join(LENGTH_FIELDS)}, got {sorted(self.length)}")
        if self.length and not self.length["len_log_ratio_std"] > 0:
            raise ValueError(f"len_log_ratio_std must be > 0, got {self.length['len_log_ratio_std']}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DomainGate:
        """The domain gate described by ``d`` (as :meth:`LanguageGate.to_dict` writes it); an unknown key is an error."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a domain gate must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {"weights", "bias", "threshold", "rules", "length"}
        if unknown:
            raise ValueError(f"unknown domain gate keys {sorted(unknown)}; known: bias, length, rules, threshold, weights")
        return cls(
            weights={str(k): float(v) for k, v in dict(d.get("weights") or {}).items()},
            bias=float(d.get("bias") or 0.0),
            threshold=None if d.get("threshold") is None else float(d["threshold"]),
            rules={str(k): float(v) for k, v in dict(d.get("rules") or {}).items()},
            length={str(k): float(v) for k, v in dict(d.get("length") or {}).items()},
        )


@dataclass(frozen=True)
class LanguageGate:
    """A calibrated keep/drop gate for one target language (or ``"*"``, any other language).

    ``weights`` (by :data:`DESIGN_COLUMNS` name; missing names weigh 0) and ``bias`` act on the raw
    design matrix: ``p = sigmoid(design_matrix(features, gate) @ w + bias)``. ``threshold``: keep when
    ``p >= threshold``. ``len_log_ratio_mean``/``_std``: the language's usual ``log(target chars /
    source chars)`` on good pairs, at a source of 40 characters; the mean moves by
    ``len_log_ratio_slope`` per unit of ``log(source chars / 40)`` and the variance is
    ``std**2 + len_log_ratio_var_chars / source chars`` (short texts vary more); see :func:`len_z`.
    ``precision``/``recall``: measured on held-out calibration data (``None`` when unknown).
    ``rules``: hard-rule thresholds over :data:`DEFAULT_RULES`. ``impute``:
    values for missing inputs. ``n_train``: pairs the weights were fitted on. ``domains``: per domain
    (:data:`~corpusalign.verify.scores.DOMAINS`) a :class:`DomainGate` with that domain's weight
    offsets, threshold and rule overrides; a gate without them treats every pair alike.
    """

    weights: dict[str, float]
    bias: float
    threshold: float
    len_log_ratio_mean: float
    len_log_ratio_std: float
    precision: float | None = None
    recall: float | None = None
    len_log_ratio_slope: float = 0.0
    len_log_ratio_var_chars: float = 0.0
    rules: dict[str, float] = field(default_factory=dict)
    impute: dict[str, float] = field(default_factory=dict)
    n_train: int | None = None
    domains: dict[str, DomainGate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_names("gate", weights=self.weights, rules=self.rules, domains=self.domains)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not self.len_log_ratio_std > 0:
            raise ValueError(f"len_log_ratio_std must be > 0, got {self.len_log_ratio_std}")

    def rule(self, name: str) -> float:
        return float(self.rules.get(name, DEFAULT_RULES[name]))

    def imputed(self, name: str) -> float:
        return float(self.impute.get(name, DEFAULT_IMPUTE[name]))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready dict; ``LanguageGate.from_dict(g.to_dict()) == g``."""
        d = asdict(self)
        d["weights"] = {k: float(v) for k, v in self.weights.items()}
        if not self.domains:
            del d["domains"]  # a gate without domains reads as it did before they existed
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LanguageGate:
        """The gate described by ``d`` (as written by :meth:`to_dict`); an unknown key is an error."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a gate must be a mapping, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown gate keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
        missing = {"weights", "bias", "threshold", "len_log_ratio_mean", "len_log_ratio_std"} - set(d)
        if missing:
            raise KeyError(f"gate is missing {sorted(missing)}")

        def opt(key: str) -> float | None:
            v = d.get(key)
            return None if v is None else float(v)

        return cls(
            weights={str(k): float(v) for k, v in dict(d["weights"]).items()},
            bias=float(d["bias"]),
            threshold=float(d["threshold"]),
            len_log_ratio_mean=float(d["len_log_ratio_mean"]),
            len_log_ratio_std=float(d["len_log_ratio_std"]),
            precision=opt("precision"),
            recall=opt("recall"),
            len_log_ratio_slope=float(d.get("len_log_ratio_slope") or 0.0),
            len_log_ratio_var_chars=float(d.get("len_log_ratio_var_chars") or 0.0),
            rules={str(k): float(v) for k, v in dict(d.get("rules") or {}).items()},
            impute={str(k): float(v) for k, v in dict(d.get("impute") or {}).items()},
            n_train=None if d.get("n_train") is None else int(d["n_train"]),
            domains={str(k): DomainGate.from_dict(v) for k, v in dict(d.get("domains") or {}).items()},
        )


def _column(features: pl.DataFrame, name: str, fill: float) -> np.ndarray:
    if name not in features.columns:
        return np.full(features.height, fill, dtype=np.float64)
    col = features[name].cast(pl.Float64).fill_nan(None).fill_null(fill)
    return col.to_numpy().astype(np.float64)


#: Source length (characters) at which ``LanguageGate.len_log_ratio_mean`` applies.
LENGTH_REFERENCE_CHARS = 40.0


def expected_length(chars: np.ndarray, gate: LanguageGate | Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``len_log_ratio`` for good pairs with sources of ``chars``
    characters, under ``gate``'s length model (or a mapping of :data:`LENGTH_FIELDS`)."""
    m = {f: getattr(gate, f) for f in LENGTH_FIELDS} if isinstance(gate, LanguageGate) else gate
    chars = np.maximum(np.asarray(chars, dtype=np.float64), 1.0)
    mean = m["len_log_ratio_mean"] + m["len_log_ratio_slope"] * (np.log(chars) - math.log(LENGTH_REFERENCE_CHARS))
    std = np.sqrt(m["len_log_ratio_std"] ** 2 + max(m["len_log_ratio_var_chars"], 0.0) / chars)
    return mean, std


def len_z(features: pl.DataFrame, gate: LanguageGate, dom: np.ndarray | None = None) -> np.ndarray:
    """Length z-score of each pair, ``(len_log_ratio - mean) / std`` (0 when ``len_log_ratio`` is missing).

    Mean and std depend on the source length (``src_chars``; the gate's typical length when the
    column is absent), see :func:`expected_length`, and on the pair's domain where the gate has a
    length model for it (:class:`DomainGate`). Example: for German (mean about 0.14, std about
    0.2) a target with half the source's characters (``log 0.5 = -0.69``) has z about -4.
    """
    chars = _column(features, LENGTH_COLUMN, math.expm1(gate.imputed("log_chars")))
    mean, std = expected_length(chars, gate)
    for d, rows in _domain_rows(features, gate, dom):
        if d.length:  # the domain's own length model
            mean[rows], std[rows] = expected_length(chars[rows], d.length)
    llr = _column(features, "len_log_ratio", np.nan)
    return np.where(np.isnan(llr), 0.0, (llr - mean) / std)


def design_matrix(features: pl.DataFrame, gate: LanguageGate) -> np.ndarray:
    """``(n, len(DESIGN_COLUMNS))`` float64 matrix of the gate's inputs, derived from the score columns.

    Reads :data:`~corpusalign.verify.features.FEATURE_COLUMNS` and, when present,
    :data:`~corpusalign.verify.features.EXTRA_COLUMNS` (else neutral values).
    Missing values: ``margin``, ``lid_expected``, ``prefix_gain`` (a single-sentence target)
    and ``source_gap`` take the gate's imputed values (a typical good pair's), ``nn_pair`` 0.5,
    ``num_agree``/``placeholder_ok``/``script_ok`` 1 (nothing to disagree about), ``copy_sim`` 0,
    ``cos`` 0, ``len_log_ratio`` the gate's mean. Example: a pair with ``len_log_ratio`` two
    standard deviations below the mean gets ``len_z_below = 2`` and ``len_z_above = 0``.
    """
    z = len_z(features, gate)
    margin = _column(features, "margin", gate.imputed("margin"))
    lid = _column(features, "lid_expected", gate.imputed("lid_expected"))
    log_chars_fill = gate.imputed("log_chars")
    chars = _column(features, LENGTH_COLUMN, math.expm1(log_chars_fill))
    cos = _column(features, "cos", 0.0)
    tgt_chars = chars * np.exp(_column(features, "len_log_ratio", 0.0))
    src_w = np.minimum(1.0, chars / 40.0)
    sent_diff = _column(features, "sent_diff", 0.0)
    tgt_w = np.minimum(1.0, tgt_chars / 40.0)
    cols = {
        "cos": cos,
        "margin": margin,
        "nn_pair": _column(features, "nn_pair", 0.5),
        "len_z_below": np.maximum(0.0, -z),
        "len_z_above": np.maximum(0.0, z),
        "num_agree": _column(features, "num_agree", 1.0),
        "placeholder_ok": _column(features, "placeholder_ok", 1.0),
        "copy_sim": _column(features, "copy_sim", 0.0),
        "script_ok": _column(features, "script_ok", 1.0),
        "lid_expected": lid,
        "lid_log": np.log10(np.clip(lid, 0.0, 1.0) + 1e-4),
        "log_chars": np.log1p(chars),
        "lid_x_chars": lid * tgt_w,
        "margin_x_chars": (margin - 1.0) * src_w,
        "cos_x_chars": cos * src_w,
        "end_punct_ok": _column(features, "end_punct_ok", 1.0),
        "sent_extra": np.maximum(0.0, sent_diff),
        "sent_fewer": np.maximum(0.0, -sent_diff),
        "prefix_gain": _column(features, "prefix_gain", gate.imputed("prefix_gain")),
        "source_gap": _column(features, "source_gap", gate.imputed("source_gap")),
        "copy_neutral": _column(features, "copy_sim", 0.0) * _column(features, "neutral", 0.0),
        "word_log_ratio": _column(features, "word_log_ratio", 0.0),
        "word_log_ratio_sq": _column(features, "word_log_ratio", 0.0) ** 2,
    }
    return np.column_stack([cols[c] for c in DESIGN_COLUMNS]) if features.height else np.zeros((0, len(DESIGN_COLUMNS)))


def _weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    return np.array([weights.get(c, 0.0) for c in DESIGN_COLUMNS], dtype=np.float64)


def predict_proba(features: pl.DataFrame, gate: LanguageGate) -> np.ndarray:
    """``(n,)`` probability that each pair is a faithful translation, from the gate's logistic model
    (plus, for a pair of a domain in ``gate.domains``, that domain's weight and bias offsets)."""
    x = design_matrix(features, gate)
    logits = x @ _weight_vector(gate.weights) + gate.bias
    for d, rows in _domain_rows(features, gate):
        logits[rows] += x[rows] @ _weight_vector(d.weights) + d.bias
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


def domain_index(features: pl.DataFrame) -> np.ndarray:
    """``(n,)`` int8 index into :data:`~corpusalign.verify.scores.DOMAINS` of each pair, from its source
    length (``src_words``; without it ``src_chars / 6``; pairs of unknown length count as sentences)."""
    if "src_words" in features.columns:
        words = _column(features, "src_words", np.nan)
    else:
        words = _column(features, LENGTH_COLUMN, np.nan) / 6.0
    return np.where(np.isnan(words), 1, domain_codes(np.nan_to_num(words, nan=0.0))).astype(np.int8)


def _domain_rows(
    features: pl.DataFrame, gate: LanguageGate, dom: np.ndarray | None = None
) -> Iterator[tuple[DomainGate, np.ndarray]]:
    """``(domain gate, row mask)`` for each domain of ``gate`` that has rows in ``features`` (``dom``:
    :func:`domain_index` of ``features`` when the caller has it already)."""
    if not gate.domains or not features.height:
        return
    dom = domain_index(features) if dom is None else dom
    for code, name in enumerate(DOMAINS):
        d = gate.domains.get(name)
        rows = dom == code
        if d is not None and rows.any():
            yield d, rows


def _per_domain(
    features: pl.DataFrame, gate: LanguageGate, base: float, value: Callable[[DomainGate], float], dom: np.ndarray | None = None
) -> np.ndarray:
    """``(n,)`` values of a gate setting for each row: ``value`` of the row's domain gate, else ``base``."""
    out = np.full(features.height, base, dtype=np.float64)
    for d, rows in _domain_rows(features, gate, dom):
        out[rows] = value(d)
    return out


def thresholds(features: pl.DataFrame, gate: LanguageGate, dom: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` probability threshold of each pair: its domain's (``gate.domains``), else the gate's."""
    return _per_domain(features, gate, gate.threshold, lambda d: gate.threshold if d.threshold is None else d.threshold, dom)


def rule_values(features: pl.DataFrame, gate: LanguageGate, name: str, dom: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` value of hard rule ``name`` for each pair: its domain's override, else the gate's."""
    base = gate.rule(name)
    return _per_domain(features, gate, base, lambda d: float(d.rules.get(name, base)), dom)


def _optional(features: pl.DataFrame, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing values (all NaN when the column is absent)."""
    if name not in features.columns:
        return np.full(features.height, np.nan)
    return features[name].cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)


def hard_rules(
    features: pl.DataFrame,
    gate: LanguageGate,
    lid_lang: Sequence[str | None] | None,
    lang: str,
    lid_score: Sequence[float | None] | None = None,
    dom: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``{reason: (n,) bool}``: where each hard rule fires (see the module docstring), in :data:`REASONS` order.

    Every threshold is taken per row from the row's domain (:func:`rule_values`), so a rule that
    calibration found unreliable for short strings can be off there and on for paragraphs. ``dom``:
    :func:`domain_index` of ``features`` when the caller has it already.
    """
    n = features.height
    dom = domain_index(features) if dom is None else dom  # once for every rule
    r = {name: rule_values(features, gate, name, dom) for name in DEFAULT_RULES}
    copy = _column(features, "copy_sim", 0.0)
    neutral = _column(features, "neutral", 0.0)
    script = _column(features, "script_ok", 1.0)
    lid = _optional(features, "lid_expected")
    margin, nn, gap = _optional(features, "margin"), _optional(features, "nn_pair"), _optional(features, "source_gap")
    chars = _column(features, LENGTH_COLUMN, np.inf) * np.exp(_column(features, "len_log_ratio", 0.0))
    guesses = np.array(list(lid_lang) if lid_lang is not None else [None] * n, dtype=object)
    scores = (
        np.array([np.nan if s is None else float(s) for s in lid_score], dtype=np.float64)
        if lid_score is not None
        else np.full(n, np.nan)
    )
    # a top guess counts only when it is sure of itself; one of unknown probability counts as sure
    want = lid_label(lang)  # lid.176 knows base languages: a pt-BR row is right when it says pt
    other = (guesses != None) & (guesses != want) & (np.isnan(scores) | (scores >= r["lid_other_min"]))  # noqa: E711
    ruled_out = (lid < r["lid_min_any"]) | ((lid < r["lid_min"]) & (chars >= r["lid_min_chars"]))
    z = len_z(features, gate, dom)
    return {
        "untranslated": (copy >= r["copy_sim_max"]) & ~((neutral >= 0.5) & (r["neutral_copy_ok"] >= 0.5)),
        "wrong_language": (script < r["script_min"]) | (other & ~np.isnan(lid) & ruled_out),
        "placeholder_mismatch": _column(features, "placeholder_ok", 1.0) < 0.5,
        "number_mismatch": _column(features, "num_agree", 1.0) < r["num_min"],
        "truncated": z < -r["len_z_max"],
        "misaligned": (nn < 0.5) & (margin < r["margin_min"]) & (np.isnan(gap) | (gap >= r["gap_min"])),
    }


#: Soft signs that name the reason of a row dropped for its probability alone (see the module docstring).
SOFT_COPY_SIM = 0.5  # copy_sim at or above: close to a copy of the source
SOFT_SCRIPT_OK = 0.9  # script_ok below: letters of another script
SOFT_LID_SHARE = 0.1  # lid_expected below this share of the language's usual value
SOFT_LEN_Z = -2.0  # length z-score below: shorter than usual
SOFT_MARGIN = 1.0  # margin below (or not mutual nearest neighbours): another pair fits as well


def _soft_reason(i: int, p: float, t: float, lang: str, cols: dict[str, np.ndarray], gate: LanguageGate) -> tuple[str, str]:
    """The most specific reason a row dropped for its probability alone shows a sign of, and why."""
    why = f"p={p:.3f} < {t:.3f}"
    copy, script, lid, num, z = cols["copy"][i], cols["script"][i], cols["lid"][i], cols["num"][i], cols["z"][i]
    margin, nn = cols["margin"][i], cols["nn"][i]
    if copy >= SOFT_COPY_SIM:
        return "untranslated", why + f"; close to a copy of the source (3-gram similarity {copy:.2f})"
    if script < SOFT_SCRIPT_OK or (not np.isnan(lid) and lid < SOFT_LID_SHARE * gate.imputed("lid_expected")):
        return "wrong_language", why + f"; script share {script:.2f}, P({lang}) {lid:.2f}"
    if num < 1.0:
        return "number_mismatch", why + f"; number agreement {num:.2f}"
    if z < SOFT_LEN_Z:
        return "truncated", why + f"; length z-score {z:.1f}"
    if (not np.isnan(nn) and nn < 0.5) or (not np.isnan(margin) and margin < SOFT_MARGIN):
        mutual = "" if np.isnan(nn) or nn >= 0.5 else ", not mutual nearest neighbours"
        return "misaligned", why + f"; margin {margin:.3f}{mutual}"
    return "low_similarity", why + f"; cos {cols['cos'][i]:.3f}"


def decide(
    features: pl.DataFrame,
    gate: LanguageGate,
    lid_lang: Sequence[str | None] | None,
    lang: str,
    lid_score: Sequence[float | None] | None = None,
) -> tuple[list[str | None], list[str | None]]:
    """``(reason, detail)`` per row: ``(None, None)`` for a kept row, else one of :data:`REASONS` and a short explanation.

    ``features`` holds the score columns (and ``verify_p`` when the verify step already computed the
    probability; otherwise :func:`predict_proba` computes it). ``lid_lang``: language ID's top guess
    per row (or ``None``), ``lid_score`` its probability (unknown: the guess counts as confident).
    ``lang``: the expected language of the rows. The first hard rule that fires (:func:`hard_rules`)
    gives the reason; a row no rule rejects is kept when its probability reaches its domain's
    threshold (:func:`thresholds`), else it gets the most specific soft sign it shows.

    Example: a target that is a copy of its source (``copy_sim = 1``) gets ``("untranslated",
    "copy of the source (character 3-gram similarity 1.00)")`` whatever its probability.
    """
    n = features.height
    if lid_lang is not None and len(lid_lang) != n:
        raise ValueError(f"lid_lang has {len(lid_lang)} entries for {n} rows")
    if lid_score is not None and len(lid_score) != n:
        raise ValueError(f"lid_score has {len(lid_score)} entries for {n} rows")
    p = predict_proba(features, gate)
    if "verify_p" in features.columns:
        given = _optional(features, "verify_p")
        p = np.where(np.isnan(given), p, given)
    dom = domain_index(features)
    t = thresholds(features, gate, dom)
    hard = hard_rules(features, gate, lid_lang, lang, lid_score, dom)
    cols = {
        "copy": _column(features, "copy_sim", 0.0),
        "script": _column(features, "script_ok", 1.0),
        "lid": _optional(features, "lid_expected"),
        "num": _column(features, "num_agree", 1.0),
        "z": len_z(features, gate, dom),
        "margin": _optional(features, "margin"),
        "nn": _optional(features, "nn_pair"),
        "cos": _column(features, "cos", np.nan),
        "guess": list(lid_lang) if lid_lang is not None else [None] * n,
    }
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    decided = np.zeros(n, dtype=bool)
    for reason, fires in hard.items():
        for i in np.flatnonzero(fires & ~decided):
            reasons[i], details[i] = reason, _hard_detail(reason, int(i), lang, cols)
        decided |= fires
    for i in np.flatnonzero(~decided & (p < t)):
        reasons[i], details[i] = _soft_reason(int(i), float(p[i]), float(t[i]), lang, cols, gate)
    return reasons, details


def _hard_detail(reason: str, i: int, lang: str, cols: dict[str, np.ndarray]) -> str:
    if reason == "untranslated":
        return f"copy of the source (character 3-gram similarity {cols['copy'][i]:.2f})"
    if reason == "wrong_language":
        if cols["script"][i] < 0.5:
            return f"only {cols['script'][i]:.0%} of the letters are in the script of {lang}"
        return f"language ID says {cols['guess'][i]}, {lang} has probability {cols['lid'][i]:.3f}"
    if reason == "placeholder_mismatch":
        return "placeholders, URLs or e-mails differ from the source"
    if reason == "number_mismatch":
        return f"numbers differ from the source (agreement {cols['num'][i]:.2f})"
    if reason == "truncated":
        return f"much shorter than usual for {lang} (length z-score {cols['z'][i]:.1f})"
    return f"another source fits better: not the source's nearest neighbour and margin {cols['margin'][i]:.3f}"


GATES_FILE = "gates_e5_small.json"


def load_gates(path: str | None = None) -> dict[str, LanguageGate]:
    """``{lang: LanguageGate}`` from a gates JSON file (default: the shipped ``gates_e5_small.json``)."""
    if path is None:
        ref = resources.files("corpusalign.verify").joinpath(GATES_FILE)
        if not ref.is_file():
            return {}
        data = json.loads(ref.read_text(encoding="utf-8"))
    else:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    return {lang: LanguageGate.from_dict(g) for lang, g in data["gates"].items()}


#: Gates calibrated for multilingual-e5-small on the bundled sample: ``de``, ``ja``, ``sw`` and ``"*"``.
DEFAULT_GATES: dict[str, LanguageGate] = load_gates()
