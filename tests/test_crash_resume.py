"""A build killed by a real signal at any point, run again, finishes with the same corpus.

Unlike ``test_resume.py`` (an exception raised in-process), every build here runs in its own
process through the real CLI (``tests/crash_driver.py``), and is stopped by a real signal:

* SIGKILL: the process dies on the spot, no ``finally``, no cleanup, half-written temporary files
  and the lock file left behind; the same ``corpusalign build`` command run again must finish the
  build;
* SIGINT (Ctrl-C): a clean stop, exit code 130 and a message saying how to resume.

Each finished corpus must equal an uninterrupted build's: the shards' rows (content hash), the
manifest's counts and accounting, ``validate(out) == []``, every (concept_id, lang) exactly once
across shards and rejected rows, the same quarantine lines, no ``*.tmp`` file and no ``_work/``.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from corpusalign.store import manifest as mf
from corpusalign.store.validate import validate

try:
    from helpers_store import outcome, small_config, write_input
except ImportError:  # tests/ imported as a package
    from tests.helpers_store import outcome, small_config, write_input

DRIVER = Path(__file__).with_name("crash_driver.py")
# small_config(batch_size=50, shards__max_rows=7) as a pipeline file for the CLI (checked equal below):
# 103 records -> three stage-1 batches (one stage-3 unit), ~59 buckets, ~66 shards; verification off.
PIPELINE = "src: en\ntgt: [de, ja, sw]\nbatch_size: 50\nshards:\n  max_rows: 7\nverify:\n  enabled: false\n"
RESUME_MESSAGE = "interrupted. Run the same command again to resume the build in {out}."

# path patterns (searched in the written file's final path)
STATE = r"/_work/state\.json$"
STAGED = r"/_work/stage1/part-\d+\.parquet$"
STAGE1_DONE = r"/_work/stage1\.done\.json$"
DUPLICATES = r"/_work/duplicates\.parquet$"
REJECTED = r"/rejected/part-\d+\.parquet$"
BUCKET_FILE = r"/_work/buckets/part-\d+\.arrow$"
STAGE3_MARKER = r"/_work/stats/stage3-000000\.json$"
SHARD = r"/shards/part-\d+-\d+\.parquet$"  # not the _work/shards/bNNNNN.json markers
BUCKET_DONE = r"/_work/shards/b\d+\.json$"
STATS = r"/stats\.json$"
MANIFEST = r"/manifest\.json$"
WORK = r"/_work$"


def _kill(target: str, k: int = 1, path: str | None = None, *, when: str = "before", truncate: bool = False) -> dict[str, Any]:
    return {"target": target, "k": k, "path": path, "when": when, "truncate": truncate}


# stage, where; "before": the call does not happen; "truncate": its temporary file is left half written
KILL_POINTS: dict[str, dict[str, Any]] = {
    # start: the state file half written (only a temporary file in _work/)
    "start-state-file": _kill("files._fsync_replace", 1, STATE, truncate=True),
    # stage 1: before the first batch is staged (nothing but state.json written)
    "s1-before-first-batch": _kill("NormaliseStep.process", 1),
    # stage 1: batch 2's quarantine and stats written, its staged part half written, not renamed
    "s1-mid-staged-part": _kill("files._fsync_replace", 2, STAGED, truncate=True),
    # stage 1: between batches (batch 2 staged, batch 3 not started)
    "s1-between-batches": _kill("runner.write_parquet", 2, STAGED, when="after"),
    # stage 1: every batch staged, the done marker written to its temporary file, not renamed
    "s1-done-marker": _kill("files._fsync_replace", 1, STAGE1_DONE),
    # stage 2: finding duplicates
    "s2-find-duplicates": _kill("runner.write_duplicates", 1),
    # stage 2: dedup stats written, duplicates.parquet half written
    "s2-mid-duplicates-write": _kill("files._fsync_replace", 1, DUPLICATES, truncate=True),
    # stage 3: batch 1's rejected rows about to be written (buckets.json written)
    "s3-before-rejected": _kill("runner.write_parquet", 1, REJECTED),
    # stage 3: the bucket file half written (every batch's rejected rows written, the unit not marked done)
    "s3-mid-bucket-file": _kill("files._fsync_replace", 1, BUCKET_FILE, truncate=True),
    # stage 3: between two batches of one unit (batch 2's rejected rows written, batch 3 not started)
    "s3-between-batches-of-a-unit": _kill("runner.write_parquet", 2, REJECTED, when="after"),
    # stage 3: right after the unit's marker (stage 4 not started)
    "s3-after-unit-marker": _kill("runner.write_json", 1, STAGE3_MARKER, when="after"),
    # stage 4: a shard half written to its temporary file, not renamed into place
    "s4-mid-shard-tmp": _kill("files._fsync_replace", 10, SHARD, truncate=True),
    # stage 4: between two shards of the run (shard 30 renamed into place, its bucket not marked done)
    "s4-between-shards": _kill("runner.write_parquet", 30, SHARD, when="after"),
    # stage 4: inside one bucket, between its pieces (bucket 14 has three; pieces 000 and 001 written)
    "s4-between-pieces-of-a-bucket": _kill("runner.write_parquet", 1, r"/shards/part-00014-001\.parquet$", when="after"),
    # stage 4: right after a bucket's done marker
    "s4-after-bucket-marker": _kill("runner.write_json", 40, BUCKET_DONE, when="after"),
    # finish: every shard written, stats.json not yet, no manifest
    "finish-before-stats": _kill("runner.write_json", 1, STATS),
    # finish: manifest.json.tmp whole but not renamed
    "manifest-tmp-not-renamed": _kill("files._fsync_replace", 1, MANIFEST),
    # finish: manifest.json.tmp half written
    "manifest-tmp-half-written": _kill("files._fsync_replace", 1, MANIFEST, truncate=True),
    # finish: manifest in place, _work/ not yet removed
    "after-manifest-before-cleanup": _kill("shutil.rmtree", 1, WORK),
}
AFTER_MANIFEST = {"after-manifest-before-cleanup"}

# SIGINT: the CLI stops cleanly (exit 130) and says how to resume
INT_POINTS: dict[str, dict[str, Any]] = {
    "s1-second-batch": _kill("NormaliseStep.process", 2),
    "s3-bucket-file": _kill("runner.write_buckets", 1, BUCKET_FILE),
    "s4-shard-tmp-not-renamed": _kill("files._fsync_replace", 10, SHARD),
    "manifest-tmp-not-renamed": _kill("files._fsync_replace", 1, MANIFEST),
}


class Env:
    """One input, one pipeline file, a private translation cache, and the uninterrupted build."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.input = write_input(root / "in.jsonl", n_tatoeba=90, n_udhr=10)
        self.pipeline = root / "pipeline.yaml"
        self.pipeline.write_text(PIPELINE, encoding="utf-8")
        # a private cache; COLUMNS: keep rich from folding the resume message inside a long path
        self.env = {**os.environ, "CORPUSALIGN_CACHE_DIR": str(root / "cache"), "COLUMNS": "300"}

    def args(self, out: Path) -> list[str]:
        return [
            "build",
            "--pipeline",
            str(self.pipeline),
            "--input",
            str(self.input),
            "--output",
            str(out),
            "--quiet",
            "--no-report",
        ]

    def crash(self, out: Path, spec: dict[str, Any], signal: str = "KILL") -> subprocess.CompletedProcess[str]:
        """The build, stopped by ``signal`` at ``spec`` (see tests/crash_driver.py)."""
        kill = json.dumps({**spec, "signal": signal})
        cmd = [sys.executable, str(DRIVER), "--kill", kill, "--", *self.args(out)]
        return subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=300)

    def build(self, out: Path) -> subprocess.CompletedProcess[str]:
        """The plain ``corpusalign build`` command: starts, resumes or finds the build up to date."""
        cmd = [sys.executable, "-m", "corpusalign.cli", *self.args(out)]
        done = subprocess.run(cmd, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"build {out} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done


def _keys(out: Path, sub: str, columns: list[str]) -> list[tuple[Any, ...]]:
    parts = sorted((out / sub).glob("*.parquet"))
    return [tuple(r) for p in parts for r in pl.read_parquet(p, columns=columns).iter_rows()]


def corpus(out: Path) -> dict[str, Any]:
    """What must be equal between a crashed-and-resumed build and an uninterrupted one."""
    m = mf.read_manifest(out)
    return {
        **outcome(out),
        "translation": m["translation"],
        "accounting": m["accounting"],
        "rows_kept_or_rejected": sorted(
            _keys(out, "shards", ["concept_id", "lang"]) + _keys(out, "rejected", ["concept_id", "lang"])
        ),
        "quarantine_lines": sorted(_keys(out, "quarantine", ["source_file", "source_line"])),
    }


def check_final(out: Path, expected: dict[str, Any]) -> None:
    assert validate(out) == []
    got = corpus(out)
    for key, want in expected.items():
        assert got[key] == want, f"{key} differs from the uninterrupted build"
    # every concept in every language exactly once across shards + rejected; every bad line once
    rows = got["rows_kept_or_rejected"]
    dup = [k for k, n in Counter(rows).items() if n > 1]
    assert not dup, f"duplicated (concept_id, lang): {dup[:5]}"
    acct = got["accounting"]
    assert len(rows) == acct["concepts_read"] * acct["languages"] == acct["kept_rows"] + acct["rejected_rows"]
    assert len(set(got["quarantine_lines"])) == len(got["quarantine_lines"]) == acct["quarantined_rows"] == 1
    assert not list(out.rglob("*.tmp")), "temporary files left in the corpus"
    assert not (out / "_work").exists(), "_work/ left behind"


def assert_lock_free(out: Path) -> None:
    """The dead build's lock file is still there, but holds no lock (flock dies with its process)."""
    lock = out / ".lock"
    assert lock.exists()
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a lock were still held
        fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("crash"))


