"""An interrupted build, run again, finishes with the same shards as an uninterrupted one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import corpusalign.runner as runner
import corpusalign.store.files as files
from corpusalign.runner import BuildError, build
from corpusalign.steps.normalise import NormaliseStep
from corpusalign.store import manifest as mf
from corpusalign.store.validate import validate

try:
    from helpers_store import interrupt_on, outcome, small_config, write_input
except ImportError:  # tests/ imported as a package
    from tests.helpers_store import interrupt_on, outcome, small_config, write_input

# 103 records in batches of 50: three stage-1 batches; shards of at most 7 rows: dozens of shards.
CFG = small_config(batch_size=50, shards__max_rows=7)


@pytest.fixture(autouse=True, scope="module")
def two_batches_per_select_unit() -> Iterator[None]:
    """Stage 3 in units of two batches: the three batches make two units, one of two batches."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "ROWS_PER_SELECT_UNIT", 2 * CFG.batch_size * len(CFG.langs))
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(input, outcome of an uninterrupted build)."""
    root = tmp_path_factory.mktemp("resume")
    inp = write_input(root / "in.jsonl", n_tatoeba=90, n_udhr=10)
    out = root / "reference"
    build(CFG, [inp], out, progress=False)
    assert validate(out) == []
    return inp, outcome(out)


def _under(part: str) -> Callable[..., bool]:
    """Match write_parquet(table, path, schema) / _fsync_replace(tmp, path) calls on paths under ``part``."""
    return lambda *args, **kw: f"/{part}/" in Path(args[1]).as_posix()


def _is_shard(tmp: Path, path: Path) -> bool:
    return path.parent.name == "shards" and path.suffix == ".parquet"  # not the _work/shards/*.json markers


def _truncate_tmp(tmp: Path, path: Path) -> None:
    """Leave a half-written temporary file, as a kill in the middle of a write would."""
    tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])


def _interrupt_stage1_batch(k: int) -> Callable[[pytest.MonkeyPatch], Any]:
    def patch(mp: pytest.MonkeyPatch) -> Any:
        wrapper = interrupt_on(NormaliseStep.process, k)
        mp.setattr(NormaliseStep, "process", wrapper)
        return wrapper

    return patch


def _interrupt(target: Any, name: str, k: int, when: Any = None, before: Any = None) -> Callable[[pytest.MonkeyPatch], Any]:
    def patch(mp: pytest.MonkeyPatch) -> Any:
        wrapper = interrupt_on(getattr(target, name), k, when, before)
        mp.setattr(target, name, wrapper)
        return wrapper

    return patch


INTERRUPTIONS = {
    # stage 1: before the first batch is staged, and after two of the three batches
    "stage1-first-batch": _interrupt_stage1_batch(1),
    "stage1-after-2-batches": _interrupt_stage1_batch(3),
    # stage 1: the staged part of batch 2 was being written (its quarantine and stats already were)
    "stage1-writing-part": _interrupt(runner, "write_parquet", 2, _under("stage1")),
    # stage 2: finding duplicates
    "stage2": _interrupt(runner, "write_duplicates", 1),
    # stage 3: the second unit's bucket file about to be written (the first unit done)
    "stage3-mid-batch": _interrupt(runner, "write_buckets", 2),
    # stage 4: a shard half written to its temporary file, not yet renamed into place
    "stage4-mid-shard": _interrupt(files, "_fsync_replace", 10, _is_shard, _truncate_tmp),
    # after every shard: writing the manifest
    "manifest": _interrupt(runner, "write_json", 1, lambda obj, path: Path(path).name == mf.MANIFEST),
}


def _interrupt_build(where: str, inp: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the build of ``inp`` into ``out`` until the interruption ``where`` stops it."""
    with monkeypatch.context() as mp:
        INTERRUPTIONS[where](mp)
        with pytest.raises(KeyboardInterrupt):
            build(CFG, [inp], out, progress=False)


