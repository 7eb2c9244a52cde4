"""Executors: where a build's per-batch and per-bucket work runs.

The runner (:mod:`corpusalign.runner`) decides *what* to do: it cuts the build into units (a batch
of records, a bucket of rows) and chains the steps for each unit as :class:`Stage` objects. An
executor decides *where* the units run:

* ``local`` (default): in this process, one unit after another (:class:`LocalExecutor`);
* ``ray``: on a Ray cluster through Ray Data (:class:`~corpusalign.execute.ray_data.RayExecutor`,
  extra ``ray``): stages without a model run as Ray tasks, stages that hold a model (translation,
  embedding) as actor pools that load the model once per actor, with GPUs when asked for.

Both run the same stage functions on the same units, so they write the same files.

Example::

    with make_executor(ExecutorOptions(name="ray", num_cpus=2)) as ex:
        results = list(ex.map([Stage("double", fn=lambda x: 2 * x)], [1, 2, 3]))  # any order
"""

from corpusalign.execute.base import Executor, ExecutorOptions, LocalExecutor, Stage
from corpusalign.execute.registry import make_executor

__all__ = ["Executor", "ExecutorOptions", "LocalExecutor", "Stage", "make_executor"]
