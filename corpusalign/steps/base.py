"""The step contract.

A step takes a batch (a Polars DataFrame with one row per concept and language) and returns a batch.
It declares the columns it ``reads`` and the columns it ``adds``; :func:`check_wiring` verifies the
whole chain before any model is loaded or any row is read. Steps score and annotate; only the select
step drops rows.

A step may hold a model (``holds_model``): :meth:`Step.setup` loads it once per worker, before its first batch. Statistics go to
the :class:`~corpusalign.stats.StepStats` the runner hands to :meth:`Step.process`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import polars as pl

from corpusalign.stats import StepStats

#: Columns every batch has when it leaves the reader.
BATCH_COLUMNS: tuple[str, ...] = (
    "_seq",  # ordinal of the input record, unique across the build
    "concept_id",
    "lang",
    "text",
    "prompt",
    "response",
    "chosen",
    "rejected",
    "origin",
    "translator",
    "model",
    "source_file",
    "source_line",
)


class WiringError(ValueError):
    """A step reads a column that no earlier step provides, or two steps add the same column."""


class Step(ABC):
    """One stage of the build. Subclasses set ``name``, ``reads`` and ``adds``."""

    name: str = "step"
    reads: tuple[str, ...] = ()
    adds: tuple[str, ...] = ()
    #: Holds a model (or other state worth loading once per worker): an executor runs it in a
    #: long-lived worker (a Ray actor) instead of a task that would load it for every batch.
    holds_model: bool = False
    #: Its model runs faster on a GPU: on Ray, its workers ask for ``--gpus-per-worker`` GPUs.
    wants_gpu: bool = False

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or other heavy state. Called once, after the wiring check."""

    @abstractmethod
    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        """Return ``batch`` with the ``adds`` columns filled in."""

    def describe(self) -> str:
        """One line for ``--dry-run``."""
        return f"{self.name}: reads {list(self.reads)} adds {list(self.adds)}"


def check_wiring(steps: Sequence[Step], initial: Iterable[str] = BATCH_COLUMNS) -> list[str]:
    """Check that each step only reads columns available before it. Returns the final columns."""
    available = list(initial)
    for step in steps:
        missing = [c for c in step.reads if c not in available]
        if missing:
            raise WiringError(f"step {step.name!r} reads {missing}, which no earlier step provides")
        clash = [c for c in step.adds if c in available and c not in step.reads]
        if clash:
            raise WiringError(f"step {step.name!r} adds {clash}, which already exist")
        available.extend(c for c in step.adds if c not in available)
    return available
