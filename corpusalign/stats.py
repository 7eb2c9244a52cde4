"""Mergeable per-step statistics: counters, timers and fixed-bin histograms.

Each batch writes its statistics next to the build's working files; the end of the build merges
them into ``stats.json`` beside the shards. Reports read that file and never re-run the pipeline.
Merging is associative and commutative, so the order of batches (or of workers) does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Histogram:
    """Counts over fixed bin edges, so histograms from different batches add up exactly."""

    edges: list[float]
    counts: list[int]

    @classmethod
    def of(cls, values: Any, edges: list[float]) -> Histogram:
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)] if arr.size else arr
        counts, _ = np.histogram(np.clip(arr, edges[0], edges[-1]), bins=np.asarray(edges))
        return cls(edges=list(edges), counts=[int(c) for c in counts])

    def merge(self, other: Histogram) -> Histogram:
        if self.edges != other.edges:
            raise ValueError("cannot merge histograms with different bin edges")
        return Histogram(self.edges, [a + b for a, b in zip(self.counts, other.counts, strict=True)])


@dataclass
class StepStats:
    """Statistics of one step: ``counters`` (ints), ``seconds`` and ``histograms`` by name."""

    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rows: int = 0
    histograms: dict[str, Histogram] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + int(n)

    def histogram(self, name: str, values: Any, edges: list[float]) -> None:
        h = Histogram.of(values, edges)
        self.histograms[name] = self.histograms[name].merge(h) if name in self.histograms else h

    @contextmanager
    def timed(self, rows: int) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.rows += rows

    def merge(self, other: StepStats) -> StepStats:
        out = StepStats(dict(self.counters), self.seconds + other.seconds, self.rows + other.rows, dict(self.histograms))
        for k, v in other.counters.items():
            out.counters[k] = out.counters.get(k, 0) + v
        for k, h in other.histograms.items():
            out.histograms[k] = out.histograms[k].merge(h) if k in out.histograms else h
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds": round(self.seconds, 6),
            "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
            "counters": dict(sorted(self.counters.items())),
            "histograms": {k: {"edges": h.edges, "counts": h.counts} for k, h in sorted(self.histograms.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepStats:
        return cls(
            counters=dict(d.get("counters", {})),
            seconds=float(d.get("seconds", 0.0)),
            rows=int(d.get("rows", 0)),
            histograms={k: Histogram(list(v["edges"]), list(v["counts"])) for k, v in d.get("histograms", {}).items()},
        )


class RunStats:
    """Statistics of every step of a run, keyed by step name."""

    def __init__(self) -> None:
        self.steps: dict[str, StepStats] = {}

    def __getitem__(self, name: str) -> StepStats:
        return self.steps.setdefault(name, StepStats())

    def merge(self, other: RunStats) -> RunStats:
        out = RunStats()
        for name in {*self.steps, *other.steps}:
            a, b = self.steps.get(name), other.steps.get(name)
            out.steps[name] = a.merge(b) if a and b else (a or b)  # type: ignore[assignment]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {name: s.to_dict() for name, s in self.steps.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunStats:
        out = cls()
        out.steps = {k: StepStats.from_dict(v) for k, v in d.items()}
        return out
