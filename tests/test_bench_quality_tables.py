"""bench/quality_tables.py: the docs' quality tables, printed from per-seed benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import load_bench_script

LANGS = ("de", "ja", "sw")
DOMAINS = ("short", "sentence", "paragraph")


@pytest.fixture(scope="module")
def tables():
    return load_bench_script("quality_tables.py")


def _method(f1: float, good_kept: float, extra_kept: float) -> dict:
    block = {"f1": f1, "n_good": 100}
    kinds = {
        k: {"n": 50, "kept": (good_kept if k == "good" else extra_kept if k == "extra_content" else 0.01)}
        for k in ("good", "misaligned", "untranslated", "wrong_language", "truncated", "number_changed", "extra_content")
    }
    for k in kinds.values():
        k["per_language"] = {lang: {"n": 10, "kept": k["kept"]} for lang in LANGS}
        k["per_domain"] = {d: {"n": 10, "kept": k["kept"]} for d in DOMAINS}
    return {
        "overall": block,
        "per_language": {lang: block for lang in LANGS},
        "per_domain": {d: block for d in DOMAINS},
        "per_domain_language": {f"{d}/{lang}": {"good_kept": good_kept, "n_good": 100} for d in DOMAINS for lang in LANGS},
        "kept_share": kinds,
    }


def _write(tmp_path: Path) -> Path:
    summary = {"command": "python bench/bench_quality.py", "methods": {"corpusalign": []}}
    for seed, (f1, good, extra) in enumerate([(0.96, 0.97, 0.12), (0.94, 0.93, 0.08)]):
        run = {
            "seed": seed,
            "methods": {
                "corpusalign": _method(f1, good, extra),
                "previous gates": _method(0.9, 0.89, 0.13),
                "shipped gates": _method(0.95, 0.97, 0.1),
            },
        }
        (tmp_path / f"q-seed{seed}.json").write_text(json.dumps(run))
        cells = {f"{d}/{lang}": good for d in DOMAINS for lang in LANGS}
        summary["methods"]["corpusalign"].append(
            {
                "seed": seed,
                "f1": f1,
                "f1_short": f1,
                "f1_sw": f1 - 0.1,
                "worst_cell": ["short/sw", good],
                "worst_kind": ["extra_content", extra],
                "cells": cells,
                "targets_met": 5,
            }
        )
    path = tmp_path / "q.json"
    path.write_text(json.dumps(summary))
    return path


def test_tables_are_means_and_ranges_over_the_seeds(tables, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tables.main([str(_write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "| **corpusalign** | 0.950 (0.940-0.960) |" in out
    assert "| short/sw | 95.0% | **93.0**-97.0% | 89.0% | 100-100 |" in out  # a seed below 95% is bold
    assert "| `extra_content` | **10.0% (8.0-12.0)** |" in out  # a kind over 5% on average is bold
    assert "shipped gates" not in out  # left out by default: it saw the held-out concepts
    assert "cells below 95% good kept: 9 of 18" in out
    assert "| 1 | 0.940 | 0.940 | 0.840 | short/sw 93.0% | `extra_content` 8.0% | 5/8 |" in out


def test_faulty_references_are_named_under_the_tables(tables, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path)
    summary = json.loads(path.read_text())
    summary["reference_faults"] = [{"concept_id": "udhr.art21.1", "lang": "sw", "why": "runs on into 21.2"}]
    path.write_text(json.dumps(summary))
    assert tables.main([str(path)]) == 0
    assert "left out as a faulty reference: udhr.art21.1 (sw): runs on into 21.2" in capsys.readouterr().out


def test_the_benchmark_leaves_faulty_references_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench_script("bench_quality.py")
    rows = [
        {"concept_id": "udhr.art21.1", "en": "Everyone has the right of equal access.", "de": "Jeder hat das Recht.", "sw": "x"},
        {"concept_id": "udhr.art21.2", "en": "The will of the people.", "de": "Der Wille des Volkes.", "sw": "Matakwa ya watu."},
    ]
    (tmp_path / "udhr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(bench, "DATA", {"udhr": ("udhr.jsonl", None)})
    monkeypatch.setattr(bench, "SHARED", tmp_path)
    assert ("udhr.art21.1", "sw") in bench.REFERENCE_FAULTS
    concepts = bench.load_concepts(None)
    assert concepts["concept_id"].to_list() == ["udhr.art21.1", "udhr.art21.2"]
    assert concepts["sw"].to_list() == [None, "Matakwa ya watu."]  # only the faulty reference goes
    assert concepts["de"].to_list() == ["Jeder hat das Recht.", "Der Wille des Volkes."]
    pairs = bench.good_pairs(concepts)
    assert pairs.filter(pl.col("lang") == "sw")["concept_id"].to_list() == ["udhr.art21.2"]
