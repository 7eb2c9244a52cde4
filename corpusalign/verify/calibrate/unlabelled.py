"""The unlabelled mode: per language a two-component Gaussian mixture on the margin sets the gate."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from corpusalign.embed.base import Embedder
from corpusalign.verify.calibrate.metrics import CalibrationResult
from corpusalign.verify.calibrate.rules import _base_gate, _with_length
from corpusalign.verify.calibrate.scoring import LidSpec, score_pairs
from corpusalign.verify.gate import LanguageGate


def _calibrate_unlabelled(
    pairs: pl.DataFrame, embedder: Embedder, src: str, lid: LidSpec, margin_k: int, seed: int
) -> CalibrationResult:
    """Gates per language and ``"*"`` from the margin alone: the cut where a two-component mixture's upper
    ("good") component becomes more likely; precision and recall are the mixture's estimates."""
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
