"""The GPU training benchmark's CPU smoke path: its packed loop and corpusalign's own train() run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_train_gpu.py"


def test_cpu_smoke_runs_the_packed_loop_and_the_products_train(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, str(BENCH), "--cpu-smoke", "--runs", "amp,train-amp,train-bf16,train-bf16+pack"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads((tmp_path / "bench_train_gpu.json").read_text())
    runs = {r["run"]: r for r in out["results"]}
    assert "phases" in runs["amp"], runs["amp"]
    for spec in ("train-amp", "train-bf16", "train-bf16+pack"):
        r = runs[spec]
        assert r["pack"] == spec.endswith("+pack"), r
        assert r.get("product") and r["steps"] == r["timed_steps"] + 1, r  # --cpu-smoke: 1 warm-up step, 3 timed
        assert r["tokens_per_s"] > 0 and r["loss_first"] > 0 and r["tokens_per_row"] > 1
    assert "corpusalign train" not in res.stderr
