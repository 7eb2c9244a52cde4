"""The command line as a newcomer meets it: defaults shown in help, global flags after the command too."""

from __future__ import annotations

import re

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from corpusalign.cli import app

runner = CliRunner()


def _flat(text: str) -> str:
    """Help text without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _declared_defaults() -> list[tuple[str, str]]:
    """(command, "[default: ...]") for every option whose help text states its default by hand."""
    group = get_command(app)
    found = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            for text in re.findall(r"\\?\[default: [^\]]+\]", getattr(param, "help", None) or ""):
                found.append((name, text.lstrip("\\")))
    return found


def test_some_options_state_their_default_by_hand() -> None:
    commands = {name for name, _ in _declared_defaults()}
    assert {"build", "train", "calibrate"} <= commands


@pytest.mark.parametrize(("command", "default"), _declared_defaults())
def test_every_stated_default_is_shown_in_help(command: str, default: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert " ".join(default.split()) in _flat(result.output), f"{command} --help lost {default}"


def test_build_help_shows_the_language_and_translator_defaults() -> None:
    text = _flat(runner.invoke(app, ["build", "--help"], env={"COLUMNS": "250"}).output)
    for default in ("[default: en]", "[default: de,ja,sw]", "[default: tm]"):
        assert default in text


@pytest.mark.parametrize("args", [["-v", "validate"], ["validate", "-v"], ["validate", "--verbose"], ["-q", "validate"]])
def test_global_flags_before_or_after_the_command(args: list[str], tmp_path) -> None:
    missing = tmp_path / "no-corpus"
    result = runner.invoke(app, [*args, str(missing)])
    assert "No such option" not in result.output
    assert result.exit_code in (1, 2)  # validate's own answer about a missing corpus, not a usage error on -v


def test_a_command_keeps_its_own_quiet_flag() -> None:
    from corpusalign.cli import _Group

    group = get_command(app)
    assert isinstance(group, _Group)
    ctx = typer.Context(group)
    # -q after build stays build's own option (it is not moved in front of the command)
    assert group.parse_args(ctx, ["build", "-q", "--dry-run"]) == ["-q", "--dry-run"] and not ctx.params["quiet"]
    ctx = typer.Context(group)
    # -v after validate (which has no -v of its own) is the program's
    assert group.parse_args(ctx, ["validate", "x", "-v"]) == ["x"] and ctx.params["verbose"]
    ctx = typer.Context(group)
    # nothing after -- moves
    assert group.parse_args(ctx, ["validate", "--", "-v"]) == ["--", "-v"] and not ctx.params["verbose"]


def test_build_summary_keeps_rows_not_in_the_input_apart_and_names_the_verification(tmp_path, monkeypatch) -> None:
    """`corpusalign build` on records of which one has no German: that slot is "not in the input",
    not a rejected row; the summary says verification was off (with it on, it names the engine)."""
    import json

    monkeypatch.chdir(tmp_path)
    records = [
        {"id": "a", "en": "The children are playing in the garden.", "de": "Die Kinder spielen im Garten."},
        {"id": "b", "en": "My grandmother bakes bread every Sunday.", "de": "Meine Großmutter backt jeden Sonntag Brot."},
        {"id": "c", "en": "The river flows slowly through the valley."},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "nov.yaml").write_text("verify:\n  enabled: false\n", encoding="utf-8")
    result = runner.invoke(
        app, ["build", "-i", "in.jsonl", "--tgt", "de", "-p", "nov.yaml", "-o", "out", "--no-report"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    # c has no German: that slot was never in the input; its English row is rejected (too_few_languages)
    assert "= kept 4 + rejected 1 + not in the input 1 + quarantined 0" in text
    assert "verification off" in text
