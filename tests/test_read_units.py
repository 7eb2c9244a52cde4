"""Reading per input file (stage 1a) gives every batch exactly what one stream over all inputs gives."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers_store import TATOEBA, UDHR  # noqa: E402

from corpusalign.config import load_config  # noqa: E402
from corpusalign.read.formats import read_all  # noqa: E402
from corpusalign.read.records import records_to_batch  # noqa: E402
from corpusalign.read.units import ReadFileJob, assemble_batch, file_offsets  # noqa: E402


def _inputs(root: Path) -> list[Path]:
    tatoeba = TATOEBA.read_text(encoding="utf-8").splitlines()
    udhr = UDHR.read_text(encoding="utf-8").splitlines()
    (root / "a.jsonl").write_text("\n".join([*tatoeba[:23], "{bad", *tatoeba[23:30]]) + "\n", encoding="utf-8")
    (root / "empty.jsonl").write_text("", encoding="utf-8")
    (root / "b.jsonl").write_text("\n".join([*udhr[:9], '{"concept_id": "", "en": "x"}', "[1]"]) + "\n", encoding="utf-8")
    (root / "c.unknown").write_text("what is this", encoding="utf-8")  # one quarantined item: the whole file
    rows = [json.loads(line) for line in tatoeba[40:57]]
    pl.DataFrame({k: [r.get(k) for r in rows] for k in ("concept_id", "en", "de", "ja")}).write_parquet(root / "d.parquet")
    return [root / n for n in ("a.jsonl", "empty.jsonl", "b.jsonl", "c.unknown", "d.parquet")]


@pytest.mark.parametrize("batch_size", [1, 4, 7, 31, 100])
def test_batches_from_files_equal_one_stream_over_all_inputs(tmp_path: Path, batch_size: int) -> None:
    inputs = _inputs(tmp_path)
    cfg = load_config(None, src="en", tgt=("de", "ja", "sw"), batch_size=batch_size)
    job = ReadFileJob(tmp_path / "read", tuple(inputs), cfg, tmp_path / "stats", tmp_path)
    counts = [json.loads(job(f))["items"] for f in range(len(inputs))]
    assert counts[1] == 0 and counts[3] == 1
    stream = read_all(inputs, cfg.id_field, cfg.columns)
    total = 0
    for i in itertools.count():
        chunk = list(itertools.islice(stream, batch_size))
        if not chunk:
            break
        want, want_q, n = records_to_batch(chunk, cfg, seq_start=i * batch_size)
        got, got_q, m = assemble_batch(tmp_path / "read", counts, batch_size, i)
        assert (m, got.height) == (n, want.height) and got.equals(want), i
        assert got_q == [{k: v for k, v in q.items() if k != "_seq"} for q in want_q], i
        total += n
    assert total == sum(counts) and file_offsets(counts) == [0, *itertools.accumulate(counts)][:-1]
    assert i == -(-total // batch_size), "as many batches as the runner makes"


def test_a_relative_input_is_opened_from_the_drivers_directory_and_named_as_given(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jsonl").write_text(TATOEBA.read_text(encoding="utf-8").splitlines()[0] + "\n{bad\n", encoding="utf-8")
    cfg = load_config(None, src="en", tgt=("de",), batch_size=10)
    job = ReadFileJob(tmp_path / "read", (Path("in/x.jsonl"),), cfg, tmp_path / "stats", tmp_path)
    assert json.loads(job(0))["items"] == 2
    rows, quarantined, _ = assemble_batch(tmp_path / "read", [2], 10, 0)
    assert set(rows["source_file"]) == {"in/x.jsonl"} and quarantined[0]["source_file"] == "in/x.jsonl"
    assert json.loads(job(0))["items"] == 2, "a file already read is not read again"
