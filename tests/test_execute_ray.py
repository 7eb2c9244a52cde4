"""The Ray executor writes the same corpus as the local one.

One local Ray instance (``ray.init(num_cpus=2)``) for the module. The build under test exercises
every kind of stage: a translation model (a tiny NLLB made in-process) and the bundled e5 embedder
as actor pools, the CPU steps as tasks, and near duplicates planted in other batches than their
originals, so dedup must see across partitions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers_store import small_config, write_input  # noqa: E402
from tiny_models import build_nllb  # noqa: E402

from corpusalign.execute import ExecutorOptions, LocalExecutor, Stage, make_executor  # noqa: E402
from corpusalign.execute.base import check_plain  # noqa: E402
from corpusalign.runner import RAY_LOG, build  # noqa: E402

ray = pytest.importorskip("ray")

FLOAT_TOL = 1e-5
ROW_KEY = ("source_file", "source_line", "lang")


@pytest.fixture(scope="module")
def ray_instance() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _near_copy(text: str) -> str:
    """One letter changed in the middle: a near duplicate at the default 5-gram threshold."""
    i = len(text) // 2
    while not text[i].isalpha():
        i += 1
    return text[:i] + ("x" if text[i] != "x" else "y") + text[i + 1 :]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-input")
    path = write_input(root / "in.jsonl", n_tatoeba=90, n_udhr=12)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith('{"')]
    extra = []
    udhr = [r for r in records if len(r.get("en", "")) >= 120][:3]
    assert len(udhr) == 3, "the input needs long English texts to near-duplicate"
    for k, r in enumerate(udhr):  # near duplicates, appended: in the last batch, their originals in earlier ones
        extra.append({**r, "concept_id": f"near.{k}", "en": _near_copy(r["en"])})
    for k, r in enumerate(records[:12]):  # targets missing: the translator fills them
        extra.append({"concept_id": f"translate.{k}", "en": r["en"] + f" ({k})"})
    with open(path, "a", encoding="utf-8") as fh:
        for r in extra:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def nllb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_nllb(tmp_path_factory.mktemp("tiny-nllb") / "nllb")


@pytest.fixture(scope="module")
def outputs(ray_instance: Any, corpus: Path, nllb: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cfg = small_config(
        tgt=("de", "ja", "sw"),
        batch_size=40,
        verify__enabled=True,
        translate__translator="seq2seq",
        translate__model=str(nllb),
        translate__cache=False,
        translate__generation={"num_beams": 1, "max_new_tokens": 8},
    )
    root = tmp_path_factory.mktemp("ray-out")
    out = {}
    for name, options in (("local", None), ("ray", ExecutorOptions(name="ray"))):
        build(cfg, [corpus], root / name, progress=False, executor=options, keep_work=False)
        out[name] = root / name
    return out


def _rows(out: Path, sub: str, sort: tuple[str, ...]) -> pl.DataFrame:
    files = sorted((out / sub).glob("*.parquet"))
    return pl.read_parquet(files).sort(*sort) if files else pl.DataFrame()


def _assert_frames_match(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns and a.height == b.height
    for col in a.columns:
        if a[col].dtype in (pl.Float32, pl.Float64):
            diff = (a[col] - b[col]).abs().max()
            assert diff is None or diff <= FLOAT_TOL, f"{col}: scores differ by {diff}"
            assert a[col].is_null().equals(b[col].is_null()), f"{col}: nulls differ"
        else:
            assert a[col].equals(b[col]), f"column {col} differs"


def test_ray_shards_equal_local_shards(outputs: dict[str, Path]) -> None:
    local, ray_out = outputs["local"], outputs["ray"]
    names = sorted(p.name for p in (local / "shards").glob("*.parquet"))
    assert names and names == sorted(p.name for p in (ray_out / "shards").glob("*.parquet"))
    for name in names:  # shard by shard: same concepts in the same shard, same rows, same scores
        _assert_frames_match(pl.read_parquet(local / "shards" / name), pl.read_parquet(ray_out / "shards" / name))


def test_ray_rejects_and_quarantines_the_same_rows(outputs: dict[str, Path]) -> None:
    local, ray_out = outputs["local"], outputs["ray"]
    _assert_frames_match(_rows(local, "rejected", ROW_KEY), _rows(ray_out, "rejected", ROW_KEY))
    _assert_frames_match(_rows(local, "quarantine", ("source_line",)), _rows(ray_out, "quarantine", ("source_line",)))


def test_ray_manifest_counts_equal_local(outputs: dict[str, Path]) -> None:
    a = json.loads((outputs["local"] / "manifest.json").read_text())
    b = json.loads((outputs["ray"] / "manifest.json").read_text())
    for key in ("counts", "drop_reasons", "accounting", "translation", "verification", "translators"):
        assert a[key] == b[key], key
    assert a["accounting"]["ok"]
    assert a["translation"]["filled"] > 0, "the translator filled rows (a model stage ran)"
    assert [s["rows"] for s in a["shards"]] == [s["rows"] for s in b["shards"]]


def test_near_duplicates_found_across_batches_on_ray(outputs: dict[str, Path]) -> None:
    for out in outputs.values():
        rejected = _rows(out, "rejected", ROW_KEY)
        near = rejected.filter(pl.col("drop_reason") == "near_duplicate")
        assert {"near.0", "near.1", "near.2"} <= set(near["concept_id"])


def test_ray_step_statistics_merge_into_the_same_report(outputs: dict[str, Path]) -> None:
    a = json.loads((outputs["local"] / "stats.json").read_text())["steps"]
    b = json.loads((outputs["ray"] / "stats.json").read_text())["steps"]
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step]["rows"] == b[step]["rows"], step
        assert a[step]["counters"] == b[step]["counters"] or step in ("translate", "verify"), step
        assert a[step]["histograms"].keys() == b[step]["histograms"].keys(), step
    assert a["verify"]["counters"]["texts_embedded"] == b["verify"]["counters"]["texts_embedded"]


def test_executor_map_runs_tasks_and_model_stages(ray_instance: Any) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)  # in a Ray actor this list is the actor's copy
        return lambda x: x * 10

    stages = [Stage("inc", fn=lambda x: x + 1), Stage("model", factory=factory)]
    with make_executor(ExecutorOptions(name="ray")) as ex:
        assert sorted(ex.map(stages, range(6))) == [10, 20, 30, 40, 50, 60]
        assert list(ex.map(stages, [])) == []
    assert sorted(LocalExecutor().map(stages, range(3))) == [10, 20, 30]
    assert ray.is_initialized(), "an executor does not shut down a Ray instance it did not start"


def test_a_failing_unit_fails_the_ray_map(ray_instance: Any) -> None:
    def boom(x: int) -> int:
        if x == 2:
            raise ValueError("unit 2 is broken")
        return x

    with make_executor(ExecutorOptions(name="ray")) as ex, pytest.raises(Exception, match="unit 2 is broken"):
        list(ex.map([Stage("boom", fn=boom)], range(4)))


def test_executor_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        ExecutorOptions(name="spark")
    with pytest.raises(ValueError, match="need --executor ray"):
        ExecutorOptions(name="local", gpus_per_worker=1)
    with pytest.raises(ValueError, match="model_workers"):
        ExecutorOptions(name="ray", model_workers=0)
    with pytest.raises(ValueError, match="exactly one"):
        Stage("x")


def test_cli_build_with_executor_ray(ray_instance: Any, corpus: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from corpusalign.cli import app

    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("src: en\ntgt: [de, ja, sw]\nbatch_size: 30\nverify:\n  enabled: false\n")
    args = ["build", "-i", str(corpus), "-p", str(pipeline), "--quiet", "--no-report"]
    runner = CliRunner()
    for name in ("local", "ray"):
        res = runner.invoke(app, [*args, "-o", str(tmp_path / name), "--executor", name])
        assert res.exit_code == 0, res.output
    a, b = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("local", "ray"))
    assert a["counts"] == b["counts"] and a["drop_reasons"] == b["drop_reasons"]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "x"), "--gpus-per-worker", "1"])
    assert res.exit_code == 2 and "need --executor ray" in res.output


# ------------------------------------------------------------------ quiet, and no pickled columns
# These start their own Ray instance in a subprocess (as `corpusalign build` does), so that what Ray
# prints on the terminal is what the test captures.

PICKLE_FALLBACK = ("falling back to serialize as pickled", "Failed to convert column")
CLI = "import sys; from corpusalign.cli import app; sys.argv[0] = 'corpusalign'; app()"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH", "")]))
    return env


@pytest.fixture(scope="module")
def quiet_build(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``corpusalign build --executor ray --quiet`` in a subprocess: tasks and a model stage (the tm
    translator), verification off to be fast."""
    root = tmp_path_factory.mktemp("ray-quiet")
    pipeline = root / "p.yaml"
    pipeline.write_text("src: en\ntgt: [de, ja, sw]\nbatch_size: 30\nverify:\n  enabled: false\n")
    out = root / "out"
    args = ["build", "-i", str(corpus), "-p", str(pipeline), "-o", str(out), "--executor", "ray", "--num-cpus", "2", "--quiet"]
    res = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=180, env=_env())
    return res, out


