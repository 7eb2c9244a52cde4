"""Malformed input never crashes a build and is never lost.

Each case is a small real file holding good records around one kind of bad input. The build must
finish, quarantine what it cannot read (``quarantine/``, with file, line and a clear error) or reject
what the select step refuses (``rejected/``, with a ``drop_reason``), keep the good records, and
satisfy ``input rows == kept + rejected + quarantined``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusalign.config import load_config
from corpusalign.read.formats import MAX_LINE_BYTES
from corpusalign.runner import BuildError, make_plan

GOOD = [
    {"concept_id": "g1", "en": "The children are playing in the garden.", "de": "Die Kinder spielen im Garten."},
    {"concept_id": "g2", "en": "My grandmother bakes bread every Sunday.", "de": "Meine Großmutter backt jeden Sonntag Brot."},
    {"concept_id": "g3", "en": "The river flows slowly through the valley.", "de": "Der Fluss fließt langsam durch das Tal."},
]
UNTRANSLATED = "The weather is very nice today and we are going for a walk in the park."
LONG = "This sentence is longer than one hundred characters, which is the limit the tests set for select.max_chars."
MAX_CHARS = 100
assert len(LONG) > MAX_CHARS > len(UNTRANSLATED)


def jl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def jsonl(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


G1, G2, G3 = (jl(g) for g in GOOD)
CSV_HEAD = b"concept_id,en,de\n"
CSV_G1, CSV_G2 = (f"{g['concept_id']},{g['en']},{g['de']}\n".encode() for g in GOOD[:2])


@dataclass
class Case:
    """A file, what must be quarantined ``(line, error regex)`` and rejected ``(concept_id, lang, line, reason)``."""

    name: str
    content: bytes
    records: int  # input records the build must count
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[str, str, int, str]] = field(default_factory=list)
    kept: set[str] = field(default_factory=lambda: {"g1", "g2"})
    raw: str | None = None  # text the quarantined row's ``raw`` must contain
    cfg: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "bad_json.jsonl",
        jsonl(G1, b'{"concept_id": "b1", "en": "unterminated', G2),
        3,
        [(2, r"^invalid JSON: ")],
        raw='{"concept_id": "b1", "en": "unterminated',
    ),
    Case("trailing_garbage.jsonl", jsonl(G1, b'{"concept_id": "b1", "en": "x"} extra', G2), 3, [(2, r"^invalid JSON: ")]),
    Case(
        "invalid_utf8.jsonl",
        jsonl(G1, b'{"concept_id": "b1", "en": "caf\xe9 au lait"}', G2),
        3,
        [(2, r"^invalid UTF-8 at byte 31$")],
        raw="caf\\xe9 au lait",
    ),
    Case(
        "empty_and_whitespace_text.jsonl",
        jsonl(
            G1,
            jl({"concept_id": "e1", "en": "", "de": "Leer"}),
            jl({"concept_id": "e2", "en": " \t\u3000\u200b ", "de": "Nur Leerzeichen"}),
            G2,
        ),
        4,
        rejected=[
            ("e1", "en", 2, "empty"),
            ("e1", "de", 2, "source_rejected"),
            ("e2", "en", 3, "empty"),
            ("e2", "de", 3, "source_rejected"),
        ],
    ),
    Case(
        "missing_source.jsonl",
        jsonl(G1, jl({"concept_id": "m1", "de": "Nur Deutsch, kein Englisch."}), G2),
        3,
        [(2, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']"))],
        raw='"m1"',
    ),
    Case(
        "number_text.jsonl",
        jsonl(G1, jl({"concept_id": "t1", "en": 42, "de": "zweiundvierzig"}), G2),
        3,
        [(2, r"^en\.text must be a string, got int$")],
    ),
    Case(
        "list_text.jsonl",
        jsonl(G1, jl({"concept_id": "t2", "en": ["a", "list"], "de": "eine Liste"}), G2),
        3,
        [(2, r"^en\.text must be a string, got list$")],
    ),
    Case(
        "number_target.jsonl",
        jsonl(G1, jl({"concept_id": "t3", "en": "A fine English sentence.", "de": 3.5}), G2),
        3,
        [(2, r"^de\.text must be a string, got float$")],
    ),
    Case(
        "bool_id.jsonl",
        jsonl(G1, jl({"concept_id": True, "en": "An id that is a boolean."}), G2),
        3,
        [(2, r"^id field 'concept_id' must be a string or integer, got bool$")],
    ),
    Case(
        "object_id.jsonl",
        jsonl(G1, jl({"concept_id": {"x": 1}, "en": "An id that is an object."}), G2),
        3,
        [(2, r"^id field 'concept_id' must be a string or integer, got dict$")],
    ),
    Case(
        "control_char_id.jsonl",
        jsonl(G1, jl({"concept_id": "a\u0001b", "en": "An id with a control character."}), G2),
        3,
        [(2, r"^id field 'concept_id': empty, longer than 256 or holds control characters$")],
    ),
    Case(
        "json_array.jsonl",
        jsonl(G1, b'["en", "The line is an array."]', b'"just a string"', G2),
        4,
        [(2, r"^expected a JSON object, got list$"), (3, r"^expected a JSON object, got str$")],
    ),
    Case(
        "duplicate_same_text.jsonl",
        jsonl(G1, G2, jl(GOOD[0] | {"de": "Die Kinder spielen im Garten!"})),
        3,
        rejected=[("g1", "en", 3, "duplicate"), ("g1", "de", 3, "duplicate")],
    ),
    Case(
        "duplicate_text_other_id.jsonl",
        jsonl(G1, G2, jl(GOOD[0] | {"concept_id": "copy"})),
        3,
        rejected=[("copy", "en", 3, "duplicate"), ("copy", "de", 3, "duplicate")],
    ),
    Case(
        "duplicate_id_other_text.jsonl",
        jsonl(G1, G2, jl({"concept_id": "g1", "en": "A completely different sentence here.", "de": "Ein ganz anderer Satz."})),
        3,
        rejected=[("g1", "en", 3, "duplicate_id"), ("g1", "de", 3, "duplicate_id")],
    ),
    Case(
        "oversized_line.jsonl",
        jsonl(G1, b'{"concept_id": "big", "en": "' + b"x" * (MAX_LINE_BYTES + 100_000) + b'"}', G2),
        3,
        [(2, rf"^line longer than {MAX_LINE_BYTES} bytes$")],
        raw='{"concept_id": "big", "en": "xxx',
    ),
    Case("blank_lines.jsonl", b"\n" + G1 + b"\n\n   \n" + G2 + b"\n", 2, kept={"g1", "g2"}),
    Case(
        "too_long.jsonl",
        jsonl(G1, jl({"concept_id": "l1", "en": LONG, "de": "Kurz."}), G2),
        3,
        rejected=[("l1", "en", 2, "too_long"), ("l1", "de", 2, "source_rejected")],
        cfg={"select__max_chars": MAX_CHARS},
    ),
    Case(
        "untranslated_copy.jsonl",
        jsonl(G1, jl({"concept_id": "w1", "en": UNTRANSLATED, "de": UNTRANSLATED}), G2),
        3,
        rejected=[("w1", "de", 2, "wrong_language"), ("w1", "en", 2, "too_few_languages")],
    ),
    # CSV
    Case(
        "wrong_columns.csv",
        CSV_HEAD + CSV_G1 + b"c2,Only two columns\nc3,a,b,c\n" + CSV_G2,
        4,
        [(3, r"^expected 3 columns, got 2$"), (4, r"^expected 3 columns, got 4$")],
        raw="c2,Only two columns",
    ),
    Case(
        "quoting_error.csv",
        CSV_HEAD + CSV_G1 + b'q1,"He said "hello" twice",Er sagte zweimal hallo\n' + CSV_G2,
        3,
        [(3, r"^CSV error: ")],
    ),
    Case(
        "unterminated_quote.csv",
        CSV_HEAD + CSV_G1 + CSV_G2 + b'q1,"never closed,Nie geschlossen\nq2,swallowed,verschluckt\n',
        3,
        [(4, r"^CSV error: unexpected end of data$")],
    ),
    Case(
        "invalid_utf8.csv",
        CSV_HEAD + CSV_G1 + b"u1,caf\xe9,Kaffee\n" + CSV_G2,
        3,
        [(3, r"^invalid UTF-8$")],
        raw="caf\\xe9",
    ),
    # TMX
    Case(
        "broken.tmx",
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4">\n<header srclang="en" datatype="plaintext"/><body>\n'
            '<tu tuid="g1"><tuv xml:lang="en-US"><seg>The children are playing in the garden.</seg></tuv>'
            '<tuv xml:lang="de-DE"><seg>Die Kinder spielen im Garten.</seg></tuv></tu>\n'
            '<tu tuid="g2"><tuv xml:lang="en-US"><seg>My grandmother bakes bread every Sunday.</seg></tuv>'
            '<tuv xml:lang="de-DE"><seg>Meine Großmutter backt jeden Sonntag Brot.</seg></tuv></tu>\n'
            '<tu tuid="x1"><tuv xml:lang="en-US"><seg>Fish & chips</seg></tuv></tu>\n'
            '<tu tuid="x2"><tuv xml:lang="en-US"><seg>After the break.</seg></tuv></tu>\n</body></tmx>\n'
        ).encode(),
        3,
        [(6, r"^invalid XML: ")],
    ),
    Case(
        "bad_units.tmx",
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4">\n<header srclang="en" datatype="plaintext"/><body>\n'
            '<tu tuid="g1"><tuv xml:lang="en-US"><seg>The children are playing in the garden.</seg></tuv>'
            '<tuv xml:lang="de-DE"><seg>Die Kinder spielen im Garten.</seg></tuv></tu>\n'
            '<tu tuid="n1"><tuv><seg>No language.</seg></tuv><tuv xml:lang="de"><seg>Keine Sprache.</seg></tuv></tu>\n'
            '<tu tuid="n2"><tuv xml:lang="en"><seg>One.</seg></tuv><tuv xml:lang="en-GB"><seg>Two.</seg></tuv></tu>\n'
            '<tu tuid="g2"><tuv xml:lang="en-US"><seg>My grandmother bakes bread every Sunday.</seg></tuv>'
            '<tuv xml:lang="de-DE"><seg>Meine Großmutter backt jeden Sonntag Brot.</seg></tuv></tu>\n</body></tmx>\n'
        ).encode(),
        4,
        [
            (5, r"^invalid TMX unit: a <tuv> without xml:lang or <seg>$"),
            (6, r"^invalid TMX unit: two segments for language 'en'$"),
        ],
        raw="No language.",
    ),
    # UTF-16 (BOM) with bytes that are no UTF-16: a lone surrogate, then an odd trailing byte
    Case(
        "bad_utf16.jsonl",
        "\ufeff".encode("utf-16-le")
        + G1.decode().encode("utf-16-le")
        + "\n".encode("utf-16-le")
        + b"\x00\xd8"
        + '{"concept_id": "s1", "en": "lone surrogate"}\n'.encode("utf-16-le")
        + G2.decode().encode("utf-16-le")
        + "\n".encode("utf-16-le")
        + b"{",
        4,
        [(2, r"^invalid UTF-16 text$"), (4, r"^invalid UTF-16 text$")],
        raw="lone surrogate",
    ),
    Case(
        "oversized_utf16.jsonl",
        "\ufeff".encode("utf-16-le")
        + (G1.decode() + "\n" + '{"en": "' + "y" * (MAX_LINE_BYTES // 2 + 10) + '"}\n' + G2.decode() + "\n").encode("utf-16-le"),
        3,
        [(2, rf"^line longer than {MAX_LINE_BYTES} bytes$")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_is_quarantined_or_rejected(case, tmp_path, run_build, read_output):
    path = tmp_path / case.name
    path.write_bytes(case.content)
    out = read_output(run_build(path, tmp_path / "out", tgt=("de",), **case.cfg))
    out.check_accounting(input_records=case.records)

    q = out.quarantine.sort("source_line")
    assert q.height == len(case.quarantined), q.to_dicts()
    for row, (line, pattern) in zip(q.iter_rows(named=True), case.quarantined, strict=True):
        assert row["source_file"] == str(path)
        assert row["source_line"] == line, row
        assert re.search(pattern, row["error"]), row["error"]
    if case.raw is not None:
        assert any(case.raw in (r or "") for r in q["raw"]), q["raw"].to_list()
    assert all(len(r or "") <= 2000 for r in q["raw"])  # a preview, never the whole oversized line

    got = sorted(out.rejected.select("concept_id", "lang", "source_line", "drop_reason").iter_rows())
    assert got == sorted(case.rejected)
    assert (out.rejected["source_file"] == str(path)).all()
    assert out.rejected["drop_detail"].null_count() == 0

    kept = out.shards.filter(out.shards["lang"] == "en")
    assert set(kept["concept_id"]) == case.kept
    good = {g["concept_id"]: g for g in GOOD}
    for cid, lang, text in out.shards.select("concept_id", "lang", "text").iter_rows():
        assert text == good[cid][lang]  # the good records come through whole, next to the bad ones
    assert (out.shards["source_file"] == str(path)).all()


def test_rejection_details_name_the_cause(tmp_path, run_build, read_output):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        jsonl(
            G1,
            jl({"concept_id": "l1", "en": LONG, "de": "Kurz."}),
            jl({"concept_id": "w1", "en": UNTRANSLATED, "de": UNTRANSLATED}),
            jl(GOOD[0] | {"concept_id": "copy"}),
            jl({"concept_id": "g1", "en": "A completely different sentence here.", "de": "Ein ganz anderer Satz."}),
            G2,
        )
    )
    out = read_output(run_build(path, tmp_path / "out", tgt=("de",), select__max_chars=MAX_CHARS))
    out.check_accounting(input_records=6)
    detail = {
        (c, lang): (r, d) for c, lang, r, d in out.rejected.select("concept_id", "lang", "drop_reason", "drop_detail").iter_rows()
    }
    assert detail[("l1", "en")] == ("too_long", f"{len(LONG)} chars > {MAX_CHARS}")
    assert detail[("l1", "de")] == ("source_rejected", "source row rejected: too_long")
    reason, why = detail[("w1", "de")]
    assert reason == "wrong_language" and re.fullmatch(r"language ID says en \(0\.9\d*\)", why), why
    assert detail[("copy", "en")] == ("duplicate", "same text as g1")
    assert detail[("g1", "en")] == ("duplicate_id", "id also used by an earlier record")
    assert out.manifest["drop_reasons"]["wrong_language"] == {"de": 1}
    assert out.manifest["drop_reasons"]["duplicate"] == {"de": 1, "en": 1}


def test_whole_file_problems_are_quarantined_with_line_zero(tmp_path, run_build, read_output):
    """Corrupt Parquet, an unknown extension given directly and a broken dataset directory."""
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(G1, G2))
    table = pa.Table.from_pylist(GOOD)
    whole = tmp_path / "whole.parquet"
    pq.write_table(table, whole)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not a parquet file at all PAR1")
    unknown = tmp_path / "corpus.xlsx"
    unknown.write_bytes(b"PK\x03\x04 not a format corpusalign reads")
    hf_dir = tmp_path / "not_a_dataset"
    hf_dir.mkdir()
    (hf_dir / "dataset_info.json").write_text("{}")  # looks like a dataset, holds none

    inputs = [good, truncated, garbage, unknown, hf_dir]
    out = read_output(run_build(inputs, tmp_path / "out", tgt=("de",)))
    out.check_accounting(input_records=2 + 4)
    errors = {f: (line, e) for f, line, e in out.quarantine.select("source_file", "source_line", "error").iter_rows()}
    assert set(errors) == {str(truncated), str(garbage), str(unknown), str(hf_dir)}
    assert {line for line, _ in errors.values()} == {0}
    assert errors[str(truncated)][1].startswith("unreadable Parquet file: ")
    assert errors[str(garbage)][1].startswith("unreadable Parquet file: ")
    assert errors[str(unknown)][1].startswith("unknown input format '.xlsx'; supported: .jsonl, .json")
    assert errors[str(hf_dir)][1].startswith("unreadable dataset directory: ")
    assert set(out.shards["concept_id"]) == {"g1", "g2"}


def test_every_record_bad_still_finishes(tmp_path, run_build, read_output):
    path = tmp_path / "all_bad.jsonl"
    path.write_bytes(jsonl(b"{", b"[1, 2]", b'{"de": "kein Englisch"}'))
    result = run_build(path, tmp_path / "out", tgt=("de",))
    out = read_output(result)
    out.check_accounting(input_records=3)
    assert out.quarantine.height == 3 and out.shards.height == 0 and out.rejected.height == 0
    assert result.manifest["shards"] == [] and result.manifest["counts"]["concepts"] == 0
    assert (tmp_path / "out" / "manifest.json").exists()


def test_make_plan_rejects_missing_input(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(G1))
    missing = tmp_path / "nowhere" / "corpus.jsonl"
    with pytest.raises(BuildError, match=r"^input not found: " + re.escape(str(missing)) + "$"):
        make_plan(load_config(tgt=("de",)), [good, missing], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the plan is valid


def test_make_plan_rejects_empty_directory_and_missing_memory(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no input here")
    with pytest.raises(BuildError, match="no input files found in"):
        make_plan(load_config(tgt=("de",)), [empty], tmp_path / "out")
    with pytest.raises(BuildError, match="no input given"):
        make_plan(load_config(tgt=("de",)), [], tmp_path / "out")
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(G1))
    memory = tmp_path / "memory.tmx"
    with pytest.raises(BuildError, match="translation memory not found: " + re.escape(str(memory))):
        make_plan(load_config(tgt=("de",), translate__memory=(str(memory),)), [good], tmp_path / "out")