@pytest.fixture(scope="module")
def reference(env: Env) -> dict[str, Any]:
    """The uninterrupted build, through the same CLI."""
    out = env.root / "reference"
    env.build(out)
    assert validate(out) == []
    expected = corpus(out)
    assert expected["accounting"]["ok"] and len(expected["shards"]) > 20  # many shards: many kill points
    return expected


def test_pipeline_file_is_the_small_config(env: Env) -> None:
    from corpusalign.config import load_config

    assert load_config(env.pipeline).to_dict() == small_config(batch_size=50, shards__max_rows=7).to_dict()


def _crash(env: Env, out: Path, where: str, spec: dict[str, Any], signal: str = "KILL") -> subprocess.CompletedProcess[str]:
    done = env.crash(out, spec, signal)
    fired = f"crash_driver: SIG{signal}"
    assert fired in done.stderr, f"{where}: the kill point never fired (rc {done.returncode}):\n{done.stderr}"
    return done


@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_sigkill_then_resume(where: str, env: Env, reference: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    spec = KILL_POINTS[where]
    done = _crash(env, out, where, spec)
    assert done.returncode == -9, done.stderr
    assert_lock_free(out)
    if where in AFTER_MANIFEST:
        assert (out / "manifest.json").exists() and (out / "_work").exists()
    else:
        assert not (out / "manifest.json").exists(), "a killed build must not look finished"
        assert validate(out), "validate must report an unfinished build"
    if spec["truncate"]:
        assert list(out.rglob("*.tmp")), "the half-written temporary file stays behind after a kill"
    env.build(out)
    check_final(out, reference)


def test_two_sigkills_in_a_row(env: Env, reference: dict[str, Any], tmp_path: Path) -> None:
    """Killed in stage 1, killed again in stage 4 while resuming, then resumed to the end."""
    out = tmp_path / "corpus"
    for where in ("s1-mid-staged-part", "s4-mid-shard-tmp"):
        assert _crash(env, out, where, KILL_POINTS[where]).returncode == -9
        assert_lock_free(out)
        assert not (out / "manifest.json").exists()
    env.build(out)
    check_final(out, reference)


@pytest.mark.parametrize("where", list(INT_POINTS))
def test_sigint_stops_cleanly_then_resume(where: str, env: Env, reference: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    done = _crash(env, out, where, INT_POINTS[where], "INT")
    assert done.returncode == 130, f"{done.returncode}:\n{done.stderr}"
    stderr = " ".join(done.stderr.split())
    assert RESUME_MESSAGE.format(out=out) in stderr
    assert "Traceback" not in done.stderr
    assert_lock_free(out)
    assert not (out / "manifest.json").exists()
    assert (out / "_work" / "state.json").exists(), "the work done so far is kept for the resume"
    env.build(out)
    check_final(out, reference)


def test_finished_build_run_again_is_up_to_date(env: Env, reference: dict[str, Any]) -> None:
    """The reference, built again: nothing rewritten (after-manifest-before-cleanup relies on it)."""
    out = env.root / "reference"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    env.build(out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    check_final(out, reference)
