"""The Ray executor: a build's units on a Ray cluster, through Ray Data (extra ``ray``).

Each call to :meth:`RayExecutor.map` becomes one streaming Ray Data pipeline over the units (one
block per unit, so a batch is never split or merged with another):

* a stage without a model (``Stage.fn``) is a ``map`` over Ray tasks; consecutive ones are fused
  by Ray Data into one task;
* a stage with a model (``Stage.factory``) is a ``map_batches`` over an actor pool of
  ``model_workers`` actors, each asking for ``gpus`` GPUs; every actor calls the factory once (loads
  the model once) and then takes one unit at a time;
* units travel between operators as plain values (:func:`~corpusalign.execute.base.check_plain`):
  a scalar is one column ``value``, a record one column per key (``field.KEY``), all of them types
  Arrow stores natively, so Ray Data never falls back to pickling a column; the results stream back
  to this process as they finish, which drives the progress bars.

Ray's own output (its loggers, Ray Data's, and what the workers print, which Ray forwards to the
driver) goes to ``ExecutorOptions.log_file`` when one is given, never to the terminal; Ray Data's
progress bars are off, since the build's own advance as units finish.

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
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from corpusalign.execute.base import Executor, ExecutorOptions, Stage, check_plain
from corpusalign.extras import require

log = logging.getLogger(__name__)

#: The column of a scalar unit; a record's key ``k`` is the column ``field.k``.
VALUE = "value"
FIELD = "field."
#: The driver-side loggers whose terminal handlers :class:`_RayLog` replaces by the log file.
RAY_LOGGERS = ("ray", "ray.data")


def _to_row(value: Any, where: str) -> dict[str, Any]:
    value = check_plain(value, where)
    if isinstance(value, dict):
        return {FIELD + k: v for k, v in value.items()}
    return {VALUE: value}


def _from_row(row: Any) -> Any:
    if VALUE in row:
        return row[VALUE]
    return {k[len(FIELD) :]: v for k, v in row.items() if k.startswith(FIELD)}


def _apply(fn: Callable[[Any], Any], name: str, row: dict[str, Any]) -> dict[str, Any]:
    return _to_row(fn(_from_row(dict(row))), f"stage {name!r}")


class _ModelWorker:
    """One actor of a model stage: the factory runs once, in ``__init__``; batches are Arrow tables."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]], name: str) -> None:
        self.fn = factory()
        self.name = name

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = [_to_row(self.fn(_from_row(row)), f"stage {self.name!r}") for row in batch.to_pylist()]
        return pa.Table.from_pylist(rows)


