"""Hostile input: every kind of bad file the tests can make ends kept, rejected or quarantined.

Each kind below is generated here, built with ``run_build`` (verification off) next to good records,
and checked three ways: ``check_accounting`` (``input rows == kept + rejected + quarantined``), the
exact quarantine error / drop reason of every bad record, and the report (``collect``), whose
headline and ``drop_reasons`` must show the same counts as the files.

Coverage, with what already lives in ``tests/test_malformed_input.py`` (not repeated here):

=================================  ==================================================================
kind                               where / how it ends
=================================  ==================================================================
malformed JSON                     malformed: ``bad_json``, ``trailing_garbage`` (quarantined, invalid
                                   JSON); here: ``deeply_nested_json`` (depth limit), ``lone_surrogate
                                   _escape``, ``huge_integer_id``
truncated file                     here: ``truncated_last_line.jsonl``, ``truncated_array.json``,
                                   ``truncated.tmx``
invalid UTF-8                      malformed: ``invalid_utf8.jsonl`` / ``.csv``
UTF-16 with BOM                    malformed: ``bad_utf16``, ``oversized_utf16`` (bad text); here: good
                                   ``utf16le_bom`` and ``utf16be_bom`` files are read whole
NUL bytes                          here: ``nul_bytes.jsonl`` (raw NUL: quarantined; ``\\u0000``:
                                   removed by normalise), ``nul_byte.csv`` (removed by normalise)
extremely long line (5 MB)         malformed: ``oversized_line`` (1.1 MB); here: ``five_mb_line.jsonl``,
                                   ``five_mb_field.csv`` (quarantined), ``five_mb_segment.tmx``
                                   (rejected ``too_long``)
empty / whitespace-only records    malformed: ``empty_and_whitespace_text``, ``blank_lines``; here:
                                   ``empty_objects`` (``{}``, null text)
wrong types                        malformed: int/list/float text, bool/object id; here:
                                   ``wrong_types_nested`` (object, bool, nested object), Parquet
                                   ``int_text_column.parquet``
missing required fields            malformed: ``missing_source``; here: ``missing_fields_sft``
                                   (prompt without response, a string where an object is needed)
duplicate ids with different text  malformed: ``duplicate_id_other_text`` (one file); here:
                                   ``duplicate_id_across_files`` (JSONL and CSV)
CSV quoting errors                 malformed: ``quoting_error``, ``unterminated_quote``; here: the
                                   swallowed rows are shown in ``raw`` (``unterminated_quote_raw.tsv``),
                                   ``unterminated_quote_header.csv``, and the known limitation
                                   ``stray_quote_closed_later.csv``
TMX broken XML                     malformed: ``broken.tmx`` (bare ``&``), ``bad_units.tmx``; here:
                                   ``truncated.tmx``, ``tmx_entities.tmx`` (no XXE)
TMX unknown language codes         here: ``tmx_unknown_languages.tmx``
mixed scripts                      here: ``mixed_scripts`` (kept)
right-to-left text                 here: ``right_to_left`` (Arabic and Hebrew, bidi marks kept)
emoji and combining characters     here: ``emoji_and_combining`` (NFC, ZWJ sequences kept)
HTML / markup                      here: ``html_markup`` (kept verbatim: corpusalign does not strip markup)
zero-width characters              here: ``zero_width`` (ZWSP, WJ, BOM removed; ZWNJ/ZWJ kept)
only numbers / only URLs           here: ``numbers_and_urls`` (kept: too short for language ID to veto)
Parquet with another schema        malformed: corrupt / truncated Parquet; here:
                                   ``other_schema.parquet`` (no source text), ``int_text_column``
unreadable directory entries       here: ``special_directory_entries`` (FIFO: quarantined, never
                                   opened; broken symlink: skipped with a warning; ``chmod 000``:
                                   quarantined, unless running as root)
JSON array file                    read_formats: a ``.json`` array of objects; here:
                                   ``json_array_mixed.json`` (non-objects quarantined)
unsupported extension              malformed: ``.xlsx`` given directly; here: ``double_extension``
                                   (``.jsonl.gz``) given directly, and unsupported files in a
                                   directory (not inputs: ignored)
=================================  ==================================================================
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusalign.read.formats import MAX_LINE_BYTES
from corpusalign.report.collect import collect

GOOD = {
    "g1": {"en": "The children are playing in the garden.", "de": "Die Kinder spielen im Garten."},
    "g2": {"en": "My grandmother bakes bread every Sunday.", "de": "Meine Großmutter backt jeden Sonntag Brot."},
}
FIVE_MB = 5 << 20


def rec(cid: str | None = None, **texts: Any) -> str:
    obj = ({"concept_id": cid} if cid is not None else {}) | texts
    return json.dumps(obj, ensure_ascii=False)


G1, G2 = (rec(c, **t) for c, t in GOOD.items())
CSV_HEAD = "concept_id,en,de\n"
CSV_G1, CSV_G2 = (f"{c},{t['en']},{t['de']}\n" for c, t in GOOD.items())


def lines(*parts: str, end: str = "\n") -> bytes:
    return ("\n".join(parts) + end).encode("utf-8")


def tmx(*units: str) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4">\n<header srclang="en" datatype="plaintext"/><body>\n'
    return (head + "".join(u + "\n" for u in units) + "</body></tmx>\n").encode("utf-8")


def tu(tuid: str, **segs: str) -> str:
    return (
        f'<tu tuid="{tuid}">'
        + "".join(f'<tuv xml:lang="{k.replace("_", "-")}"><seg>{v}</seg></tuv>' for k, v in segs.items())
        + "</tu>"
    )


TMX_G1 = tu("g1", en_US=GOOD["g1"]["en"], de_DE=GOOD["g1"]["de"])

Files = Callable[[Path], list[Path]]


def one(name: str, content: bytes) -> Files:
    def make(d: Path) -> list[Path]:
        (d / name).write_bytes(content)
        return [d / name]

    return make


@dataclass
class Case:
    """Inputs, what must be quarantined ``(file name, line, error regex)``, rejected
    ``(concept_id, lang, reason)`` and kept (``{(concept_id, lang): text or None}``; ``None``: any text)."""

    name: str
    files: Files
    records: int
    quarantined: list[tuple[str, int, str]] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    kept: dict[tuple[str, str], str | None] = field(default_factory=dict)
    raw: dict[int, str] = field(default_factory=dict)  # quarantine line -> text its ``raw`` must contain
    cfg: dict[str, Any] = field(default_factory=dict)


def good(*ids: str) -> dict[tuple[str, str], str | None]:
    return {(c, lang): GOOD[c][lang] for c in ids for lang in ("en", "de")}


def _json_array_mixed(d: Path) -> list[Path]:
    p = d / "json_array_mixed.json"
    p.write_text("[" + ",".join([G1, G2, "3", '["en", "x"]', "null"]) + "]", encoding="utf-8")
    return [p]


def _other_schema_parquet(d: Path) -> list[Path]:
    p = d / "other_schema.parquet"
    pq.write_table(pa.table({"id": [1, 2], "sentence": ["A sentence.", "Another."], "score": [0.5, 0.7]}), p)
    return [p]


def _int_text_parquet(d: Path) -> list[Path]:
    p = d / "int_text_column.parquet"
    table = pa.table({"concept_id": ["g1", "p1"], "en": pa.array([None, 7], pa.int64()), "de": ["x", "sieben"]})
    pq.write_table(table, p)
    return [p]


def _duplicate_id_across_files(d: Path) -> list[Path]:
    (d / "a.jsonl").write_bytes(lines(G1, G2))
    (d / "b.csv").write_text(CSV_HEAD + "g1,A completely different English sentence.,Ein ganz anderer Satz.\n", encoding="utf-8")
    return [d / "a.jsonl", d / "b.csv"]


def _unsupported_in_directory(d: Path) -> list[Path]:
    src = d / "inputs"
    src.mkdir()
    (src / "a.jsonl").write_bytes(lines(G1))
    (src / "B.JSONL").write_bytes(lines(G2))  # suffixes are matched case-insensitively
    (src / "notes.txt").write_text('{"en": "not an input"}\n')
    (src / "data.jsonl.gz").write_bytes(b"\x1f\x8b\x08 compressed")
    (src / "README").write_text("no suffix")
    (src / ".hidden").mkdir()
    (src / ".hidden" / "c.jsonl").write_bytes(lines(rec("h1", en="Hidden directories are not read at all.")))
    return [src]


CASES = [
    # ------------------------------------------------------------------ malformed / truncated JSON
    Case(
        "truncated_last_line",
        one("truncated_last_line.jsonl", lines(G1, G2, '{"concept_id": "t1", "en": "cut in the mid', end="")),
        3,
        [("truncated_last_line.jsonl", 3, r"^invalid JSON: unexpected end of data")],
        kept=good("g1", "g2"),
        raw={3: '"cut in the mid'},
    ),
    Case(
        "truncated_array",
        one("truncated_array.json", ("[" + G1 + "," + G2).encode()),
        1,  # the whole file is one unreadable record: its two good objects are not trusted
        [("truncated_array.json", 0, r"^invalid JSON: unexpected end of data")],
    ),
    Case(
        "deeply_nested_json",
        one("deeply_nested.jsonl", lines(G1, "[" * 5000 + "]" * 5000, '{"en": ' + "[" * 2000 + "]" * 2000 + "}", G2)),
        4,
        [
            ("deeply_nested.jsonl", 2, r"^invalid JSON: depth limit exceeded"),
            ("deeply_nested.jsonl", 3, r"^invalid JSON: depth limit exceeded"),
        ],
        kept=good("g1", "g2"),
    ),
    Case(
        "lone_surrogate_escape",
        one("lone_surrogate.jsonl", lines(G1, '{"concept_id": "s1", "en": "lone \\ud800 surrogate"}', G2)),
        3,
        [("lone_surrogate.jsonl", 2, r"^invalid JSON: no low surrogate in string")],
        kept=good("g1", "g2"),
    ),
    Case(
        "huge_integer_id",
        # integers beyond 64 bits come out of the JSON parser as floats, and a float is no id
        one("huge_integer.jsonl", lines(G1, '{"concept_id": 123456789012345678901234567890, "en": "Big integer id."}', G2)),
        3,
        [("huge_integer.jsonl", 2, r"^id field 'concept_id' must be a string or integer, got float$")],
        kept=good("g1", "g2"),
    ),
    Case(
        "json_array_mixed",
        _json_array_mixed,
        5,
        [
            ("json_array_mixed.json", 3, r"^expected a JSON object, got int$"),
            ("json_array_mixed.json", 4, r"^expected a JSON object, got list$"),
            ("json_array_mixed.json", 5, r"^expected a JSON object, got NoneType$"),
        ],
        kept=good("g1", "g2"),
    ),
    # ------------------------------------------------------------------ encodings and NUL
    Case(
        "utf16le_bom",
        one("utf16le.jsonl", ("\ufeff" + G1 + "\r\n" + G2 + "\r\n").encode("utf-16-le")),
        2,
        kept=good("g1", "g2"),
    ),
    Case(
        "utf16be_bom",
        one("utf16be.jsonl", ("\ufeff" + G1 + "\n" + G2 + "\n").encode("utf-16-be")),
        2,
        kept=good("g1", "g2"),
    ),
    Case(
        "nul_bytes",
        one(
            "nul_bytes.jsonl",
            lines(G1).replace(b"\n", b"\n\x00\x00\x00\n")
            + b'{"concept_id": "n1", "en": "raw nul\x00byte"}\n'
            + lines(
                rec("n2", en="An escaped\u0000 NUL is only a character.", de="Ein maskiertes\u0000 NUL ist ein Zeichen."), G2
            ),
        ),
        5,
        [
            ("nul_bytes.jsonl", 2, r"^invalid JSON: unexpected character"),
            ("nul_bytes.jsonl", 3, r"^invalid JSON: unexpected control character in string"),
        ],
        kept=good("g1", "g2")
        | {("n2", "en"): "An escaped NUL is only a character.", ("n2", "de"): "Ein maskiertes NUL ist ein Zeichen."},
        raw={3: "raw nul\x00byte"},  # stored as read (Parquet strings may hold NUL)
    ),
    Case(
        "nul_byte_csv",
        one(
            "nul_byte.csv",
            (CSV_HEAD + CSV_G1 + "n1,A NUL\x00 in a CSV cell is removed.,Ein NUL\x00 wird entfernt.\n" + CSV_G2).encode(),
        ),
        3,
        kept=good("g1", "g2") | {("n1", "en"): "A NUL in a CSV cell is removed.", ("n1", "de"): "Ein NUL wird entfernt."},
    ),
    # ------------------------------------------------------------------ 5 MB
    Case(
        "five_mb_line",
        one("five_mb_line.jsonl", lines(G1, '{"concept_id": "big", "en": "' + "x" * FIVE_MB + '"}', G2)),
        3,
        [("five_mb_line.jsonl", 2, rf"^line longer than {MAX_LINE_BYTES} bytes$")],
        kept=good("g1", "g2"),
        raw={2: '{"concept_id": "big", "en": "xxx'},
    ),
    Case(
        "five_mb_field_csv",
        one("five_mb_field.csv", (CSV_HEAD + CSV_G1 + "big," + "y" * FIVE_MB + ",gross\n" + CSV_G2).encode()),
        3,
        [("five_mb_field.csv", 3, r"^CSV error: field larger than field limit \(131072\)$")],
        kept=good("g1", "g2"),
    ),
    Case(
        "five_mb_segment_tmx",
        one("five_mb_segment.tmx", tmx(TMX_G1, tu("big", en="word " * (FIVE_MB // 5), de="Kurz."))),
        2,
        rejected=[("big", "en", "too_long"), ("big", "de", "source_rejected")],
        kept=good("g1"),
    ),
    # ------------------------------------------------------------------ empty, wrong types, missing fields
    Case(
        "empty_objects",
        one("empty_objects.jsonl", lines(G1, "{}", rec("z1", en=None, de="Nur Deutsch."), rec("", en=None), G2)),
        5,
        [
            ("empty_objects.jsonl", 2, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
            ("empty_objects.jsonl", 3, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
            ("empty_objects.jsonl", 4, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
        ],
        kept=good("g1", "g2"),
    ),
    Case(
        "wrong_types_nested",
        one(
            "wrong_types.jsonl",
            lines(
                G1,
                rec("w1", en={"x": 1}, de="Ein Objekt."),
                rec("w2", en=True, de="Wahr."),
                rec("w3", en="A fine English sentence here.", de={"text": 5}),
                rec("w4", text={"nested": "object"}),
                G2,
            ),
        ),
        6,
        [
            ("wrong_types.jsonl", 2, re.escape("source record lacks field(s) ['text']")),
            ("wrong_types.jsonl", 3, r"^en\.text must be a string, got bool$"),
            ("wrong_types.jsonl", 4, r"^de\.text must be a string, got int$"),
            ("wrong_types.jsonl", 5, r"^en\.text must be a string, got dict$"),
        ],
        kept=good("g1", "g2"),
    ),
    Case(
        "int_text_column_parquet",
        _int_text_parquet,
        2,
        [
            ("int_text_column.parquet", 1, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
            ("int_text_column.parquet", 2, r"^en\.text must be a string, got int$"),
        ],
    ),
    Case(
        "other_schema_parquet",
        _other_schema_parquet,
        2,
        [
            ("other_schema.parquet", 1, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
            ("other_schema.parquet", 2, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']")),
        ],
        raw={1: '"sentence":"A sentence."'},
    ),
    Case(
        "missing_fields_sft",
        one(
            "sft.jsonl",
            lines(
                json.dumps({"concept_id": "s1", "en": {"prompt": "Name a colour.", "response": "Blue is a colour."}}),
                json.dumps({"concept_id": "s2", "en": {"prompt": "Only a prompt, no response."}}),
                json.dumps({"concept_id": "s3", "prompt": "A monolingual prompt without its response."}),
                json.dumps({"concept_id": "s4", "en": "A plain string where an object is needed."}),
                json.dumps({"concept_id": "s5", "en": {"prompt": "Prompt.", "response": ["not", "text"]}}),
            ),
        ),
        5,
        [
            ("sft.jsonl", 2, re.escape("source record lacks field(s) ['response']")),
            ("sft.jsonl", 3, re.escape("source record lacks field(s) ['response']")),
            ("sft.jsonl", 4, re.escape("field 'en': expected an object with fields ['prompt', 'response']")),
            ("sft.jsonl", 5, r"^en\.response must be a string, got list$"),
        ],
        rejected=[("s1", "en", "too_few_languages"), ("s1", "de", "missing_target")],
        cfg={"fields": ("prompt", "response")},
    ),
    Case(
        "duplicate_id_across_files",
        _duplicate_id_across_files,
        3,
        rejected=[("g1", "en", "duplicate_id"), ("g1", "de", "duplicate_id")],
        kept=good("g1", "g2"),
    ),
    # ------------------------------------------------------------------ CSV quoting
    Case(
        "unterminated_quote_raw",
        # an unterminated quote runs to the end of the file: one quarantined record whose raw text
        # shows every line it swallowed (nothing is merged into a kept row)
        one(
            "unterminated.tsv",
            (
                "concept_id\ten\tde\n"
                + "\t".join(["g1", *GOOD["g1"].values()])
                + '\nq1\t"never closed\tNie geschlossen\nq2\tswallowed one\tverschluckt\nq3\tswallowed two\tauch\n'
            ).encode(),
        ),
        2,
        [("unterminated.tsv", 3, r"^CSV error: unexpected end of data$")],
        kept=good("g1"),
        raw={3: '"never closed\tNie geschlossen\nq2\tswallowed one\tverschluckt\nq3\tswallowed two'},
    ),
    Case(
        "unterminated_quote_header",
        one("bad_header.csv", ('concept_id,"en,de\n' + CSV_G1 + CSV_G2).encode()),
        1,
        [("bad_header.csv", 1, r"^unreadable CSV header: unexpected end of data$")],
    ),
    Case(
        # KNOWN LIMITATION: a stray quote that a later quote closes makes one quoted field that spans
        # lines. That is a legal multi-line CSV field (RFC 4180), indistinguishable from intent, so
        # the two physical lines become ONE record; no row is lost (accounting holds) but q2 is
        # not a record of its own. Quote CSV fields properly, or use JSON Lines.
        "stray_quote_closed_later",
        one("stray_quote.csv", (CSV_HEAD + CSV_G1 + 'q1,"An opening quote,Deutsch\nq2,closed here",Deutsch zwei\n').encode()),
        2,
        kept=good("g1") | {("q1", "en"): "An opening quote,Deutsch\nq2,closed here", ("q1", "de"): "Deutsch zwei"},
    ),
    # ------------------------------------------------------------------ TMX
    Case(
        "truncated_tmx",
        one("truncated.tmx", tmx(TMX_G1, '<tu tuid="t2"><tuv xml:lang="en"><seg>Cut off he')[: -len("\n</body></tmx>\n")]),
        2,
        [("truncated.tmx", 5, r"^invalid XML: Premature end of data")],
        kept=good("g1"),
    ),
    Case(
        "tmx_entities",
        # external and internal entities are never expanded: no file is read through a TMX (XXE)
        one(
            "entities.tmx",
            tmx(tu("x1", en="Secret: &xxe; and &lol; end of the sentence here.", de="Geheimnis: &xxe; Ende des Satzes.")).replace(
                b"<tmx version",
                b'<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "file:///etc/hostname"><!ENTITY lol "LOLLOL">]>\n<tmx version',
            ),
        ),
        1,
        kept={("x1", "en"): "Secret: and end of the sentence here.", ("x1", "de"): "Geheimnis: Ende des Satzes."},
    ),
    Case(
        "tmx_unknown_languages",
        one(
            "unknown_langs.tmx",
            tmx(
                TMX_G1,
                tu("k1", en="Klingon is spoken here.", tlh="tlhIngan Hol Dajatlh'a'", x_foo_1="foo"),
                '<tu tuid="k2"><tuv xml:lang="zz-ZZ"><seg>Only an unknown code.</seg></tuv>'
                '<tuv xml:lang="12"><seg>A number as code.</seg></tuv></tu>',
            ),
        ),
        3,
        [("unknown_langs.tmx", 6, re.escape("no source text: expected one of the keys ['en', 'text.en', 'text']"))],
        rejected=[("k1", "en", "too_few_languages"), ("k1", "de", "missing_target")],
        kept=good("g1"),
        raw={6: "Only an unknown code."},
    ),
    # ------------------------------------------------------------------ text that is hard, not bad
    Case(
        "mixed_scripts",
        one(
            "mixed.jsonl",
            lines(
                G1,
                rec(
                    "m1", en="Hello Привет 你好 مرحبا world, this is mixed.", de="Hallo Привет 你好 مرحبا Welt, das ist gemischt."
                ),
            ),
        ),
        2,
        kept=good("g1")
        | {
            ("m1", "en"): "Hello Привет 你好 مرحبا world, this is mixed.",
            ("m1", "de"): "Hallo Привет 你好 مرحبا Welt, das ist gemischt.",
        },
    ),
    Case(
        "right_to_left",
        one(
            "rtl.jsonl",
            lines(
                rec("r1", en=GOOD["g1"]["en"], ar="الأطفال يلعبون في الحديقة.", he="הילדים משחקים בגן."),
                rec("r2", en="Peace be upon you, my friend.", ar="السلام عليكم يا صديقي\u202e.", he="שלום לך, ידידי\u200f."),
            ),
        ),
        2,
        kept={
            ("r1", "en"): GOOD["g1"]["en"],
            ("r1", "ar"): "الأطفال يلعبون في الحديقة.",
            ("r1", "he"): "הילדים משחקים בגן.",
            ("r2", "en"): "Peace be upon you, my friend.",
            ("r2", "ar"): "السلام عليكم يا صديقي\u202e.",  # bidi controls are text (format characters): kept
            ("r2", "he"): "שלום לך, ידידי\u200f.",
        },
        cfg={"tgt": ("ar", "he")},
    ),
    Case(
        "emoji_and_combining",
        one(
            "emoji.jsonl",
            lines(
                G1,
                rec(
                    "e1",
                    en="The cafe\u0301 is open 👩\u200d👩\u200d👧 🇩🇪 today.",
                    de="Das Cafe\u0301 ist heute geöffnet 👩\u200d👩\u200d👧 🇩🇪.",
                ),
                rec("e2", en="👍🏽👍🏽👍🏽", de="👍🏽👍🏽👍🏽"),
            ),
        ),
        3,
        kept=good("g1")
        | {
            ("e1", "en"): "The café is open 👩\u200d👩\u200d👧 🇩🇪 today.",  # composed (NFC); ZWJ sequence intact
            ("e1", "de"): "Das Café ist heute geöffnet 👩\u200d👩\u200d👧 🇩🇪.",
            ("e2", "en"): "👍🏽👍🏽👍🏽",
            ("e2", "de"): "👍🏽👍🏽👍🏽",
        },
    ),
    Case(
        "html_markup",
        one(
            "markup.jsonl",
            lines(
                G1,
                rec("h1", en="<p>The <b>children</b> play.</p><script>alert(1)</script>", de="<p>Die <b>Kinder</b> spielen.</p>"),
            ),
        ),
        2,
        kept=good("g1")
        | {
            ("h1", "en"): "<p>The <b>children</b> play.</p><script>alert(1)</script>",
            ("h1", "de"): "<p>Die <b>Kinder</b> spielen.</p>",
        },
    ),
    Case(
        "zero_width",
        one(
            "zero_width.jsonl",
            lines(
                G1,
                rec(
                    "z1",
                    en="The chil\u200bdren are play\u2060ing in the gar\ufeffden to\u200cday.",
                    de="Die Kin\u200bder spie\u200dlen.",
                ),
                rec("z2", en="\u200b\u2060\ufeff\u200b", de="Nur unsichtbare Zeichen im Englischen."),
            ),
        ),
        3,
        rejected=[("z2", "en", "empty"), ("z2", "de", "source_rejected")],
        kept=good("g1")
        | {
            ("z1", "en"): "The children are playing in the garden to\u200cday.",
            ("z1", "de"): "Die Kinder spie\u200dlen.",
        },
    ),
    Case(
        "numbers_and_urls",
        one(
            "numbers_urls.jsonl",
            lines(
                G1,
                rec("n1", en="1234567890 0987654321 1234", de="1234567890 0987654321 1234"),
                rec("n2", en="https://example.com/a/b?c=d", de="https://example.com/a/b?c=d"),
                rec("n3", en="42", de="42"),
            ),
        ),
        4,
        kept=good("g1")
        | {
            (c, lang): t
            for c, t in (("n1", "1234567890 0987654321 1234"), ("n2", "https://example.com/a/b?c=d"), ("n3", "42"))
            for lang in ("en", "de")
        },
    ),
    # ------------------------------------------------------------------ files and directories
    Case(
        "double_extension",
        one("corpus.jsonl.gz", b"\x1f\x8b\x08 gzip bytes"),
        1,
        [
            (
                "corpus.jsonl.gz",
                0,
                r"^unknown input format '\.gz'; supported: \.jsonl, \.json, \.ndjson, \.csv, \.tsv, \.parquet, \.tmx$",
            )
        ],
    ),
    Case("unsupported_in_directory", _unsupported_in_directory, 2, kept=good("g1", "g2")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_kept_rejected_or_quarantined(case: Case, tmp_path: Path, run_build, read_output) -> None:
    src = tmp_path / "in"
    src.mkdir()
    inputs = case.files(src)
    cfg = {"tgt": ("de",), **case.cfg}
    out = read_output(run_build(inputs, tmp_path / "out", **cfg))
    _check(case, out, tmp_path / "out")


def _check(case: Case, out: Any, root: Path) -> None:
    acct = out.check_accounting(input_records=case.records)

    q = out.quarantine.sort("source_file", "source_line")
    got_q = [(Path(f).name, line, err) for f, line, err in q.select("source_file", "source_line", "error").iter_rows()]
    assert len(got_q) == len(case.quarantined), got_q
    for (name, line, err), (want_name, want_line, pattern) in zip(got_q, sorted(case.quarantined), strict=True):
        assert (name, line) == (want_name, want_line), got_q
        assert re.search(pattern, err), err
    raws = dict(zip(q["source_line"].to_list(), q["raw"].to_list(), strict=True))
    for line, text in case.raw.items():
        assert text in (raws[line] or ""), raws[line]
    assert all(len(r or "") <= 2000 for r in q["raw"])  # previews, never a 5 MB line

    got_r = sorted(out.rejected.select("concept_id", "lang", "drop_reason").iter_rows())
    assert got_r == sorted(case.rejected)
    assert out.rejected["drop_detail"].null_count() == 0

    kept = {(c, lang): t for c, lang, t in out.shards.select("concept_id", "lang", pl.coalesce("text", "prompt")).iter_rows()}
    assert set(kept) == set(case.kept), sorted(kept)
    for key, text in case.kept.items():
        if text is not None:
            assert kept[key] == text, (key, kept[key])

    # the report shows the same numbers as the files
    report = collect(root)
    h = report["headline"]
    absent = out.rejected.filter(pl.col("drop_reason") == "missing_target").height  # never in the input: counted apart
    assert (h["kept_rows"], h["rejected_rows"], h["not_in_input_rows"], h["quarantined_rows"]) == (
        out.shards.height,
        out.rejected.height - absent,
        absent,
        q.height,
    )
    assert h["accounting_ok"] is True and h["input_records"] == acct["input_records"]
    want_reasons = dict(out.rejected.group_by("drop_reason").len().iter_rows())
    if q.height:
        want_reasons["quarantined"] = q.height
    assert {r: v["rows"] for r, v in report["drop_reasons"].items()} == want_reasons
    shown = report["examples"].get("quarantined", [])
    assert len(shown) == min(q.height, 3) and all(e["error"] in set(q["error"]) for e in shown)


def test_special_directory_entries(tmp_path: Path, run_build, read_output, caplog: pytest.LogCaptureFixture) -> None:
    """A FIFO is quarantined without being opened (opening it would block the build forever); a broken
    symbolic link is quarantined as one."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_good.jsonl").write_bytes(lines(G1, G2))
    os.mkfifo(src / "b_pipe.jsonl")
    (src / "c_broken.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    out = read_output(run_build(src, tmp_path / "out", tgt=("de",)))
    expected = Case(
        "special_directory_entries",
        one("", b""),
        4,  # two good records, the FIFO and the broken link (one quarantined row each)
        [
            ("b_pipe.jsonl", 0, r"^not a regular file \(FIFO\); inputs must be files or directories$"),
            ("c_broken.jsonl", 0, r"^a symbolic link to a file that does not exist$"),
        ],
        kept=good("g1", "g2"),
    )
    _check(expected, out, tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root from reading the file")
def test_unreadable_file_in_directory(tmp_path: Path, run_build, read_output) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_good.jsonl").write_bytes(lines(G1, G2))
    locked = src / "b_locked.jsonl"
    locked.write_bytes(lines(rec("l1", en="A file nobody may read, says its mode.")))
    locked.chmod(0)
    try:
        out = read_output(run_build(src, tmp_path / "out", tgt=("de",)))
    finally:
        locked.chmod(0o600)
    expected = Case(
        "unreadable_file",
        one("", b""),
        3,
        [("b_locked.jsonl", 0, r"^input file is not readable \(permission denied\)$")],
        kept=good("g1", "g2"),
    )
    _check(expected, out, tmp_path / "out")
