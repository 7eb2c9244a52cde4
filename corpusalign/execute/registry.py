"""Executors by name: the one place that knows every executor (it sits above them; they never import it)."""

from __future__ import annotations

from corpusalign.execute.base import Executor, ExecutorOptions, LocalExecutor


def make_executor(options: ExecutorOptions | None = None) -> Executor:
    """The executor ``options.name`` names: ``local`` (this process) or ``ray`` (Ray Data; the ``ray`` extra)."""
    options = options or ExecutorOptions()
    if options.name == "ray":
        from corpusalign.execute.ray_data import RayExecutor

        return RayExecutor(options)
    return LocalExecutor()
