"""The design of a set of scored pairs: per row its design-matrix inputs, label, hard-rule verdict, language,
length domain, concept and fault kind, each language under its own base gate (:mod:`.rules`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from corpusalign.verify.calibrate.rules import _base_gate, _hard_mask
from corpusalign.verify.gate import LanguageGate, design_matrix, domain_index


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


def _any_language_design(feats: pl.DataFrame) -> _Design:
    """The design of all pairs as if their language were unknown: one length model and one rule set for all."""
    return _design(feats.with_columns(pl.lit("*").alias("lang")))
