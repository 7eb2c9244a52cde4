"""Shared fixtures: real parallel sample data and a one-call build helper.

The real data lies in ``../shared/data/parallel`` next to the repository (``/work/shared`` for a
checkout in ``/work/main``); when that is missing the copies bundled in ``corpusalign/data/sample``
are used (byte-identical files under other names).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from corpusalign.config import load_config
from corpusalign.runner import BuildResult, build

REPO = Path(__file__).resolve().parents[1]
SHARED_PARALLEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "parallel"
BUNDLED_SAMPLE = REPO / "corpusalign" / "data" / "sample"

#: name in shared/data/parallel -> name of the bundled copy
_SAMPLES = {
    "tatoeba_en_de_ja.dev.jsonl": "tatoeba_en_de_ja.jsonl",
    "udhr_en_de_ja_sw.blocks.jsonl": "udhr_en_de_ja_sw.jsonl",
    "cldr_en_de_ja_sw.names.jsonl": "cldr_names_en_de_ja_sw.jsonl",
}


def sample_path(name: str) -> Path:
    """Path of a sample data file: the shared copy if present, else the bundled one."""
    shared = SHARED_PARALLEL / name
    if shared.is_file():
        return shared
    bundled = BUNDLED_SAMPLE / _SAMPLES[name]
    if bundled.is_file():
        return bundled
    pytest.skip(f"sample data {name} found neither in {SHARED_PARALLEL} nor in {BUNDLED_SAMPLE}")


def load_bench_script(filename: str) -> Any:
    """A script of ``bench/`` imported as a module (``bench_<stem>``), for the tests of its functions."""
    import importlib.util
    import sys

    name = f"bench_{Path(filename).stem}"
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


@pytest.fixture(scope="session")
def tatoeba_rows() -> list[dict[str, Any]]:
    """The first 200 Tatoeba records (``concept_id``, ``en``, ``de``, ``ja``, sometimes ``fr``/``es``)."""
    rows = _read_jsonl(sample_path("tatoeba_en_de_ja.dev.jsonl"), limit=200)
    assert len(rows) == 200
    return rows


@pytest.fixture(scope="session")
def udhr_rows() -> list[dict[str, Any]]:
    """All UDHR blocks (``concept_id``, ``en``, ``de``, ``ja``, ``sw``); some texts span several lines."""
    rows = _read_jsonl(sample_path("udhr_en_de_ja_sw.blocks.jsonl"))
    assert rows
    return rows


RunBuild = Callable[..., BuildResult]


@pytest.fixture
def run_build() -> RunBuild:
    """``run_build(inputs, out, **cfg_overrides)``: one build with ``load_config(**cfg_overrides)``.

    ``inputs`` may be one path or a sequence of paths; nested overrides use a double underscore
    (``select__max_chars=40``, ``translate__memory=("tm.tmx",)``).
    """

    def _run(inputs: str | Path | Sequence[str | Path], out: str | Path, **cfg_overrides: Any) -> BuildResult:
        if isinstance(inputs, str | Path):
            inputs = [inputs]
        # These tests are about reading and selecting; verification has its own tests.
        cfg_overrides.setdefault("verify__enabled", False)
        return build(load_config(**cfg_overrides), list(inputs), out, progress=False)

    return _run


class BuildOutput:
    """The files of a finished build, read back as a user would: shards, rejected and quarantine rows."""

    def __init__(self, result: BuildResult) -> None:
        import polars as pl

        from corpusalign.store.schema import QUARANTINE_SCHEMA, REJECTED_SCHEMA, SHARD_SCHEMA

        self.result = result
        self.root = Path(result.output)
        self.manifest = result.manifest

        def _read(sub: str, schema: Any) -> pl.DataFrame:
            files = sorted((self.root / sub).glob("*.parquet"))
            return pl.read_parquet(files) if files else pl.from_arrow(schema.empty_table())

        self.shards = _read("shards", SHARD_SCHEMA)
        self.rejected = _read("rejected", REJECTED_SCHEMA)
        self.quarantine = _read("quarantine", QUARANTINE_SCHEMA)

    def check_accounting(self, input_records: int | None = None) -> dict[str, Any]:
        """Assert that nothing was lost, from the manifest and from the files themselves."""
        acct = self.manifest["accounting"]
        assert acct["ok"] is True, acct
        n_langs = len(self.manifest["languages"])
        assert acct["languages"] == n_langs
        assert acct["kept_rows"] == self.shards.height, acct
        assert acct["rejected_rows"] == self.rejected.height, acct
        assert acct["quarantined_rows"] == self.quarantine.height, acct
        assert acct["concepts_read"] == acct["input_records"] - acct["quarantined_rows"]
        assert acct["input_rows"] == acct["concepts_read"] * n_langs + acct["quarantined_rows"]
        assert acct["input_rows"] == self.shards.height + self.rejected.height + self.quarantine.height
        if input_records is not None:
            assert acct["input_records"] == input_records, acct
        return acct


@pytest.fixture
def read_output() -> Callable[[BuildResult], BuildOutput]:
    """``read_output(result)``: a :class:`BuildOutput` for the build's output directory."""
    return BuildOutput
