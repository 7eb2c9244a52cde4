"""Progress bars for long work (rich, on stderr). One live display holds every open task.

A task with a known total shows done/total, the elapsed time and the time remaining; one whose total
cannot be known in advance (records streamed from inputs, texts embedded) shows its count so far.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress


class _Bar:
    def __init__(self, progress: _RichProgress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task = task_id

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


class Progress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._live: _RichProgress | None = None
        self._open = 0

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    @contextmanager
    def task(self, description: str, unit: str, total: int | None = None) -> Iterator[_Bar]:
        if not self.enabled:
            yield _Bar(None, None)
            return
        if self._live is None:
            columns = [
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(compact=True),  # "--:--" for work whose total is not known in advance
            ]
            self._live = _RichProgress(*columns, console=self.console)
            self._live.start()
        self._open += 1
        task_id = self._live.add_task(description, total=total, unit=unit)
        try:
            yield _Bar(self._live, task_id)
        finally:
            self._live.stop_task(task_id)
            self._open -= 1
            if self._open == 0:
                self._live.stop()
                self._live = None
