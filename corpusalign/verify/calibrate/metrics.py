"""What a calibration returns (:class:`CalibrationResult`) and how gates are measured on labelled pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from corpusalign.verify.calibrate.rules import _lid_guesses, _lid_scores, hard_rules
from corpusalign.verify.gate import LanguageGate, decide, domain_index, predict_proba
from corpusalign.verify.scores import DOMAINS

#: A dev pair labelled good that the finished gates drop in every copy, by a hard rule or below this
#: probability, is listed by :func:`doubtful_references`: a reference to check before trusting the labels.
DOUBT_P = 0.01


@dataclass
class CalibrationResult:
    """Fitted gates (``{lang: LanguageGate}``, with ``"*"``), their held-out ``metrics``, the scored held-out
    pairs and the dev pairs labelled good that the gates are surest are faulty (:func:`doubtful_references`)."""

    gates: dict[str, LanguageGate]
    metrics: dict[str, Any]
    heldout: pl.DataFrame | None = field(default=None, repr=False)
    doubtful: pl.DataFrame | None = field(default=None, repr=False)


def doubtful_references(scored: pl.DataFrame, max_p: float = DOUBT_P) -> pl.DataFrame:
    """The pairs labelled good that ``scored`` (pairs with the finished gates applied) drops in every copy,
    by a hard rule or with a probability below ``max_p``: one row per (concept, language), surest first.

    A dev set's own faults (a reference that runs on into the next paragraph, a translation note in
    place of the text) are labelled good and teach the gate the wrong thing; this is the list to
    read before trusting the labels. The pairs were in the fit, so a pair on it is one the gates
    reject even after learning from it. Columns: ``concept_id, lang, src_text, tgt_text, verify_p``
    (the highest over its copies), ``reason, detail`` (of the first copy), ``hard_rule`` (a hard rule
    dropped every copy) and ``copies``. Without a ``hard_rule`` column in ``scored``, the probability alone decides.
    """
    if "hard_rule" not in scored.columns:
        scored = scored.with_columns(pl.lit(False).alias("hard_rule"))
    good = scored.filter(pl.col("label"))
    if "kind" in good.columns:
        good = good.filter(pl.col("kind").is_null() | (pl.col("kind") == "good"))
    return (
        good.group_by("concept_id", "lang", maintain_order=True)
        .agg(
            pl.col("src_text").first(),
            pl.col("tgt_text").first(),
            pl.col("verify_p").max(),
            pl.col("keep").any().alias("_kept"),
            pl.col("reason").first(),
            pl.col("detail").first(),
            pl.col("hard_rule").all(),
            pl.len().alias("copies"),
        )
        .filter(~pl.col("_kept") & (pl.col("hard_rule") | (pl.col("verify_p") < max_p)))
        .drop("_kept")
        .sort("hard_rule", "verify_p", "lang", "concept_id", descending=[True, False, False, False])
    )


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
    """``feats`` with ``verify_p``, ``keep``, ``reason``, ``detail`` and ``hard_rule`` (a hard rule fired) from
    ``gates`` (``"*"`` for other languages)."""
    parts = []
    for (lang,), part in feats.group_by("lang", maintain_order=True):
        gate = gates.get(str(lang), gates.get("*"))
        if gate is None:
            raise KeyError(f"no gate for {lang!r} and no '*' gate")
        probe = part.drop("verify_p", strict=False)
        reasons, details = decide(probe, gate, _lid_guesses(part), str(lang), _lid_scores(part))
        fired = np.column_stack([np.zeros(part.height, dtype=bool), *hard_rules(gate, probe, str(lang)).values()])
        parts.append(
            part.with_columns(
                pl.Series("verify_p", predict_proba(probe, gate), dtype=pl.Float32),
                pl.Series("reason", reasons, dtype=pl.String),
                pl.Series("detail", details, dtype=pl.String),
                pl.Series("hard_rule", fired.any(axis=1), dtype=pl.Boolean),
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
