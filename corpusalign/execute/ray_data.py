"""The Ray executor: a build's units on a Ray cluster, through Ray Data (extra ``ray``).

Each call to :meth:`RayExecutor.map` becomes one streaming Ray Data pipeline over the units (one
block per unit, so a batch is never split or merged with another):

* a stage without a model (``Stage.fn``) is a ``map`` over Ray tasks; consecutive ones are fused
  by Ray Data into one task;
* a stage with a model (``Stage.factory``) is a ``map_batches`` over an actor pool of
  ``model_workers`` actors, each asking for ``gpus`` GPUs; every actor calls the factory once (loads
  the model once) and then takes one unit at a time;
* units travel between operators as Python objects in one column (Ray serialises them between
  its own processes), and the results stream back to this process as they finish, which drives
  the progress bars.

Stage functions read and write the build's working files themselves, so every node must see the
output directory at the same path (a shared filesystem such as NFS or Lustre; trivially true on
one machine). ``address`` connects to an existing cluster (``auto`` or ``ray://head:10001``);
without one, a local Ray instance is started with ``num_cpus`` CPUs and shut down at the end.

Example::

    with RayExecutor(ExecutorOptions(name="ray", num_cpus=2)) as ex:
        sorted(ex.map([Stage("inc", fn=lambda x: x + 1)], [1, 2, 3]))   # [2, 3, 4]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from corpusalign.execute.base import Executor, ExecutorOptions, Stage
from corpusalign.extras import require

log = logging.getLogger(__name__)


def _apply(fn: Callable[[Any], Any], row: dict[str, Any]) -> dict[str, Any]:
    return {"x": fn(row["x"])}


class _ModelWorker:
    """One actor of a model stage: the factory runs once, in ``__init__``."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self.fn = factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = np.empty(len(batch["x"]), dtype=object)  # element by element: a unit may itself be a sequence
        for i, x in enumerate(batch["x"]):
            out[i] = self.fn(x)
        return {"x": out}


class RayExecutor(Executor):
    name = "ray"
    in_process = False

    def __init__(self, options: ExecutorOptions) -> None:
        ray = require("ray", extra="ray", purpose="--executor ray")
        require("ray.data", extra="ray", purpose="--executor ray")
        self.options = options
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False}
            if options.address:
                kwargs["address"] = options.address
            else:
                kwargs["num_cpus"] = options.num_cpus
            ray.init(**kwargs)
            self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the build's own progress bars advance as units finish
        ctx.verbose_stats_logs = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def map(self, stages: Sequence[Stage], units: Iterable[Any]) -> Iterator[Any]:
        import ray.data

        todo = [{"x": u} for u in units]
        if not todo:
            return
        ds = ray.data.from_items(todo, override_num_blocks=len(todo))
        for stage in stages:
            if stage.fn is not None:
                ds = ds.map(partial(_apply, stage.fn))
            else:
                ds = ds.map_batches(
                    _ModelWorker,
                    fn_constructor_args=(stage.factory,),
                    batch_size=1,
                    compute=ray.data.ActorPoolStrategy(size=self.options.model_workers),
                    num_gpus=stage.gpus or None,
                )
        for row in ds.iter_rows():
            yield row["x"]

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
