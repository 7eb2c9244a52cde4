"""A build on a Ray cluster the build did not start: two nodes, then one of them killed mid-build.

The cluster is two Ray nodes on this machine, each a ``ray start --block`` process of its own with
one CPU (``--head`` and ``--address=HEAD``), token authentication on as Ray 2.60 defaults to for a
cluster (``RAY_AUTH_MODE=token`` and one ``RAY_AUTH_TOKEN`` for the nodes and the driver). The
build is the real CLI in a subprocess with ``--executor ray --ray-address HEAD``; it must write the
same corpus, row by row, as the local executor. The input is three files whose batches straddle
file boundaries, with an unreadable line, duplicates across files and a CSV, so reading on the
workers and finding duplicates in partitions are both exercised.

Marked slow (CI runs it): starting the nodes takes a few seconds each.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers_store import TATOEBA, UDHR  # noqa: E402

from corpusalign.config import load_config  # noqa: E402
from corpusalign.runner import build  # noqa: E402

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
CLI = "import sys; from corpusalign.cli import app; sys.argv[0] = 'corpusalign'; app()"
PIPELINE = "src: en\ntgt: [de, ja, sw]\nbatch_size: 40\nshards:\n  max_rows: 200\nverify:\n  enabled: false\n"
#: What a busy Ray worker process is called while it runs a unit of the build (Ray sets the title).
BUSY = ("ray::Map(", "ray::MapBatches(", "ray::ReadFiles", "ray::FromItems")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """Two Ray nodes started as separate processes; :meth:`kill_worker_node` ends the second one."""

    def __init__(self) -> None:
        # Unix socket paths are limited to ~107 bytes: a short temp dir, not pytest's
        self.tmp = Path(tempfile.mkdtemp(prefix="ca-ray-", dir="/tmp"))
        self.address = f"127.0.0.1:{_free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
        port = self.address.split(":")[1]
        head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.tmp / 'ray'}"]
        self.head = self._start(head, "head")
        self._wait_for_nodes(1)
        self.worker = self._start([f"--address={self.address}"], "worker")
        self.seen: list[str] = []  # titles of the second node's busy workers, as they were seen
        self._wait_for_nodes(2)

    def _start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - open for the life of the node
        cmd = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args]
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def alive_nodes(self) -> int:
        code = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=60)
        return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else 0

    def _wait_for_nodes(self, n: int) -> None:
        deadline = time.monotonic() + 90
        while self.alive_nodes() < n:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in self.tmp.glob("*.log"))
                raise RuntimeError(f"the Ray cluster did not reach {n} nodes:\n{logs}")
            time.sleep(1)

    def worker_node_busy(self) -> bool:
        """Whether a worker process of the second node is running a unit now."""
        try:
            procs = psutil.Process(self.worker.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        for p in procs:
            try:
                title = " ".join(p.cmdline()).strip()
            except psutil.Error:
                continue
            if title.startswith(BUSY):
                self.seen.append(title)
                return True
        return False

    def kill_worker_node(self) -> None:
        _kill_tree(self.worker)

    def stop(self) -> None:
        for node in (self.worker, self.head):
            _kill_tree(node)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a ``ray start`` process and every process it started (raylet, its workers, agents)."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in [*tree, psutil.Process(proc.pid)] if proc.poll() is None else tree:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three inputs: 130 and 57 JSONL records and a 45-row CSV; batches of 40 straddle every file boundary."""
    root = tmp_path_factory.mktemp("cluster-input")
    tatoeba = TATOEBA.read_text(encoding="utf-8").splitlines()
    udhr = UDHR.read_text(encoding="utf-8").splitlines()
    first = json.loads(tatoeba[0])
    a = tatoeba[:129] + ["{not json"]
    b = udhr[:50] + tatoeba[129:134] + [json.dumps({**first, "concept_id": "copy.of.first"}, ensure_ascii=False)]
    b += [json.dumps({**json.loads(udhr[3]), "concept_id": "near.copy", "en": json.loads(udhr[3])["en"] + " Also."})]
    (root / "a.jsonl").write_text("\n".join(a) + "\n", encoding="utf-8")
    (root / "b.jsonl").write_text("\n".join(b) + "\n", encoding="utf-8")
    rows = [json.loads(line) for line in tatoeba[200:245]]
    pl.DataFrame(
        {
            "concept_id": [r["concept_id"] for r in rows],
            "en": [r["en"] for r in rows],
            "de": [r.get("de") for r in rows],
            "ja": [r.get("ja") for r in rows],
        }
    ).write_csv(root / "c.csv")
    return [root / "a.jsonl", root / "b.jsonl", root / "c.csv"]


