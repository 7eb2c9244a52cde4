"""Batch samplers for batch-wise alignment (Agarwal et al., 2025) and their ablation baselines.

Every sampler here is a ``torch.utils.data.Sampler[list[int]]`` that yields one batch at a time as a
list of row indices into a :class:`~corpusalign.training.data.ShardDataset`; pass it to a
``DataLoader`` as ``batch_sampler=`` (the dataset's ``__getitems__`` then fetches the whole batch in one
Arrow ``take``).

* :class:`AlignedBatchSampler`: each batch holds ``K`` whole concepts, each in the requested languages
  (anchor first, then the other languages in the dataset's order); a concept is never split across
  batches or ranks.
* :class:`RandomRowBatchSampler`: ``batch_size`` random rows from the same row pool; languages mixed,
  concepts split.
* :class:`LanguageHomogeneousBatchSampler`: ``batch_size`` random rows of one language per batch.

``with_anchor=False`` leaves the anchor language out of every batch (the anchor ablation: aligned
batches of the other languages only); by default the anchor is always requested.

All three take the same dataset, ``langs``, ``missing``/``min_langs`` (which decide the row pool: the
rows of the eligible concepts in the requested languages), ``seed``, ``shuffle``, ``num_replicas``,
``rank`` and ``drop_last``; :func:`ablation_samplers` makes the three with the same number of rows per
batch (``K * len(langs)``).

Epochs and ranks. The order of an epoch comes from ``numpy.random.default_rng((seed, epoch))`` and
nothing else, so every rank computes the same global order and takes its own part; call
``set_epoch(epoch)`` before each epoch. A sampler's units (concepts, rows, or one-language batches)
are shuffled, padded or cut to ``S = B * R * per_batch`` slots, cut into ``B * R`` global batches,
and global batch ``g`` goes to rank ``g % R``. Hence every rank yields exactly ``B = len(sampler)``
batches, all of the same size:

* ``drop_last=True``: ``B = n // (R * per_batch)``; the last ``n - S`` units of the epoch's order are
  dropped (a different set each epoch when shuffling); no unit appears twice in an epoch.
* ``drop_last=False``: ``B = ceil(n / (R * per_batch))``; the ``S - n < R * per_batch`` padding slots
  repeat the epoch's order from its start (cycling when ``S - n > n``), so every unit appears at least
  once per epoch over all ranks, and each appears ``floor(S / n)`` or ``ceil(S / n)`` times.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

from corpusalign.training.data import ShardDataset

Missing = Literal["skip_concept", "partial"]


def _global_slots(units: np.ndarray, per_batch: int, num_replicas: int, drop_last: bool) -> tuple[np.ndarray, int]:
    """``units`` (already in the epoch's order) cut or cyclically padded to ``B * R * per_batch`` slots; ``B``."""
    n, step = len(units), per_batch * num_replicas
    if n == 0:
        return units[:0], 0
    batches = n // step if drop_last else math.ceil(n / step)
    size = batches * step
    if size <= n:
        return units[:size], batches
    return np.resize(units, size), batches  # np.resize repeats the array cyclically


class _PoolSampler(Sampler[list[int]], abc.ABC):
    """Shared part: the row pool, per-epoch RNG and rank arithmetic."""

    def __init__(
        self,
        dataset: ShardDataset,
        *,
        langs: Sequence[str] | None = None,
        anchor: str | None = None,
        with_anchor: bool = True,
        missing: Missing = "skip_concept",
        min_langs: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if missing not in ("skip_concept", "partial"):
            raise ValueError(f"missing must be 'skip_concept' or 'partial', not {missing!r}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got rank {rank} of {num_replicas}")
        if min_langs < 1:
            raise ValueError("min_langs must be >= 1")
        self.dataset = dataset
        if anchor is None:  # default: the corpus's source language, when the dataset has it
            anchor = dataset.anchor if dataset.anchor in dataset.langs else None
        self.anchor: str | None = anchor
        wanted = list(dataset.langs if langs is None else langs)
        unknown = [lg for lg in wanted if lg not in dataset.langs]
        if unknown or len(set(wanted)) != len(wanted):
            raise ValueError(f"langs {wanted}: each must be one of the dataset's languages {list(dataset.langs)}, once")
        if self.anchor is not None and self.anchor not in dataset.langs:
            raise ValueError(f"anchor {self.anchor!r} is not among the dataset's languages {list(dataset.langs)}")
        if not with_anchor:  # the anchor ablation: aligned batches without the anchor language
            if self.anchor is None:
                raise ValueError("with_anchor=False needs an anchor language among the dataset's languages")
            wanted = [lg for lg in wanted if lg != self.anchor]
            if not wanted:
                raise ValueError(f"without the anchor {self.anchor!r} no language is left to sample")
        elif self.anchor is not None and self.anchor not in wanted:
            wanted.append(self.anchor)  # the anchor is always part of a batch when the data has it
        # Anchor first, then the dataset's language order.
        order = sorted(wanted, key=lambda lg: (lg != self.anchor, dataset.langs.index(lg)))
        self.langs: tuple[str, ...] = tuple(order)
        self.missing: Missing = missing
        self.min_langs = min_langs
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self._build_pool()

    def _build_pool(self) -> None:
        ds = self.dataset
        pos_of_code = np.full(len(ds.langs), -1, dtype=np.int64)
        for p, lg in enumerate(self.langs):
            pos_of_code[ds.langs.index(lg)] = p
        pos = pos_of_code[ds.row_lang] if len(ds) else np.zeros(0, np.int64)
        keep = np.flatnonzero(pos >= 0)
        # Requested rows, grouped by concept (dataset order), anchor first inside a concept.
        keep = keep[np.lexsort((pos[keep], ds.row_concept[keep]))]
        concept_of = ds.row_concept[keep]
        counts = np.bincount(concept_of, minlength=ds.num_concepts)
        need = len(self.langs) if self.missing == "skip_concept" else self.min_langs
        eligible = counts >= max(need, 1)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        #: Concept numbers (dataset order) that this sampler draws from.
        self.concepts: np.ndarray = np.flatnonzero(eligible)
        self._concept_start = starts[self.concepts]
        self._concept_end = starts[self.concepts + 1]
        self._rows = keep
        #: Row indices of the pool: every requested row of every eligible concept, concept by concept.
        self.pool: np.ndarray = keep[eligible[concept_of]] if len(keep) else keep

    # --------------------------------------------------------------------------------- epoch state
    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order next (same on every rank for the same seed)."""
        self.epoch = int(epoch)

    def _order(self, n: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, self.epoch)).permutation(n)

    def concept_rows(self, k: int) -> np.ndarray:
        """Row indices of eligible concept ``k`` (position in ``self.concepts``), anchor first."""
        return self._rows[self._concept_start[k] : self._concept_end[k]]

    @property
    @abc.abstractmethod
    def rows_per_batch(self) -> int | None:
        """Rows in every batch, or None when it varies (aligned batches with ``missing='partial'``)."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Batches this rank yields per epoch."""


class AlignedBatchSampler(_PoolSampler):
    """``concepts_per_batch`` whole concepts per batch, each in all requested languages it has.

    ``missing="skip_concept"`` (default) keeps only the concepts that have every requested language,
    so every batch holds exactly ``K * L`` rows; ``missing="partial"`` keeps the concepts that have at
    least ``min_langs`` of them (default 1; ignored by ``skip_concept``), with the languages they have
    (batches then vary in rows, never in concepts). The anchor (default: the corpus's source
    language) is always requested; every row of a kept concept in the requested languages is in the
    same batch, anchor first. Concepts are shuffled with ``(seed, epoch)``; see the module docstring
    for ranks, ``drop_last`` and padding.

    Guarantees per epoch: every rank yields ``len(self)`` batches; each batch holds ``K`` concepts,
    distinct unless the epoch has fewer than ``K`` eligible concepts and ``drop_last=False`` pads;
    with ``drop_last=True`` no concept appears twice in the epoch over all ranks; with
    ``drop_last=False`` every eligible concept appears at least once over all ranks, repeats only
    filling the ``< K * num_replicas`` padding slots.
    """

    def __init__(self, dataset: ShardDataset, concepts_per_batch: int, **kwargs) -> None:
        if concepts_per_batch < 1:
            raise ValueError("concepts_per_batch must be >= 1")
        self.concepts_per_batch = concepts_per_batch
        super().__init__(dataset, **kwargs)

    @property
    def rows_per_batch(self) -> int | None:
        return self.concepts_per_batch * len(self.langs) if self.missing == "skip_concept" else None

    def __len__(self) -> int:
        return _global_slots(self.concepts, self.concepts_per_batch, self.num_replicas, self.drop_last)[1]

    def concept_batches(self) -> list[np.ndarray]:
        """This rank's batches of the current epoch as positions into ``self.concepts``."""
        order = self._order(len(self.concepts))
        slots, batches = _global_slots(order, self.concepts_per_batch, self.num_replicas, self.drop_last)
        k = self.concepts_per_batch
        return [slots[g * k : (g + 1) * k] for g in range(self.rank, batches * self.num_replicas, self.num_replicas)]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.concept_batches():
            yield np.concatenate([self.concept_rows(int(k)) for k in batch]).tolist()


class RandomRowBatchSampler(_PoolSampler):
    """Baseline: ``batch_size`` rows drawn at random from the aligned sampler's row pool.

    Languages are mixed and a concept's rows usually land in different batches. Same epoch, rank and
    ``drop_last`` semantics as :class:`AlignedBatchSampler`, with rows as the unit.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, **kwargs) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        super().__init__(dataset, **kwargs)

    @property
    def rows_per_batch(self) -> int:
        return self.batch_size

    def __len__(self) -> int:
        return _global_slots(self.pool, self.batch_size, self.num_replicas, self.drop_last)[1]

    def __iter__(self) -> Iterator[list[int]]:
        rows = self.pool[self._order(len(self.pool))]
        slots, batches = _global_slots(rows, self.batch_size, self.num_replicas, self.drop_last)
        b = self.batch_size
        for g in range(self.rank, batches * self.num_replicas, self.num_replicas):
            yield slots[g * b : (g + 1) * b].tolist()


class LanguageHomogeneousBatchSampler(_PoolSampler):
    """Baseline: every batch holds ``batch_size`` rows of a single language (from the same row pool).

    Per epoch, each language's rows are shuffled and cut into batches; a language's last short batch
    is dropped (``drop_last=True``) or filled by repeating that language's rows from the start of its
    order (``drop_last=False``). The batches of all languages are then shuffled together and shared
    out across ranks as in :class:`AlignedBatchSampler`, with whole batches as the unit.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, **kwargs) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        super().__init__(dataset, **kwargs)
        codes = self.dataset.row_lang[self.pool]
        self._by_lang = [self.pool[codes == self.dataset.langs.index(lg)] for lg in self.langs]

    @property
    def rows_per_batch(self) -> int:
        return self.batch_size

    def _lang_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch)) if self.shuffle else None
        out: list[np.ndarray] = []
        for rows in self._by_lang:
            if rng is not None:
                rows = rows[rng.permutation(len(rows))]
            slots, n = _global_slots(rows, self.batch_size, 1, self.drop_last)
            out.extend(slots[i * self.batch_size : (i + 1) * self.batch_size] for i in range(n))
        if rng is not None:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def _count(self) -> int:
        b = self.batch_size
        sizes = [len(r) for r in self._by_lang]
        return sum(n // b if self.drop_last else math.ceil(n / b) for n in sizes)

    def __len__(self) -> int:
        return _global_slots(np.arange(self._count()), 1, self.num_replicas, self.drop_last)[1]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._lang_batches()
        slots, n = _global_slots(np.arange(len(batches)), 1, self.num_replicas, self.drop_last)
        for g in range(self.rank, n * self.num_replicas, self.num_replicas):
            yield batches[int(slots[g])].tolist()


def ablation_samplers(
    dataset: ShardDataset, concepts_per_batch: int, **kwargs
) -> dict[str, AlignedBatchSampler | RandomRowBatchSampler | LanguageHomogeneousBatchSampler]:
    """The aligned sampler and both baselines over the same row pool, seed and ranks, with
    ``batch_size = concepts_per_batch * len(langs)`` rows for the baselines.

    Rows per batch match exactly with ``missing="skip_concept"``; with ``"partial"`` the baselines get
    the aligned sampler's *largest possible* batch (aligned batches are smaller when languages miss).
    """
    aligned = AlignedBatchSampler(dataset, concepts_per_batch, **kwargs)
    rows = concepts_per_batch * len(aligned.langs)
    return {
        "aligned": aligned,
        "random_rows": RandomRowBatchSampler(dataset, rows, **kwargs),
        "language_homogeneous": LanguageHomogeneousBatchSampler(dataset, rows, **kwargs),
    }
