"""The shipped gates (corpusalign/verify/gates_e5_small.json) are what their documented command makes.

The command is in the file's own provenance and in docs/verification.md. It needs the bundled
multilingual-e5-small and the real parallel data of ../shared/data/parallel (skipped where that is
absent), and about two minutes: marked slow, run in CI.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SHARED_PARALLEL

pytestmark = pytest.mark.slow

SHIPPED = REPO / "corpusalign" / "verify" / "gates_e5_small.json"


def _differences(want: Any, got: Any, where: str = "") -> list[str]:
    """Where two JSON values differ; floats within 1e-9 (relative) are equal."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}/{k}: only in one" for k in want.keys() ^ got.keys()]
        return out + [d for k in want.keys() & got.keys() for d in _differences(want[k], got[k], f"{where}/{k}")]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (a, b) in enumerate(zip(want, got, strict=True)) for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, float | int) and not isinstance(got, bool):
        return [] if math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12) else [f"{where}: {want} != {got}"]
    return [] if want == got else [f"{where}: {want!r} != {got!r}"]


def test_the_documented_calibration_command_makes_the_shipped_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from corpusalign.cli import app

    shipped = json.loads(SHIPPED.read_text())
    args = shlex.split(shipped["provenance"]["command"])[1:]
    dev = [Path(args[i + 1]).name for i, a in enumerate(args) if a == "--dev"]
    missing = [name for name in dev if not (SHARED_PARALLEL / name).is_file()]
    if missing:
        pytest.skip(f"calibration data not found in {SHARED_PARALLEL}: {', '.join(missing)}")
    # the same command, reading the shared data wherever it is, writing to tmp_path
    for i, a in enumerate(args[:-1]):
        if a == "--dev":
            args[i + 1] = str(SHARED_PARALLEL / Path(args[i + 1]).name)
        elif a == "--gates-json":
            args[i + 1] = str(tmp_path / "gates.json")
        elif a == "-o":
            args[i + 1] = str(tmp_path / "calibrated.yaml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    made = json.loads((tmp_path / "gates.json").read_text())
    assert not _differences(shipped["gates"], made["gates"]), _differences(shipped["gates"], made["gates"])[:10]
    assert not _differences(shipped["metrics"], made["metrics"]), _differences(shipped["metrics"], made["metrics"])[:10]
