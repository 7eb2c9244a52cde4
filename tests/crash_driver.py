"""Run ``corpusalign build`` in this process and kill it with a real signal at a chosen point.

Used by ``tests/test_crash_resume.py`` in a subprocess (not a test module)::

    python tests/crash_driver.py --kill '{"target": "files._fsync_replace", "k": 3, "path": "/shards/", "truncate": true}' \
        -- build --pipeline P --input IN --output OUT --quiet --no-report

Everything after ``--`` is handed to the real CLI (``corpusalign.cli.app``). ``--kill`` is a JSON
kill point:

``target``
    the function to wrap: ``runner.write_parquet``, ``runner.write_json``, ``runner.write_duplicates``,
    ``files._fsync_replace`` (every atomic write renames through it), ``NormaliseStep.process``
    (once per stage-1 batch) or ``shutil.rmtree``;
``k``
    fire on the k-th call whose arguments match ``path`` (1-based);
``path``
    optional regular expression searched in the call's path argument (the second positional
    argument of the write functions: ``write_parquet(table, path, ...)``, ``write_json(obj, path)``,
    ``_fsync_replace(tmp, path)``; the first of ``rmtree(path)``);
``when``
    ``"before"`` (default: the call does not happen) or ``"after"`` (the call completes first);
``truncate``
    for ``files._fsync_replace``: cut the temporary file to half its size first, as a kill in the
    middle of writing it would leave it;
``signal``
    ``"KILL"`` (default: the process dies on the spot, no cleanup, no ``finally``) or ``"INT"``
    (Ctrl-C: Python raises ``KeyboardInterrupt``, which the CLI turns into exit code 130).

Before the signal it writes ``crash_driver: <signal> at <target> call <k> <path>`` to stderr.
Without ``--kill`` it is just the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpusalign.runner as runner
import corpusalign.store.files as files
from corpusalign.cli import app
from corpusalign.steps.normalise import NormaliseStep

TARGETS: dict[str, tuple[Any, str, int | None]] = {
    # name: (owner, attribute, index of the path argument)
    "runner.write_parquet": (runner, "write_parquet", 1),
    "runner.write_json": (runner, "write_json", 1),
    "runner.write_buckets": (runner, "write_buckets", 2),
    "runner.write_duplicates": (runner, "write_duplicates", None),
    "files._fsync_replace": (files, "_fsync_replace", 1),
    "NormaliseStep.process": (NormaliseStep, "process", None),
    "shutil.rmtree": (shutil, "rmtree", 0),
}


def _say(msg: str) -> None:
    os.write(2, f"crash_driver: {msg}\n".encode())


def arm(spec: dict[str, Any]) -> None:
    owner, attr, path_arg = TARGETS[spec["target"]]
    func: Callable[..., Any] = getattr(owner, attr)
    k = int(spec.get("k", 1))
    pattern = re.compile(spec["path"]) if spec.get("path") else None
    when = spec.get("when", "before")
    sig = {"KILL": signal.SIGKILL, "INT": signal.SIGINT}[spec.get("signal", "KILL")]
    calls = 0

    def fire(args: tuple[Any, ...]) -> None:
        path = args[path_arg] if path_arg is not None and len(args) > path_arg else ""
        if spec.get("truncate"):
            tmp = Path(args[0])
            tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
        _say(f"{sig.name} {when} {spec['target']} call {k} {path}")
        os.kill(os.getpid(), sig)
        time.sleep(5)  # SIGINT: KeyboardInterrupt is raised in here; SIGKILL: never reached

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if pattern is not None:
            path = args[path_arg] if path_arg is not None and len(args) > path_arg else ""
            if not pattern.search(Path(path).as_posix()):
                return func(*args, **kwargs)
        calls += 1
        if calls != k:
            return func(*args, **kwargs)
        if when == "after":
            result = func(*args, **kwargs)
            fire(args)
            return result
        fire(args)
        return func(*args, **kwargs)

    setattr(owner, attr, wrapper)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: crash_driver.py [--kill JSON] -- CLI ARGS...")
    cut = argv.index("--")
    own, cli_args = argv[:cut], argv[cut + 1 :]
    if own[:1] == ["--kill"]:
        arm(json.loads(own[1]))
    elif own:
        raise SystemExit(f"unknown arguments: {own}")
    app(cli_args, prog_name="corpusalign")


if __name__ == "__main__":
    main(sys.argv[1:])