def test_a_quiet_ray_build_prints_nothing(quiet_build: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    res, out = quiet_build
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == "", f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert json.loads((out / "manifest.json").read_text())["accounting"]["ok"]
    ray_log = (out / RAY_LOG).read_text(encoding="utf-8")
    assert "Started a local Ray instance" in ray_log, "Ray's own logging went to the run's log file"
    assert "execution finished" in ray_log, "so did Ray Data's"


def test_no_column_of_a_ray_build_falls_back_to_pickling(quiet_build: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    res, out = quiet_build
    ray_log = (out / RAY_LOG).read_text(encoding="utf-8")
    for text in (res.stdout, res.stderr, ray_log):
        for needle in PICKLE_FALLBACK:
            assert needle not in text


WORKER_SCRIPT = """
import logging, sys, time
from pathlib import Path
from corpusalign.execute import ExecutorOptions, Stage, make_executor

def shout(x):
    print(f"worker says {x}", flush=True)
    logging.getLogger("ray.data").warning("a Ray Data warning in a worker")
    return {"index": x, "blob": bytes([x]) * 3, "note": None}

def read(r):
    return r["blob"].hex() + ":" + str(r["index"])

stages = [Stage("shout", fn=shout), Stage("model", factory=lambda: read)]
with make_executor(ExecutorOptions(name="ray", num_cpus=2, log_file=Path(sys.argv[1]))) as ex:
    print(sorted(ex.map(stages, range(3))))
    time.sleep(3)  # Ray's log monitor forwards what workers print every few hundred ms, best effort
"""


def test_ray_workers_print_to_the_log_file_and_records_round_trip(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "ray.log"
    res = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(log_file)], capture_output=True, text=True, timeout=180, env=_env()
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "" and res.stdout == "['000000:0', '010101:1', '020202:2']\n", (res.stdout, res.stderr)
    text = log_file.read_text(encoding="utf-8")
    assert text.startswith("--- corpusalign: Ray's log of the run started")
    assert not any(needle in text for needle in PICKLE_FALLBACK)
    for k in range(3):
        assert f"worker says {k}" in text, text


def test_units_and_stage_results_must_be_plain_values() -> None:
    assert list(LocalExecutor().map([Stage("rec", fn=lambda x: {"i": x, "b": b"x", "s": None})], [1])) == [
        {"i": 1, "b": b"x", "s": None}
    ]
    with pytest.raises(TypeError, match="stage 'bad'.*not a plain value"):
        list(LocalExecutor().map([Stage("bad", fn=lambda x: [x])], [1]))
    with pytest.raises(TypeError, match="a unit.*not a plain value"):
        list(LocalExecutor().map([Stage("ok", fn=str)], [Path("x")]))
    with pytest.raises(TypeError, match="not a plain value"):
        check_plain({"nested": {"a": 1}}, "x")
