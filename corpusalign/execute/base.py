"""The executor interface and the local executor.

The units an executor runs, and the values its stages hand each other, are **plain values**: an
``int``, ``float``, ``str``, ``bytes``, ``bool`` or ``None``, or a record of them (a ``dict`` with
``str`` keys, the same keys for every unit of a stage). The Ray executor stores them as Arrow
columns without pickling; the local one checks them too, so a stage that returns anything else
fails on both executors, not only on a cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTORS = ("local", "ray")
SCALARS = (int, float, str, bytes, bool, type(None))


def check_plain(value: Any, where: str) -> Any:
    """``value`` itself if it is a plain value (see the module); a TypeError naming ``where`` if not."""
    if isinstance(value, SCALARS):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, SCALARS) for k, v in value.items()):
        return value
    raise TypeError(
        f"{where}: {type(value).__name__} is not a plain value (an int, float, str, bytes, bool, None, "
        "or a dict of str to those); encode it, e.g. as JSON or Arrow IPC bytes"
    )


@dataclass(frozen=True)
class Stage:
    """One operator of a chain that turns a unit of work into the next stage's input.

    Give exactly one of ``fn`` (a task: a picklable function, no state kept between units) or
    ``factory`` (a model stage: called once per worker to load the model, it returns the function
    that is then applied to every unit that worker gets). ``gpus`` is what one worker of a model
    stage asks the cluster for.
    """

    name: str
    fn: Callable[[Any], Any] | None = None
    factory: Callable[[], Callable[[Any], Any]] | None = None
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if (self.fn is None) == (self.factory is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of fn (a task) or factory (a model stage)")
        if self.gpus < 0:
            raise ValueError(f"stage {self.name!r}: gpus must be >= 0, got {self.gpus}")

    @property
    def holds_model(self) -> bool:
        return self.factory is not None


@dataclass(frozen=True)
class ExecutorOptions:
    """Where a build runs; not part of the build's configuration, since it does not change the output.

    ``name``: ``local`` or ``ray``. Ray only: ``address`` of an existing cluster (``auto``, or
    ``ray://host:10001``; none starts a local Ray instance), ``num_cpus`` for that local instance,
    ``model_workers`` actors per model stage, ``gpus_per_worker`` GPUs each of those actors asks for,
    ``log_file`` where Ray's own logging goes instead of the terminal (the runner sets it to
    ``OUTPUT/logs/ray.log``; none leaves Ray's logging as it is).
    """

    name: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    model_workers: int = 1
    gpus_per_worker: float = 0.0
    log_file: Path | None = None

    def __post_init__(self) -> None:
        if self.name not in EXECUTORS:
            raise ValueError(f"unknown executor {self.name!r}; choose one of {', '.join(EXECUTORS)}")
        if self.model_workers < 1:
            raise ValueError(f"model_workers must be >= 1, got {self.model_workers}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {self.num_cpus}")
        if self.name == "local" and (self.address or self.gpus_per_worker or self.model_workers != 1 or self.num_cpus):
            raise ValueError("--ray-address, --num-cpus, --model-workers and --gpus-per-worker need --executor ray")

    def describe(self) -> str:
        if self.name == "local":
            return "local (this process)"
        where = f"cluster at {self.address}" if self.address else f"local Ray instance ({self.num_cpus or 'all'} CPUs)"
        return f"ray ({where}; {self.model_workers} worker(s) per model stage, {self.gpus_per_worker:g} GPU(s) each)"


class Executor(ABC):
    """Runs chains of stages over units of work."""

    name: str = "executor"
    #: True when stages run in the calling process (so they may report progress through callbacks).
    in_process: bool = False

    @property
    def parallelism(self) -> int:
        """How many units can run at once (CPUs of the cluster; 1 in this process)."""
        return 1

    @abstractmethod
    def map(self, stages: Sequence[Stage], units: Iterable[Any]) -> Iterator[Any]:
        """Each unit through every stage in turn; yields the last stage's results, in any order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the cluster connection or workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Runs every unit in this process, in order; a model stage's factory runs once, at the first unit."""

    name = "local"
    in_process = True

    def map(self, stages: Sequence[Stage], units: Iterable[Any]) -> Iterator[Any]:
        fns: list[Callable[[Any], Any]] | None = None
        for unit in units:
            if fns is None:  # nothing to do loads no model
                fns = [s.fn if s.fn is not None else s.factory() for s in stages]  # type: ignore[misc]
            check_plain(unit, "a unit")
            for stage, fn in zip(stages, fns):
                unit = check_plain(fn(unit), f"stage {stage.name!r}")
            yield unit
