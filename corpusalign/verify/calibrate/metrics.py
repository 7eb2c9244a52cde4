"""What a calibration returns (:class:`CalibrationResult`) and how gates are measured on labelled pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from corpusalign.verify.calibrate.rules import _lid_guesses, _lid_scores
from corpusalign.verify.gate import LanguageGate, decide, domain_index, predict_proba
from corpusalign.verify.scores import DOMAINS


@dataclass
class CalibrationResult:
    """Fitted gates (``{lang: LanguageGate}``, with ``"*"``), their held-out ``metrics`` and the scored held-out pairs."""

    gates: dict[str, LanguageGate]
    metrics: dict[str, Any]
    heldout: pl.DataFrame | None = field(default=None, repr=False)


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
        parts.append(
            part.with_columns(
                pl.Series("verify_p", predict_proba(probe, gate), dtype=pl.Float32),
                pl.Series("reason", reasons, dtype=pl.String),
                pl.Series("detail", details, dtype=pl.String),
            ).with_columns(pl.col("reason").is_null().alias("keep"))
        )
    return pl.concat(parts)


def evaluate(scored: pl.DataFrame) -> dict[str, Any]:
    """Precision/recall/F1 overall, per language, per length domain and per cell (``"short/de"``: a
    domain of a language, where recall is the share of its good pairs kept); per fault kind the share kept."""

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
        "per_cell": {
            f"{name}/{lang}": block(part)
            for code, name in enumerate(DOMAINS)
            for (lang,), part in scored.filter(pl.Series(dom == code)).sort("lang").group_by("lang", maintain_order=True)
        },
    }