class _RayLog:
    """Ray's output to ``path`` instead of the terminal, until :meth:`close`.

    The driver's ``ray`` and ``ray.data`` loggers lose their terminal handlers and write to the file
    (restored on close); :meth:`worker_lines` takes the lines Ray forwards from its workers (what
    ``log_to_driver`` would print).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(logging.INFO)  # Ray Data logs every scheduling round at DEBUG
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.saved: dict[str, tuple[list[logging.Handler], bool]] = {}
        for name in RAY_LOGGERS:
            logger = logging.getLogger(name)
            self.saved[name] = (list(logger.handlers), logger.propagate)
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    logger.removeHandler(handler)  # the terminal; Ray Data's own session log files stay
            logger.addHandler(self.handler)
            logger.propagate = False
        self.write(f"--- corpusalign: Ray's log of the run started {time.strftime('%Y-%m-%d %H:%M:%S')} ---")
        self._capture_fd2()

    def _capture_fd2(self) -> None:
        """Ray's C++ core in this process writes its errors straight to file descriptor 2 (Ray Data's
        actors make it say that each "has constructor arguments in the object store", ray-project/ray#53727):
        fd 2 goes to the file; ``sys.stderr``, and the logging handlers that wrote to it, get a copy of
        the terminal's descriptor, so Python's own output (progress bars, errors) stays on the terminal."""
        self._fd2: int | None = None
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # stderr is not a file (captured in tests, a notebook)
            return
        if fd != 2 or self.handler.stream is None:
            return
        sys.stderr.flush()
        self._fd2 = os.dup(2)
        self._stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(self._fd2), "w", buffering=1, encoding=self._stderr.encoding, errors="backslashreplace")
        self._moved = [h for h in _stream_handlers() if h.stream is self._stderr]
        for h in self._moved:
            h.setStream(sys.stderr)
        os.dup2(self.handler.stream.fileno(), 2)

    def _release_fd2(self) -> None:
        if self._fd2 is None:
            return
        sys.stderr.flush()
        os.dup2(self._fd2, 2)
        os.close(self._fd2)
        self._fd2 = None
        terminal, sys.stderr = sys.stderr, self._stderr
        for h in self._moved:
            h.setStream(self._stderr)
        terminal.close()

    def write(self, line: str) -> None:
        self.handler.acquire()
        try:
            if self.handler.stream is not None:
                self.handler.stream.write(line + "\n")
                self.handler.stream.flush()
        finally:
            self.handler.release()

    def worker_lines(self, data: dict[str, Any]) -> None:
        """One batch of lines a worker printed, as Ray forwards them to the driver."""
        pid = data.get("pid")
        who = data.get("actor_name") or data.get("task_name") or ("worker" if isinstance(pid, int) else "")
        prefix = f"({who} pid={pid}, ip={data.get('ip')})" if who else f"({pid}, ip={data.get('ip')})"
        for line in data.get("lines") or ():
            self.write(f"{prefix} {line}")

    def close(self) -> None:
        self._release_fd2()
        for name, (handlers, propagate) in self.saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self.handler)
            for handler in handlers:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
            logger.propagate = propagate
        self.handler.close()


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]


def _stdstream_dispatcher() -> Any:
    """Where Ray hands the driver the lines its workers print (``log_to_driver``); None if this Ray has none."""
    try:
        from ray._private import worker
    except ImportError:
        return None
    dispatcher = getattr(worker, "global_worker_stdstream_dispatcher", None)
    has_api = all(hasattr(dispatcher, m) for m in ("add_handler", "remove_handler"))
    return dispatcher if has_api else None


class RayExecutor(Executor):
    name = "ray"
    in_process = False

    def __init__(self, options: ExecutorOptions) -> None:
        ray = require("ray", extra="ray", purpose="--executor ray")
        require("ray.data", extra="ray", purpose="--executor ray")
        self.options = options
        self._started = False
        self._log = _RayLog(options.log_file) if options.log_file else None
        self._dispatcher = None
        try:
            if not ray.is_initialized():
                self._init(ray)
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # the build's own progress bars advance as units finish
            ctx.print_on_execution_start = False
            ctx.verbose_stats_logs = False
            if self._log is None:
                logging.getLogger("ray.data").setLevel(logging.WARNING)
        except BaseException:
            self.close()
            raise

    def _init(self, ray: Any) -> None:
        kwargs: dict[str, Any] = {"include_dashboard": False}
        if self._log is not None:
            # worker output reaches the driver only to be written to the log file, by our handler;
            # without a dispatcher to hook (or through Ray Client, which prints what it forwards),
            # workers keep it in Ray's session logs, not the terminal
            client = (self.options.address or "").startswith("ray://")
            dispatcher = None if client else _stdstream_dispatcher()
            kwargs.update(logging_level=logging.INFO, log_to_driver=dispatcher is not None)
        else:
            dispatcher = None
            kwargs.update(logging_level=logging.WARNING)
        if self.options.address:
            kwargs["address"] = self.options.address
        else:
            kwargs["num_cpus"] = self.options.num_cpus
        ray.init(**kwargs)
        self._started = True
        if dispatcher is not None and self._log is not None:
            dispatcher.remove_handler("ray_print_logs")  # Ray's printer to the terminal
            dispatcher.add_handler("corpusalign_ray_log", self._log.worker_lines)
            self._dispatcher = dispatcher
        if self._log is not None:
            self._log.write(f"--- Ray's own session logs (every process, per node): {_session_logs(ray)} ---")

    @property
    def parallelism(self) -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, stages: Sequence[Stage], units: Iterable[Any]) -> Iterator[Any]:
        import ray.data

        todo = [_to_row(u, "a unit") for u in units]
        if not todo:
            return
        ds = ray.data.from_items(todo, override_num_blocks=len(todo))
        for stage in stages:
            if stage.fn is not None:
                ds = ds.map(partial(_apply, stage.fn, stage.name))
            else:
                ds = ds.map_batches(
                    _ModelWorker,
                    fn_constructor_args=(stage.factory, stage.name),
                    batch_size=1,
                    batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=self.options.model_workers),
                    num_gpus=stage.gpus or None,
                )
        for row in ds.iter_rows():
            yield _from_row(row)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._dispatcher is not None:
            self._dispatcher.remove_handler("corpusalign_ray_log")
            self._dispatcher = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _session_logs(ray: Any) -> str:
    try:
        return str(Path(ray._private.worker._global_node.get_session_dir_path()) / "logs")
    except Exception:  # a Ray Client connection, or another Ray version
        return "see /tmp/ray/session_latest/logs on each node"