@pytest.mark.parametrize("where", list(INTERRUPTIONS))
def test_resume_gives_the_same_corpus(
    where: str, reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, expected = reference
    out = tmp_path / "corpus"
    with monkeypatch.context() as mp:
        wrapper = INTERRUPTIONS[where](mp)
        with pytest.raises(KeyboardInterrupt):
            build(CFG, [inp], out, progress=False)
        assert wrapper.state["fired"]
    assert not (out / mf.MANIFEST).exists(), "an interrupted build must not look finished"
    assert validate(out), "validate must report an unfinished build"
    if where == "stage4-mid-shard":
        assert list((out / "shards").glob("*.tmp")), "the half-written shard stays as a temporary file"
    result = build(CFG, [inp], out, progress=False)
    assert result.resumed
    assert outcome(out) == expected
    assert validate(out) == []
    assert not list(out.rglob("*.tmp"))


def test_resume_after_two_interruptions(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, expected = reference
    out = tmp_path / "corpus"
    for patch in (INTERRUPTIONS["stage1-after-2-batches"], INTERRUPTIONS["stage3-mid-batch"]):
        with monkeypatch.context() as mp:
            patch(mp)
            with pytest.raises(KeyboardInterrupt):
                build(CFG, [inp], out, progress=False)
    build(CFG, [inp], out, progress=False)
    assert outcome(out) == expected
    assert validate(out) == []


def test_leftover_tmp_files_removed_on_resume(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, expected = reference
    out = tmp_path / "corpus"
    _interrupt_build("stage3-mid-batch", inp, out, monkeypatch)
    leftovers = [
        out / "shards" / "part-00000-000.parquet.tmp",
        out / "rejected" / "part-000000.parquet.tmp",
        out / "_work" / "stage1" / "part-000001.parquet.tmp",
        out / "_work" / "duplicates.parquet.tmp",
    ]
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"PAR1 half a file")
    build(CFG, [inp], out, progress=False)
    for p in leftovers:
        assert not p.exists(), f"{p} left behind"
    assert outcome(out) == expected
    assert validate(out) == []


def test_resume_with_other_config_is_refused(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, expected = reference
    out = tmp_path / "corpus"
    _interrupt_build("stage1-after-2-batches", inp, out, monkeypatch)
    staged = sorted((out / "_work" / "stage1").glob("*.parquet"))
    assert len(staged) == 2
    other = small_config(batch_size=50, shards__max_rows=7, select__max_chars=100)
    with pytest.raises(BuildError, match="--overwrite") as info:
        build(other, [inp], out, progress=False)
    assert "unfinished build" in str(info.value)
    assert sorted((out / "_work" / "stage1").glob("*.parquet")) == staged, "a refused build must not touch the work"
    # the same configuration still resumes, and overwrite starts again with the other one
    build(CFG, [inp], out, progress=False)
    assert outcome(out) == expected
    result = build(other, [inp], out, overwrite=True, progress=False)
    assert not result.resumed
    assert result.manifest["config"]["select"]["max_chars"] == 100
    assert validate(out) == []


def test_resume_with_changed_input_is_refused(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, _ = reference
    mine = tmp_path / "in.jsonl"
    mine.write_bytes(inp.read_bytes())
    out = tmp_path / "corpus"
    _interrupt_build("stage2", mine, out, monkeypatch)
    with open(mine, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"concept_id": "new", "en": "A record added after the interruption."}) + "\n")
    with pytest.raises(BuildError, match="--overwrite"):
        build(CFG, [mine], out, progress=False)


def test_resume_of_another_work_layout_is_refused(
    reference: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unfinished build left by a corpusalign with another ``_work/`` layout (an older state.json has
    no ``layout``) is refused with a clear message, not resumed into a crash; --overwrite starts again."""
    inp, expected = reference
    out = tmp_path / "corpus"
    _interrupt_build("stage1-after-2-batches", inp, out, monkeypatch)
    state_path = out / "_work" / "state.json"
    state = json.loads(state_path.read_text())
    assert state["layout"] == runner.WORK_LAYOUT
    del state["layout"]  # what a build from before the layout version wrote
    state_path.write_text(json.dumps(state))
    with pytest.raises(BuildError, match="another corpusalign version") as info:
        build(CFG, [inp], out, progress=False)
    assert "--overwrite" in str(info.value)
    build(CFG, [inp], out, overwrite=True, progress=False)
    assert outcome(out) == expected
