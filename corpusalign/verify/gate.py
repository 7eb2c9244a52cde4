"""The calibrated verification gate: from the scores of a pair to keep-or-drop, with a reason.

A :class:`LanguageGate` is a logistic regression over the pair's scores (see :func:`design_matrix`
for the derived features it reads) plus a probability threshold, fitted per target language by
:func:`corpusalign.verify.calibrate.calibrate`. A row is kept when its probability reaches the
threshold and no hard rule fires. Hard rules catch faults no similarity can excuse:

==========================  =======================================================================
reason (most specific 1st)  hard rule (thresholds in ``LanguageGate.rules``)
==========================  =======================================================================
``untranslated``            ``copy_sim >= copy_sim_max`` (a copy of the source)
``wrong_language``          ``script_ok < script_min``, or language ID's top guess is another
                            language with probability ``>= lid_other_min`` and the expected one
                            has ``lid_expected < lid_min_any``, or ``< lid_min`` while the target
                            has at least ``lid_min_chars`` characters (a hesitant guess, such as
                            ``fr`` at 0.19 for a Swahili sentence, is left to the probability)
``placeholder_mismatch``    ``placeholder_ok`` is false
``number_mismatch``         ``num_agree < num_min``
``truncated``               length z-score ``< -len_z_max``
``misaligned``              not ``nn_pair`` and ``margin < margin_min``
``low_similarity``          (no hard rule: the probability is below the threshold)
==========================  =======================================================================

A row dropped for a low probability alone gets the first reason whose soft sign it shows
(``copy_sim >= 0.5``; ``script_ok < 0.9`` or ``lid_expected`` below a tenth of the language's usual
value; a number disagreement; length z < -2; not ``nn_pair`` or ``margin < 1``), else
``low_similarity``.

The shipped :data:`DEFAULT_GATES` (de, ja, sw and ``"*"`` for any other language) were calibrated for
multilingual-e5-small on the bundled sample; ``gates_e5_small.json`` records how.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import polars as pl

from corpusalign.verify.features import LENGTH_COLUMN

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

REASONS: tuple[str, ...] = (
    "untranslated",
    "wrong_language",
    "placeholder_mismatch",
    "number_mismatch",
    "truncated",
    "misaligned",
    "low_similarity",
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
    values for missing inputs. ``n_train``: pairs the weights were fitted on.
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

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DESIGN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown gate weights {sorted(unknown)}; known: {', '.join(DESIGN_COLUMNS)}")
        unknown = set(self.rules) - set(DEFAULT_RULES)
        if unknown:
            raise ValueError(f"unknown gate rules {sorted(unknown)}; known: {', '.join(DEFAULT_RULES)}")
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
        )


def _column(features: pl.DataFrame, name: str, fill: float) -> np.ndarray:
    if name not in features.columns:
        return np.full(features.height, fill, dtype=np.float64)
    col = features[name].cast(pl.Float64).fill_nan(None).fill_null(fill)
    return col.to_numpy().astype(np.float64)


#: Source length (characters) at which ``LanguageGate.len_log_ratio_mean`` applies.
LENGTH_REFERENCE_CHARS = 40.0


def expected_length(chars: np.ndarray, gate: LanguageGate) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``len_log_ratio`` for good pairs with sources of ``chars`` characters."""
    chars = np.maximum(np.asarray(chars, dtype=np.float64), 1.0)
    mean = gate.len_log_ratio_mean + gate.len_log_ratio_slope * (np.log(chars) - math.log(LENGTH_REFERENCE_CHARS))
    std = np.sqrt(gate.len_log_ratio_std**2 + max(gate.len_log_ratio_var_chars, 0.0) / chars)
    return mean, std


def len_z(features: pl.DataFrame, gate: LanguageGate) -> np.ndarray:
    """Length z-score of each pair, ``(len_log_ratio - mean) / std`` (0 when ``len_log_ratio`` is missing).

    Mean and std depend on the source length (``src_chars``; the gate's typical length when the
    column is absent), see :func:`expected_length`. Example: for German (mean about 0.14, std about
    0.2) a target with half the source's characters (``log 0.5 = -0.69``) has z about -4.
    """
    chars = _column(features, LENGTH_COLUMN, math.expm1(gate.imputed("log_chars")))
    mean, std = expected_length(chars, gate)
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
    }
    return np.column_stack([cols[c] for c in DESIGN_COLUMNS]) if features.height else np.zeros((0, len(DESIGN_COLUMNS)))


def _weights(gate: LanguageGate) -> np.ndarray:
    return np.array([gate.weights.get(c, 0.0) for c in DESIGN_COLUMNS], dtype=np.float64)


