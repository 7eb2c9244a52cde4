"""Training-side data access for batch-wise alignment.

``corpusalign.training.data`` (no torch needed): :class:`ShardDataset`, :class:`Concept`,
:class:`CorruptCorpusError`. ``corpusalign.training.sampler`` (needs torch): :class:`AlignedBatchSampler`
and the ablation baselines :class:`RandomRowBatchSampler` and :class:`LanguageHomogeneousBatchSampler`.
The sampler names are imported lazily so that reading a corpus does not import torch.
"""

from __future__ import annotations

from typing import Any

from corpusalign.training.data import Concept, CorruptCorpusError, ShardDataset, split_fraction

_SAMPLER_NAMES = (
    "AlignedBatchSampler",
    "LanguageHomogeneousBatchSampler",
    "RandomRowBatchSampler",
    "ablation_samplers",
)

__all__ = ["Concept", "CorruptCorpusError", "ShardDataset", "split_fraction", *_SAMPLER_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SAMPLER_NAMES:
        from corpusalign.training import sampler

        return getattr(sampler, name)
    raise AttributeError(f"module 'corpusalign.training' has no attribute {name!r}")
