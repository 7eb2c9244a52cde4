"""The command line, through typer's CliRunner, and the commands the README names."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import corpusalign
from corpusalign.cli import app, sample_dir
from corpusalign.steps.normalise import NormaliseStep
from corpusalign.store import manifest as mf

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def commands() -> dict[str, Any]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "corpus"
    result = runner.invoke(app, ["build", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "No --input given" in text and "bundled sample" in text
    assert "accounting holds" in text
    assert "Next: corpusalign validate" in text
    assert f"report: {out / 'report.html'}" in text and (out / "report.json").exists()
    return out


def test_build_sample_then_validate_and_inspect(sample_corpus: Path) -> None:
    m = mf.read_manifest(sample_corpus)
    assert m["languages"] == ["en", "de", "ja", "sw"]
    assert {Path(p).name for p in m["inputs"]} == {p.name for p in sample_dir().glob("*.jsonl")}
    assert m["counts"]["concepts"] > 1000 and m["accounting"]["ok"]

    result = runner.invoke(app, ["validate", str(sample_corpus)])
    assert result.exit_code == 0, result.output
    assert "all hold" in flat(result.output)

    result = runner.invoke(app, ["inspect", str(sample_corpus), "--samples", "1"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for lang in ("en (source)", "de", "ja", "sw"):
        assert lang in text
    assert "concept " in text, "a sample concept is shown side by side"
    assert f"{m['counts']['concepts']:,}" in text


def test_dry_run_prints_plan_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    result = runner.invoke(app, ["build", "--dry-run", "--tgt", "de,ja", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "build plan" in text
    assert "targets: de, ja" in text
    for step in ("translate", "normalise", "langid", "dedup_signature", "select", "stage 4"):
        assert step in text
    assert "udhr_en_de_ja_sw.jsonl" in text
    assert not out.exists(), "--dry-run must not create the output"
    assert list(tmp_path.iterdir()) == []


def test_validate_damaged_corpus_exits_1(sample_corpus: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(sample_corpus, damaged)
    shard = damaged / mf.read_manifest(damaged)["shards"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = runner.invoke(app, ["validate", str(damaged)])
    assert result.exit_code == 1
    text = flat(result.output)
    assert "sha256" in text and "problem(s)" in text


def test_validate_or_inspect_a_directory_without_corpus(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(tmp_path)]).exit_code == 1
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in flat(result.output)


@pytest.mark.parametrize(
    ("tgt", "message"),
    [("de,EN", "source language"), ("en", "source language"), ("de,de", "repeated"), ("x1", "not a known language tag")],
)
def test_bad_tgt_exits_2_with_message(tgt: str, message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--tgt", tgt, "-o", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "configuration error" in text and message in text
    assert not (tmp_path / "c").exists()


def test_bad_input_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "-i", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "input not found" in flat(result.output)


def test_existing_output_needs_overwrite(sample_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    shutil.copytree(sample_corpus, out)
    result = runner.invoke(app, ["build", "--tgt", "de", "-o", str(out), "-q"])
    assert result.exit_code == 1
    assert "--overwrite" in flat(result.output)
    result = runner.invoke(app, ["build", "--tgt", "de", "-o", str(out), "-q", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert mf.read_manifest(out)["languages"] == ["en", "de"]


def test_interrupted_build_tells_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = sample_dir() / "udhr_en_de_ja_sw.jsonl"
    out = tmp_path / "corpus"
    args = ["build", "-i", str(src), "-o", str(out), "--batch-size", "10", "-q"]

    def interrupted(self: NormaliseStep, batch: object, stats: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(NormaliseStep, "process", interrupted)
        result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "resume" in flat(result.output)
    assert not (out / mf.MANIFEST).exists()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0


def test_every_command_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    names = commands()
    assert {"build", "report", "card", "inspect", "validate"} <= set(names)
    for name in names:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage" in sub.output and name in sub.output
    assert runner.invoke(app, []).exit_code in (0, 2)  # no arguments: help


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and corpusalign.__version__ in result.output


# -------------------------------------------------------------------------------------------- README
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_CALL = re.compile(r"(?:^|(?<=[\s;&|(]))corpusalign(?=[ \t])")


def readme_invocations(markdown: str) -> list[tuple[str, list[str]]]:
    """``(subcommand, options)`` for every ``corpusalign SUBCOMMAND ...`` in the code of ``markdown``:
    fenced code blocks, and inline code that starts with ``corpusalign``."""
    code = [m.group(2) for m in _FENCE.finditer(markdown)]
    prose = _FENCE.sub("", markdown)
    code += [c for c in _INLINE.findall(prose) if c.startswith("corpusalign ")]
    calls = []
    for block in code:
        for line in block.splitlines():
            for m in _CALL.finditer(line):
                before = line[: m.start()].split()
                if before and before[-1] in ("install", "add", "uninstall"):
                    continue  # "pip install corpusalign ...": a package, not a command
                rest = re.split(r"\s(?:#|&&|\|\|?|;)", line[m.end() :])[0]
                words = rest.split()
                if not words or words[0].startswith("-"):
                    continue  # "corpusalign --help"
                opts = [w.split("=")[0] for w in words[1:] if w.startswith("-") and w != "-"]
                calls.append((words[0], opts))
    return calls


def _problems(calls: list[tuple[str, list[str]]]) -> list[str]:
    cmds = commands()
    group = typer.main.get_command(app)
    global_opts = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
    problems = []
    for name, opts in calls:
        if name not in cmds:
            problems.append(f"corpusalign {name}: no such command (commands: {sorted(cmds)})")
            continue
        known = {o for p in cmds[name].params for o in (*p.opts, *p.secondary_opts)} | {"--help"} | global_opts
        problems += [f"corpusalign {name} {o}: no such option" for o in opts if o not in known]
    return problems


def test_readme_parser_finds_commands() -> None:
    text = """
Intro `corpusalign validate DIR` and `pip install 'corpusalign[hf]'`.

```bash
pip install corpusalign && corpusalign build --src en -o out/   # comment --not-an-option
corpusalign --help
corpusalign frobnicate --fast
corpusalign/read/   not a command
corpusalign build --tgt=de --no-such-flag
```
"""
    calls = readme_invocations(text)
    assert calls == [
        ("build", ["--src", "-o"]),
        ("frobnicate", ["--fast"]),
        ("build", ["--tgt", "--no-such-flag"]),
        ("validate", []),
    ]
    assert _problems(calls) == [
        f"corpusalign frobnicate: no such command (commands: {sorted(commands())})",
        "corpusalign build --no-such-flag: no such option",
    ]


def test_readme_commands_exist() -> None:
    if not README.exists():
        pytest.skip("no README.md")
    calls = readme_invocations(README.read_text(encoding="utf-8"))
    assert _problems(calls) == []
