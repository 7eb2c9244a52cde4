"""Input a user gets wrong, said clearly by the command line: column mapping (``--columns`` and the
``columns`` pipeline key), a file whose every record is quarantined (exit 1, reasons with file:line),
YAML syntax errors and repeated keys (exit 2 with file:line:column, no traceback), missing files
(exit 2, "... not found: PATH") and the quarantine reasons in the build summary.

Builds run with verification off (it is irrelevant here) on a few records in ``tmp_path``; the tests
``chdir`` there so that the paths in messages are short and Rich does not wrap them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from corpusalign.cli import app
from corpusalign.config import ConfigError, ParameterFileNotFound, config_from_dict, load_yaml, parse_columns
from corpusalign.read.formats import read_path
from corpusalign.store import manifest as mf
from corpusalign.store.quarantine import fully_quarantined_files, quarantine_summary, top_quarantine_reasons

runner = CliRunner()

PAIRS = [
    ("The children are playing in the garden.", "Die Kinder spielen im Garten."),
    ("My grandmother bakes bread every Sunday.", "Meine Großmutter backt jeden Sonntag Brot."),
    ("The river flows slowly through the valley.", "Der Fluss fließt langsam durch das Tal."),
]
NO_VERIFY = "verify:\n  enabled: false\n"


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nov.yaml").write_text(NO_VERIFY, encoding="utf-8")
    return tmp_path


def write_named_csv(path: Path, rows: list[tuple[str, str]] = PAIRS) -> Path:
    lines = ["English,German", *(f"{en},{de}" for en, de in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build(*args: str, out: str = "out"):
    return runner.invoke(app, ["build", "--tgt", "de", "-o", out, "--no-report", *args])


def kept(out: str | Path) -> pl.DataFrame:
    return pl.read_parquet(Path(out) / "shards" / "*.parquet").sort("source_line", "lang")


def assert_all_de_kept(out: str | Path, n: int = len(PAIRS)) -> None:
    rows = kept(out)
    de = rows.filter(pl.col("lang") == "de")
    assert de.height == n, rows
    assert de["text"].to_list() == [de_text for _, de_text in PAIRS[:n]]
    assert rows.filter(pl.col("lang") == "en")["text"].to_list() == [en for en, _ in PAIRS[:n]]
    assert set(de["origin"]) == {"human"}
    assert mf.read_manifest(out)["accounting"]["ok"]


# ---------------------------------------------------------------------------------------- columns
def test_columns_option_maps_a_csv(work: Path) -> None:
    write_named_csv(work / "data.csv")
    result = build("-i", "data.csv", "-p", "nov.yaml", "--columns", "English=en,German=de")
    assert result.exit_code == 0, result.output
    assert_all_de_kept("out")
    assert not list((work / "out").glob("quarantine/*.parquet"))
    assert mf.read_manifest("out")["config"]["columns"] == {"English": "en", "German": "de"}


def test_columns_option_maps_a_parquet_file(work: Path) -> None:
    table = pa.table({"id": ["p1", "p2", "p3"], "English": [en for en, _ in PAIRS], "German": [de for _, de in PAIRS]})
    pq.write_table(table, work / "data.parquet")
    result = build("-i", "data.parquet", "-p", "nov.yaml", "--columns", "English=en,German=de")
    assert result.exit_code == 0, result.output
    assert_all_de_kept("out")


def test_columns_option_maps_jsonl_keys(work: Path) -> None:
    lines = [json.dumps({"English": en, "German": de}, ensure_ascii=False) for en, de in PAIRS]
    (work / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = build("-i", "data.jsonl", "-p", "nov.yaml", "--columns", "English=en,German=de")
    assert result.exit_code == 0, result.output
    assert_all_de_kept("out")


def test_columns_pipeline_key_maps_a_csv(work: Path) -> None:
    write_named_csv(work / "data.csv")
    (work / "cols.yaml").write_text(NO_VERIFY + "columns:\n  English: en\n  German: de\n", encoding="utf-8")
    result = build("-i", "data.csv", "-p", "cols.yaml")
    assert result.exit_code == 0, result.output
    assert_all_de_kept("out")


def test_mapped_column_missing_from_the_file_quarantines_it(work: Path) -> None:
    write_named_csv(work / "data.csv")
    result = build("-i", "data.csv", "-p", "nov.yaml", "--columns", "English=en,Deutsch=de")
    assert result.exit_code == 1, result.output
    text = flat(result.output)
    assert "every record of data.csv was quarantined" in text
    assert "data.csv:1 mapped column(s) 'Deutsch' (Deutsch=de) not in the file; its columns: 'English', 'German'" in text
    q = pl.read_parquet(work / "out" / "quarantine" / "*.parquet")
    assert q.height == 1 and q["source_line"].to_list() == [1]


def test_a_mapped_column_may_not_collide_with_a_language_column(work: Path) -> None:
    (work / "data.csv").write_text("English,German,de\na,b,c\n", encoding="utf-8")
    items = list(read_path(work / "data.csv", columns={"English": "en", "German": "de"}))
    assert len(items) == 1 and items[0].record is None
    assert "'de' and the mapped column 'German'" in items[0].error


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"English": "en", "German": "en"}, "both map to 'en'"),
        ({"English": "English"}, r"columns\.English: 'English' is not"),
        ({1: "en"}, "not a column name"),
        ("English=en", "expected a mapping"),
    ],
)
def test_columns_key_is_validated(columns: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"tgt": ["de"], "columns": columns})


def test_parse_columns() -> None:
    assert parse_columns(" English = en , German=de ,") == {"English": "en", "German": "de"}
    for bad in ("English", "English=", "=en", "", "English=en,English=de"):
        with pytest.raises(ConfigError):
            parse_columns(bad)


def test_bad_columns_option_exits_2(work: Path) -> None:
    write_named_csv(work / "data.csv")
    result = build("-i", "data.csv", "-p", "nov.yaml", "--columns", "English=en,German=en")
    assert result.exit_code == 2, result.output
    assert "both map to 'en'" in flat(result.output)


# ------------------------------------------------------------------- fully quarantined input files
def test_file_with_every_record_quarantined_exits_1_with_reasons(work: Path) -> None:
    write_named_csv(work / "data.csv")  # no --columns: no record has source text
    result = build("-i", "data.csv", "-p", "nov.yaml")
    assert result.exit_code == 1, result.output
    text = flat(result.output)
    assert "every record of data.csv was quarantined" in text
    for line in (2, 3, 4):
        assert f"data.csv:{line} no source text: expected one of the keys ['en', 'text.en', 'text']" in text
    assert "the record has ['English', 'German'] (--columns NAME=LANG" in text
    manifest = mf.read_manifest("out")  # the corpus is written and its accounting holds
    assert manifest["accounting"]["ok"] and manifest["accounting"]["quarantined_rows"] == 3


def test_one_lost_file_among_good_ones_still_exits_1(work: Path) -> None:
    write_named_csv(work / "named.csv")
    (work / "good.jsonl").write_text(json.dumps({"en": PAIRS[0][0], "de": PAIRS[0][1]}) + "\n", encoding="utf-8")
    result = build("-i", "good.jsonl", "-i", "named.csv", "-p", "nov.yaml", "-q")
    assert result.exit_code == 1, result.output
    text = flat(result.output)
    assert "every record of named.csv was quarantined" in text and "good.jsonl" not in text
    assert kept("out").height == 2


def test_some_records_quarantined_is_not_an_error(work: Path) -> None:
    lines = [json.dumps({"en": en, "de": de}, ensure_ascii=False) for en, de in PAIRS]
    lines.insert(1, '{"en": "unterminated')
    (work / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = build("-i", "data.jsonl", "-p", "nov.yaml", "-q")
    assert result.exit_code == 0, result.output
    assert "quarantined" not in flat(result.output)


def test_fully_quarantined_files_reads_the_built_corpus(work: Path) -> None:
    write_named_csv(work / "named.csv")
    (work / "mixed.jsonl").write_text(
        json.dumps({"en": PAIRS[0][0], "de": PAIRS[0][1]}) + "\n" + '{"de": "nur Deutsch"}\n', encoding="utf-8"
    )
    assert build("-i", "mixed.jsonl", "-i", "named.csv", "-p", "nov.yaml", "-q").exit_code == 1
    manifest = mf.read_manifest("out")
    lost = fully_quarantined_files(manifest, "out", examples=2)
    assert list(lost) == ["named.csv"]
    assert [line for line, _ in lost["named.csv"]] == [2, 3]
    assert all(error.startswith("no source text") for _, error in lost["named.csv"])
    reasons = top_quarantine_reasons(manifest, "out")
    assert [(r.source_file, r.source_line, r.count) for r in reasons] == [("named.csv", 2, 3), ("mixed.jsonl", 2, 1)]


# ------------------------------------------------------------------------------------- summary
def test_summary_lists_quarantine_reasons_with_file_and_line(work: Path) -> None:
    rows = [f'{{"en": "{en}", "de": "{de}"}}' for en, de in PAIRS]
    bad = ['{"de": "nur Deutsch"}', '{"en": "unterminated', '{"de": "auch nur Deutsch"}']
    (work / "data.jsonl").write_text("\n".join([rows[0], bad[0], bad[1], rows[1], bad[2]]) + "\n", encoding="utf-8")
    result = build("-i", "data.jsonl", "-p", "nov.yaml")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "quarantined 3 record(s)" in text and "top reasons:" in text
    assert "data.jsonl:2 no source text: expected one of the keys ['en', 'text.en', 'text']" in text
    assert "(x2)" in text
    assert "data.jsonl:3 invalid JSON: " in text
    first = text.index("data.jsonl:2 no source text")
    assert first < text.index("data.jsonl:3 invalid JSON")  # the most frequent first
    summary = quarantine_summary(mf.read_manifest("out"), "out", limit=1)
    assert len(summary) == 2 and summary[1].strip().startswith("data.jsonl:2 no source text")


# ----------------------------------------------------------------------------------------- YAML
BAD_YAML = "src: en\ntgt: [de, ja\nverify:\n  enabled: false\n"  # unclosed flow sequence
DUP_YAML = "src: en\nverify:\n  enabled: false\n  enabled: true\n"  # verify.enabled twice


def test_load_yaml_reports_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text(DUP_YAML, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dup\.yaml:4:3: invalid YAML: duplicate key 'enabled' \(first on line 3\)"):
        load_yaml(tmp_path / "dup.yaml")
    (tmp_path / "bad.yaml").write_text(BAD_YAML, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3:\d+: invalid YAML: "):
        load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "merge.yaml").write_text("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n", encoding="utf-8")
    assert load_yaml(tmp_path / "merge.yaml")["x"] == {"a": 3, "b": 2}  # a merge key's values may be overridden
    with pytest.raises(ParameterFileNotFound, match="parameter file not found: "):
        load_yaml(tmp_path / "nowhere.yaml")


@pytest.mark.parametrize(("content", "where"), [(BAD_YAML, "bad.yaml:3:"), (DUP_YAML, "bad.yaml:4:3:")])
@pytest.mark.parametrize(
    "command",
    [
        ["build", "-i", "data.csv", "-o", "out", "--pipeline", "bad.yaml"],
        ["train", "--shards", "out", "--params", "bad.yaml"],
        ["calibrate", "--dev", "data.csv", "--pipeline", "bad.yaml", "-o", "cal.yaml"],
    ],
    ids=["build", "train", "calibrate"],
)
def test_yaml_errors_exit_2_with_file_line_column(work: Path, command: list[str], content: str, where: str) -> None:
    write_named_csv(work / "data.csv")
    (work / "bad.yaml").write_text(content, encoding="utf-8")
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert where in text and "invalid YAML" in text
    assert "Traceback" not in result.output
    assert not (work / "out").exists() and not (work / "cal.yaml").exists()


def test_yaml_error_has_no_traceback_in_a_real_process(work: Path) -> None:
    (work / "dup.yaml").write_text(DUP_YAML, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "corpusalign.cli", "build", "--pipeline", "dup.yaml", "-o", "out"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "dup.yaml:4:3: invalid YAML: duplicate key 'enabled'" in flat(proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout


# -------------------------------------------------------------------------------- missing files
@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["build", "-i", "missing.jsonl", "-o", "out"], "input not found: missing.jsonl"),
        (["build", "-i", "data.csv", "--pipeline", "missing.yaml", "-o", "out"], "not found: missing.yaml"),
        (["build", "-i", "data.csv", "-p", "nov.yaml", "-m", "missing.tmx", "-o", "out"], "not found: missing.tmx"),
        (["train", "--params", "missing.yaml", "--shards", "out"], "not found: missing.yaml"),
        (["align", "--source", "missing.txt", "--target", "de=data.csv", "-o", "a.jsonl"], "not found: missing.txt"),
        (["calibrate", "--dev", "missing.jsonl", "-o", "cal.yaml"], "dev set not found: missing.jsonl"),
        (["calibrate", "--dev", "data.csv", "--pipeline", "missing.yaml", "-o", "cal.yaml"], "not found: missing.yaml"),
    ],
    ids=["build-input", "build-pipeline", "build-memory", "train-params", "align-source", "calibrate-dev", "calibrate-pipeline"],
)
def test_missing_files_exit_2_naming_the_path(work: Path, command: list[str], message: str) -> None:
    write_named_csv(work / "data.csv")
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert "Traceback" not in result.output