def predict_proba(features: pl.DataFrame, gate: LanguageGate) -> np.ndarray:
    """``(n,)`` probability that each pair is a faithful translation, from the gate's logistic model."""
    logits = design_matrix(features, gate) @ _weights(gate) + gate.bias
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


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
    ``lang``: the expected language of the rows.

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
        given = features["verify_p"].cast(pl.Float64).fill_nan(None).to_numpy()
        p = np.where(np.isnan(given.astype(np.float64)), p, given)
    copy = _column(features, "copy_sim", 0.0)
    script = _column(features, "script_ok", 1.0)
    lid = features["lid_expected"].cast(pl.Float64).to_numpy() if "lid_expected" in features.columns else np.full(n, np.nan)
    num = _column(features, "num_agree", 1.0)
    ph = _column(features, "placeholder_ok", 1.0)
    z = len_z(features, gate)
    margin = features["margin"].cast(pl.Float64).to_numpy() if "margin" in features.columns else np.full(n, np.nan)
    nn = features["nn_pair"].cast(pl.Float64).to_numpy() if "nn_pair" in features.columns else np.full(n, np.nan)
    chars = _column(features, LENGTH_COLUMN, np.inf) * np.exp(_column(features, "len_log_ratio", 0.0))
    guesses = list(lid_lang) if lid_lang is not None else [None] * n
    # a top guess counts only when it is sure of itself; one of unknown probability counts as sure
    other_min = gate.rule("lid_other_min")
    sure = [s is None or math.isnan(s) or s >= other_min for s in (lid_score if lid_score is not None else [None] * n)]

    r = gate.rule
    reasons: list[str | None] = []
    details: list[str | None] = []
    for i in range(n):
        lid_i = None if np.isnan(lid[i]) else float(lid[i])
        other = guesses[i] if guesses[i] and guesses[i] != lang and sure[i] else None
        mis = not np.isnan(nn[i]) and nn[i] < 0.5 and not np.isnan(margin[i]) and margin[i] < r("margin_min")
        hard: list[tuple[str, str]] = []
        if copy[i] >= r("copy_sim_max"):
            hard.append(("untranslated", f"copy of the source (character 3-gram similarity {copy[i]:.2f})"))
        if script[i] < r("script_min"):
            hard.append(("wrong_language", f"only {script[i]:.0%} of the letters are in the script of {lang}"))
        elif (
            other
            and lid_i is not None
            and (lid_i < r("lid_min_any") or (lid_i < r("lid_min") and chars[i] >= r("lid_min_chars")))
        ):
            hard.append(("wrong_language", f"language ID says {other}, {lang} has probability {lid_i:.3f}"))
        if ph[i] < 0.5:
            hard.append(("placeholder_mismatch", "placeholders, URLs or e-mails differ from the source"))
        if num[i] < r("num_min"):
            hard.append(("number_mismatch", f"numbers differ from the source (agreement {num[i]:.2f})"))
        if z[i] < -r("len_z_max"):
            hard.append(("truncated", f"much shorter than usual for {lang} (length z-score {z[i]:.1f})"))
        if mis:
            hard.append(("misaligned", f"not the source's nearest neighbour and margin {margin[i]:.3f}"))
        if hard:
            reasons.append(hard[0][0])
            details.append(hard[0][1])
            continue
        if p[i] >= gate.threshold:
            reasons.append(None)
            details.append(None)
            continue
        why = f"p={p[i]:.3f} < {gate.threshold:.3f}"
        if copy[i] >= 0.5:
            reason = "untranslated"
            why += f"; close to a copy of the source (3-gram similarity {copy[i]:.2f})"
        elif script[i] < 0.9 or (lid_i is not None and lid_i < 0.1 * gate.imputed("lid_expected")):
            reason = "wrong_language"
            why += f"; script share {script[i]:.2f}, P({lang}) {lid_i if lid_i is not None else float('nan'):.2f}"
        elif num[i] < 1.0:
            reason = "number_mismatch"
            why += f"; number agreement {num[i]:.2f}"
        elif z[i] < -2.0:
            reason = "truncated"
            why += f"; length z-score {z[i]:.1f}"
        elif (not np.isnan(nn[i]) and nn[i] < 0.5) or (not np.isnan(margin[i]) and margin[i] < 1.0):
            reason = "misaligned"
            why += f"; margin {margin[i]:.3f}" + ("" if np.isnan(nn[i]) or nn[i] >= 0.5 else ", not mutual nearest neighbours")
        else:
            reason = "low_similarity"
            why += f"; cos {_cos_str(features, i)}"
        reasons.append(reason)
        details.append(why)
    return reasons, details


def _cos_str(features: pl.DataFrame, i: int) -> str:
    if "cos" not in features.columns or features["cos"][i] is None:
        return "n/a"
    return f"{float(features['cos'][i]):.3f}"


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