@pytest.fixture(scope="module")
def local(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster-local") / "out"
    cfg = load_config(None, src="en", tgt=("de", "ja", "sw"), batch_size=40, shards__max_rows=200, verify__enabled=False)
    build(cfg, inputs, out, progress=False)
    return out


def _build_on(cluster: Cluster, inputs: list[Path], out: Path, **popen: Any) -> subprocess.Popen[str]:
    pipeline = out.parent / "p.yaml"
    pipeline.write_text(PIPELINE)
    args = ["build", "-p", str(pipeline), "-o", str(out), "--executor", "ray", "--ray-address", cluster.address, "--quiet"]
    for p in inputs:
        args += ["-i", str(p)]
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env, **popen
    )


def _frame(out: Path, sub: str) -> pl.DataFrame:
    files = sorted((out / sub).glob("*.parquet"))
    df = pl.read_parquet(files) if files else pl.DataFrame()
    return df.sort(df.columns[:3]) if df.height else df


def _assert_same_corpus(local: Path, other: Path) -> None:
    for sub in ("shards", "rejected", "quarantine"):
        a, b = _frame(local, sub), _frame(other, sub)
        assert a.height and a.equals(b), f"{sub}: {a.height} rows locally, {b.height} on the cluster"
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (local, other))
    assert ma["counts"] == mb["counts"] and ma["drop_reasons"] == mb["drop_reasons"]
    assert mb["accounting"]["ok"]
    assert [e["path"] for e in ma["shards"]] == [e["path"] for e in mb["shards"]]


def _watch(cluster: Cluster, proc: subprocess.Popen[str], kill_after: Path | None = None) -> bool:
    """Wait for the build; returns whether the second node was seen running a unit. With ``kill_after``
    (a file the build writes), the node is killed at the first such moment after that file exists."""
    seen = False
    while proc.poll() is None:
        if not seen and (kill_after is None or kill_after.exists()) and cluster.worker_node_busy():
            seen = True
            if kill_after is not None:
                cluster.kill_worker_node()
        time.sleep(0.02)
    return seen


def test_a_two_node_cluster_builds_the_same_corpus_as_the_local_executor(
    cluster: Cluster, inputs: list[Path], local: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _build_on(cluster, inputs, out)
    worker_ran_units = _watch(cluster, proc)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert stdout == "" and stderr == "", "--quiet prints nothing on a cluster either"
    assert worker_ran_units, "the second node ran some of the build's units"
    print("the second node ran:", cluster.seen[-1])
    _assert_same_corpus(local, out)
    quarantined = _frame(out, "quarantine")
    assert quarantined["source_line"].to_list() == [130] and quarantined["source_file"][0].endswith("a.jsonl")


def test_a_build_survives_losing_a_node(cluster: Cluster, inputs: list[Path], local: Path, tmp_path: Path) -> None:
    """The second node is killed (its raylet and workers, SIGKILL) while it runs a unit, after the
    inputs are read: Ray retries the unit and recovers lost blocks on the head (units overwrite their
    own files), and the corpus equals the local one."""
    if cluster.alive_nodes() < 2:
        pytest.skip("needs the second node")
    out = tmp_path / "out"
    proc = _build_on(cluster, inputs, out)
    killed = _watch(cluster, proc, kill_after=out / "_work" / "read.done.json")
    stdout, stderr = proc.communicate(timeout=600)
    assert killed, "the second node was killed while running a unit"
    print("killed the second node while it ran:", cluster.seen[-1])
    assert proc.returncode == 0, stderr
    deadline = time.monotonic() + 120  # Ray marks a node dead after missed health checks
    while cluster.alive_nodes() > 1 and time.monotonic() < deadline:
        time.sleep(2)
    assert cluster.alive_nodes() == 1, "the second node is gone"
    _assert_same_corpus(local, out)
