"""Every input format builds end to end from real files, with the shard contents a user would check.

Each test writes its input to ``tmp_path`` in one format, runs a whole build and reads back the
shards, rejected and quarantine files: texts, languages, concept ids, provenance (``origin``,
``translator``, ``model``), source file and line, and the accounting invariant.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

LANGS = ("en", "de", "ja")
TMX_LANG = {"en": "en-US", "de": "de-DE", "ja": "ja-JP", "sw": "sw-KE"}


# ------------------------------------------------------------------------------------------ writers
def write_jsonl(path: Path, rows: list[dict[str, Any]], *, encoding: str = "utf-8", prefix: bytes = b"", eol: str = "\n") -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + eol for r in rows)
    path.write_bytes(prefix + text.encode(encoding))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str], delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def tmx_document(units: list[str]) -> str:
    """A TMX 1.4 document: header on lines 1-3, then one ``<tu>`` per line from line 4."""
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<tmx version="1.4">\n'
        '<header creationtool="tests" creationtoolversion="1" segtype="sentence" o-tmf="none" adminlang="en-US"'
        ' srclang="en-US" datatype="plaintext"/><body>\n'
    )
    return head + "".join(u + "\n" for u in units) + "</body>\n</tmx>\n"


def tmx_unit(row: dict[str, Any], langs: tuple[str, ...], tuid: bool = True) -> str:
    tuvs = "".join(
        f'<tuv xml:lang="{TMX_LANG[lang]}"><seg>{escape(row[lang])}</seg></tuv>' for lang in langs if row.get(lang) is not None
    )
    attr = f" tuid={quoteattr(row['concept_id'])}" if tuid else ""
    return f"<tu{attr}>{tuvs}</tu>"


def write_tmx(path: Path, rows: list[dict[str, Any]], langs: tuple[str, ...] = LANGS) -> Path:
    path.write_text(tmx_document([tmx_unit(r, langs) for r in rows]), encoding="utf-8")
    return path


def only(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{k: r[k] for k in keys} for r in rows]


# ------------------------------------------------------------------------------------------ checks
def as_read(df: pl.DataFrame, field: str = "text") -> pl.Series:
    """The text as the input had it: ``original.<field>`` where normalisation changed it, else the field."""
    return df.select(pl.coalesce(pl.col("original").struct.field(field), pl.col(field)))[:, 0]


def assert_parallel_kept(out: Any, rows: list[dict[str, Any]], langs: tuple[str, ...], source_file: str, first_line: int) -> None:
    """Every record kept complete: one row per language, the input text, its id, file and line."""
    expected = {(r["concept_id"], lang, r[lang], source_file, first_line + i) for i, r in enumerate(rows) for lang in langs}
    shards = out.shards.with_columns(as_read(out.shards).alias("_as_read"))
    got = set(shards.select("concept_id", "lang", "_as_read", "source_file", "source_line").iter_rows())
    assert got == expected
    assert out.rejected.height == 0, out.rejected
    assert out.quarantine.height == 0, out.quarantine
    # provenance: the source row is the source, the other languages are imported human translations
    src = shards.filter(pl.col("lang") == langs[0])
    assert src["origin"].unique().to_list() == ["source"]
    assert src["translator"].null_count() == src.height
    tgt = shards.filter(pl.col("lang") != langs[0])
    assert tgt["origin"].unique().to_list() == ["human"]
    assert tgt["translator"].unique().to_list() == ["tm"]
    assert tgt["model"].null_count() == tgt.height  # nothing came from a memory file
    counts = out.manifest["counts"]
    assert counts["concepts"] == counts["complete_concepts"] == len(rows)
    assert counts["rows_per_lang"] == dict.fromkeys(sorted(langs), len(rows))
    assert counts["provenance_per_lang"][langs[0]] == {"source:-": len(rows)}
    for lang in langs[1:]:
        assert counts["provenance_per_lang"][lang] == {"human:tm": len(rows)}
    out.check_accounting(input_records=len(rows))


def derived_id(src: str, **fields: str) -> str:
    """The documented concept-id recipe for records without an id (texts already normalised)."""
    key = "\x1f".join(["corpusalign-concept-v1", src, *(f"{f}={v}" for f, v in fields.items())])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


# ------------------------------------------------------------------------------------------ real data
def test_jsonl_real_tatoeba_sample(tatoeba_rows, tmp_path, run_build, read_output):
    """200 real Tatoeba records, including keys for languages outside the build (fr, es)."""
    path = write_jsonl(tmp_path / "tatoeba.jsonl", tatoeba_rows)
    assert any("fr" in r for r in tatoeba_rows)  # the sample carries extra languages
    out = read_output(run_build(path, tmp_path / "out", tgt=("de", "ja")))
    assert_parallel_kept(out, only(tatoeba_rows, ("concept_id", *LANGS)), LANGS, str(path), 1)
    assert set(out.shards["lang"].unique()) == set(LANGS)  # fr / es ignored, not stored
    assert out.manifest["inputs"] == [str(path)]
    # normalisation is visible: a changed text keeps its original, an unchanged one has none
    changed = out.shards.filter(pl.col("original").is_not_null())
    assert changed.height >= 1
    for row in changed.iter_rows(named=True):
        assert row["text"] != row["original"]["text"]
        assert row["text"] == " ".join(row["original"]["text"].split())


def test_parquet_real_udhr_multiline_blocks(udhr_rows, tmp_path, run_build, read_output):
    """UDHR blocks in four languages; multi-line paragraphs keep their line breaks."""
    langs = ("en", "de", "ja", "sw")
    path = tmp_path / "udhr.parquet"
    pq.write_table(pa.Table.from_pylist(only(udhr_rows, ("concept_id", *langs))), path)
    out = read_output(run_build(path, tmp_path / "out", tgt=("de", "ja", "sw")))
    assert_parallel_kept(out, udhr_rows, langs, str(path), 1)
    preamble = out.shards.filter((pl.col("concept_id") == "udhr.preamble") & (pl.col("lang") == "en"))
    assert preamble.height == 1
    assert "\n" in preamble["text"][0]
    assert preamble["text"][0].startswith("Whereas recognition of the inherent dignity")


# ------------------------------------------------------------------------------------------ one format each
FORMATS = [
    "jsonl",
    "jsonl-crlf",
    "ndjson",
    "json-utf8-bom",
    "jsonl-utf16le-bom",
    "jsonl-utf16be-bom",
    "csv",
    "tsv",
    "parquet",
    "tmx",
    "hf",
]


def write_format(fmt: str, directory: Path, rows: list[dict[str, Any]]) -> tuple[Path, str, int]:
    """Write ``rows`` in format ``fmt``; return (input path, expected source_file, line of the first record)."""
    cols = ["concept_id", *LANGS]
    if fmt == "jsonl":
        p = write_jsonl(directory / "in.jsonl", rows)
    elif fmt == "jsonl-crlf":
        p = write_jsonl(directory / "in.jsonl", rows, eol="\r\n")
    elif fmt == "ndjson":
        p = write_jsonl(directory / "in.ndjson", rows)
    elif fmt == "json-utf8-bom":
        p = write_jsonl(directory / "in.json", rows, prefix=b"\xef\xbb\xbf")
    elif fmt == "jsonl-utf16le-bom":
        p = write_jsonl(directory / "in.jsonl", rows, encoding="utf-16-le", prefix=b"\xff\xfe")
    elif fmt == "jsonl-utf16be-bom":
        p = write_jsonl(directory / "in.jsonl", rows, encoding="utf-16-be", prefix=b"\xfe\xff")
    elif fmt == "csv":
        return write_csv(directory / "in.csv", rows, cols), str(directory / "in.csv"), 2
    elif fmt == "tsv":
        return write_csv(directory / "in.tsv", rows, cols, delimiter="\t"), str(directory / "in.tsv"), 2
    elif fmt == "parquet":
        p = directory / "in.parquet"
        pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=7)  # several row groups
    elif fmt == "tmx":
        return write_tmx(directory / "in.tmx", rows), str(directory / "in.tmx"), 4
    elif fmt == "hf":
        datasets = pytest.importorskip("datasets")
        p = directory / "hf_dataset"
        datasets.Dataset.from_list(rows).save_to_disk(str(p))
        assert (p / "dataset_info.json").exists()
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return p, str(p), 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_builds_the_same_corpus(fmt, tatoeba_rows, tmp_path, run_build, read_output):
    rows = only(tatoeba_rows[:30], ("concept_id", *LANGS))
    assert any("," in r["en"] for r in rows) and any("'" in r["en"] for r in rows)  # CSV quoting is exercised
    path, source_file, first_line = write_format(fmt, tmp_path, rows)
    out = read_output(run_build(path, tmp_path / "out", tgt=("de", "ja")))
    assert_parallel_kept(out, rows, LANGS, source_file, first_line)
    # the bytes of the source texts made it through unchanged (no BOM, no \r, no mojibake)
    first = out.shards.filter(pl.col("concept_id") == rows[0]["concept_id"]).sort("lang")
    assert dict(first.select("lang", "text").iter_rows()) == {lang: rows[0][lang] for lang in LANGS}
    assert not out.shards["text"].str.contains("\ufeff|\r").any()


def test_hf_dataset_dict_splits_are_separate_sources(tatoeba_rows, tmp_path, run_build, read_output):
    datasets = pytest.importorskip("datasets")
    rows = only(tatoeba_rows[:12], ("concept_id", *LANGS))
    path = tmp_path / "hf_dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:8]), "test": datasets.Dataset.from_list(rows[8:])}
    ).save_to_disk(str(path))
    out = read_output(run_build(path, tmp_path / "out", tgt=("de", "ja")))
    out.check_accounting(input_records=12)
    files = dict(out.shards.filter(pl.col("lang") == "en").select("concept_id", "source_file").iter_rows())
    assert {cid: files[cid] for cid in (rows[0]["concept_id"], rows[8]["concept_id"])} == {
        rows[0]["concept_id"]: f"{path}[train]",
        rows[8]["concept_id"]: f"{path}[test]",
    }
    lines = dict(out.shards.filter(pl.col("lang") == "en").select("concept_id", "source_line").iter_rows())
    assert lines[rows[9]["concept_id"]] == 2  # lines count within each split


def test_tmx_units_language_variants_and_inline_codes(tmp_path, run_build, read_output):
    """``xml:lang`` variants map to the base language; native codes (bpt/ept/ph) are not text."""
    units = [
        '<tu tuid="tm.1"><tuv xml:lang="en-GB"><seg>The train leaves at nine.</seg></tuv>'
        '<tuv xml:lang="DE_at"><seg>Der Zug fährt um neun ab.</seg></tuv></tu>',
        '<tu tuid="tm.2"><tuv xml:lang="en-US"><seg>Press <bpt i="1">&lt;b&gt;</bpt>Save<ept i="1">&lt;/b&gt;</ept>'
        ' to keep<ph x="2">&lt;br/&gt;</ph> your <hi type="em">changes</hi>.</seg></tuv>'
        '<tuv xml:lang="de-DE"><seg>Drücken Sie <bpt i="1">&lt;b&gt;</bpt>Speichern<ept i="1">&lt;/b&gt;</ept>,'
        " um Ihre Änderungen zu behalten.</seg></tuv></tu>",
        # no tuid: the concept id is derived from the source text
        '<tu><tuv xml:lang="en"><seg>Good night &amp; sleep well.</seg></tuv>'
        '<tuv xml:lang="de"><seg>Gute Nacht &amp; schlaf gut.</seg></tuv></tu>',
    ]
    path = tmp_path / "memory.tmx"
    path.write_text(tmx_document(units), encoding="utf-8")
    out = read_output(run_build(path, tmp_path / "out", tgt=("de",)))
    out.check_accounting(input_records=3)
    texts = {(cid, lang): t for cid, lang, t in out.shards.select("concept_id", "lang", "text").iter_rows()}
    night_id = derived_id("en", text="Good night & sleep well.")
    assert texts == {
        ("tm.1", "en"): "The train leaves at nine.",
        ("tm.1", "de"): "Der Zug fährt um neun ab.",
        ("tm.2", "en"): "Press Save to keep your changes.",
        ("tm.2", "de"): "Drücken Sie Speichern, um Ihre Änderungen zu behalten.",
        (night_id, "en"): "Good night & sleep well.",
        (night_id, "de"): "Gute Nacht & schlaf gut.",
    }
    lines = dict(out.shards.filter(pl.col("lang") == "en").select("concept_id", "source_line").iter_rows())
    assert lines == {"tm.1": 4, "tm.2": 5, night_id: 6}


def test_directory_input_reads_known_files_in_sorted_order(tatoeba_rows, tmp_path, run_build, read_output):
    rows = only(tatoeba_rows[:6], ("concept_id", *LANGS))
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / ".hidden").mkdir()
    write_jsonl(data / "b.jsonl", rows[:3])
    write_csv(data / "nested" / "c.csv", rows[3:], ["concept_id", *LANGS])
    write_jsonl(data / ".hidden" / "skipped.jsonl", rows)  # hidden directories are not inputs
    (data / "README.txt").write_text("not an input")  # nor are unknown formats inside a directory
    out = read_output(run_build(data, tmp_path / "out", tgt=("de", "ja")))
    assert out.manifest["inputs"] == [str(data / "b.jsonl"), str(data / "nested" / "c.csv")]
    out.check_accounting(input_records=6)
    assert out.quarantine.height == 0
    assert sorted(out.shards.filter(pl.col("lang") == "en")["concept_id"]) == sorted(r["concept_id"] for r in rows)


# ------------------------------------------------------------------------------------------ monolingual + memory
MEMORY_FORMATS = ["tmx", "tsv", "jsonl"]


@pytest.mark.parametrize("mem_fmt", MEMORY_FORMATS)
def test_monolingual_input_filled_from_translation_memory(mem_fmt, tatoeba_rows, tmp_path, run_build, read_output):
    """``{"text": ...}`` records get their targets from ``--memory``; what no memory covers is missing."""
    rows = tatoeba_rows[:6]
    inp = write_jsonl(tmp_path / "mono.jsonl", [{"text": r["en"]} for r in rows])
    # the memory covers rows 0-3 in both targets, row 4 in German only, row 5 not at all;
    # row 0's memory source has other whitespace: the lookup is by normalised text
    memory = [{"en": r["en"], "de": r["de"], "ja": r["ja"]} for r in rows[:4]] + [{"en": rows[4]["en"], "de": rows[4]["de"]}]
    memory[0]["en"] = "  " + memory[0]["en"].replace(" ", "  ") + " "
    memory.append({"en": "A sentence the input does not have.", "de": "Ein Satz, den die Eingabe nicht hat."})
    if mem_fmt == "tmx":
        mem = tmp_path / "memory.tmx"
        mem.write_text(tmx_document([tmx_unit(m | {"concept_id": f"m{i}"}, LANGS) for i, m in enumerate(memory)]), "utf-8")
    elif mem_fmt == "tsv":
        mem = write_csv(tmp_path / "memory.tsv", memory, list(LANGS), delimiter="\t")
    else:
        mem = write_jsonl(tmp_path / "memory.jsonl", memory)
    out = read_output(run_build(inp, tmp_path / "out", tgt=("de", "ja"), translate__memory=(str(mem),)))
    out.check_accounting(input_records=6)
    ids = [derived_id("en", text=r["en"]) for r in rows]

    kept = {
        (cid, lang): row
        for cid, lang, *row in out.shards.select(
            "concept_id", "lang", "text", "origin", "translator", "model", "source_line"
        ).iter_rows()
    }
    for i in range(4):
        assert kept[(ids[i], "en")] == [rows[i]["en"], "source", None, None, i + 1]
        assert kept[(ids[i], "de")] == [rows[i]["de"], "human", "tm", mem.name, i + 1]
        assert kept[(ids[i], "ja")] == [rows[i]["ja"], "human", "tm", mem.name, i + 1]
    assert kept[(ids[4], "de")] == [rows[4]["de"], "human", "tm", mem.name, 5]
    assert (ids[4], "ja") not in kept and (ids[5], "en") not in kept
    assert out.shards.height == 4 * 3 + 2

    rejected = {
        (cid, lang): (reason, detail)
        for cid, lang, reason, detail in out.rejected.select("concept_id", "lang", "drop_reason", "drop_detail").iter_rows()
    }
    assert rejected == {
        (ids[4], "ja"): ("missing_target", "no ja text in the input or the translator"),
        (ids[5], "de"): ("missing_target", "no de text in the input or the translator"),
        (ids[5], "ja"): ("missing_target", "no ja text in the input or the translator"),
        (ids[5], "en"): ("too_few_languages", "only 1 language(s) left, fewer than 2"),
    }
    assert out.manifest["translators"] == {"tm": {"origin": "human", "model": mem.name, "params": None}}
    assert out.manifest["counts"]["provenance_per_lang"]["de"] == {"human:tm": 5}
    assert out.manifest["drop_reasons"]["missing_target"] == {"de": 1, "ja": 2}


def test_blank_csv_target_cell_is_missing_and_filled_from_memory(tmp_path, run_build, read_output):
    """An empty CSV cell is no translation: the memory fills it, or the row is ``missing_target``."""
    rows = [
        {"concept_id": "c1", "en": "The library opens at eight.", "de": "Die Bibliothek öffnet um acht."},
        {"concept_id": "c2", "en": "The museum is closed on Mondays.", "de": ""},
        {"concept_id": "c3", "en": "The bakery sells fresh bread.", "de": "   "},
    ]
    inp = write_csv(tmp_path / "in.csv", rows, ["concept_id", "en", "de"])
    mem = write_csv(
        tmp_path / "tm.tsv",
        [{"en": "The museum is closed on Mondays.", "de": "Das Museum ist montags geschlossen."}],
        ["en", "de"],
        "\t",
    )
    out = read_output(run_build(inp, tmp_path / "out", tgt=("de",), translate__memory=(str(mem),)))
    out.check_accounting(input_records=3)
    de = {
        cid: (t, o, tr, m)
        for cid, t, o, tr, m in out.shards.filter(pl.col("lang") == "de")
        .select("concept_id", "text", "origin", "translator", "model")
        .iter_rows()
    }
    assert de == {
        "c1": ("Die Bibliothek öffnet um acht.", "human", "tm", None),
        "c2": ("Das Museum ist montags geschlossen.", "human", "tm", "tm.tsv"),
    }
    assert sorted(out.rejected.select("concept_id", "lang", "drop_reason").iter_rows()) == [
        ("c3", "de", "missing_target"),
        ("c3", "en", "too_few_languages"),
    ]


# ------------------------------------------------------------------------------------------ multi-field
SFT = [
    {
        "concept_id": "sft.1",
        "en": {"prompt": "What is the capital of France?", "response": "The capital of France is Paris, on the Seine."},
        "de": {
            "prompt": "Was ist die Hauptstadt von Frankreich?",
            "response": "Die Hauptstadt Frankreichs ist Paris, an der Seine.",
        },
    },
    {
        "concept_id": "sft.2",
        "en": {"prompt": 'Say "hello" politely.', "response": "Good day, it is a pleasure to meet you."},
        "de": {"prompt": "Sag höflich „hallo“.", "response": "Guten Tag, es freut mich, Sie kennenzulernen."},
    },
    {
        "concept_id": "sft.3",
        "en": {"prompt": "Name a large ocean on Earth.", "response": "The Pacific Ocean is the largest one."},
    },
]


def test_nested_multi_field_jsonl(tmp_path, run_build, read_output):
    bad = [
        {"concept_id": "sft.bad1", "en": {"prompt": "A prompt without its response."}},
        {"concept_id": "sft.bad2", "en": {"prompt": "Fine prompt.", "response": "Fine response."}, "de": "Nur ein Text"},
    ]
    path = write_jsonl(tmp_path / "sft.jsonl", SFT + bad)
    out = read_output(run_build(path, tmp_path / "out", tgt=("de",), fields=("prompt", "response")))
    out.check_accounting(input_records=5)
    got = {
        (c, lang): (p, r, t)
        for c, lang, p, r, t in out.shards.select("concept_id", "lang", "prompt", "response", "text").iter_rows()
    }
    expected = {(s["concept_id"], lang): (s[lang]["prompt"], s[lang]["response"], None) for s in SFT[:2] for lang in ("en", "de")}
    assert got == expected
    assert sorted(out.rejected.select("concept_id", "lang", "drop_reason").iter_rows()) == [
        ("sft.3", "de", "missing_target"),
        ("sft.3", "en", "too_few_languages"),
    ]
    assert sorted(out.quarantine.select("source_line", "error").iter_rows()) == [
        (4, "source record lacks field(s) ['response']"),
        (5, "field 'de': expected an object with fields ['prompt', 'response']"),
    ]
    assert out.manifest["fields"] == ["prompt", "response"]


def test_flat_multi_field_csv_columns(tmp_path, run_build, read_output):
    cols = ["concept_id", "prompt.en", "response.en", "prompt.de", "response.de"]
    flat = [
        {
            "concept_id": s["concept_id"],
            **{f"{f}.{lang}": s[lang][f] for lang in ("en", "de") if lang in s for f in ("prompt", "response")},
        }
        for s in SFT
    ]
    path = write_csv(tmp_path / "sft.csv", flat, cols)
    assert '"Say ""hello"" politely."' in path.read_text(encoding="utf-8")  # quoted field with quotes and a comma
    out = read_output(run_build(path, tmp_path / "out", tgt=("de",), fields=("prompt", "response")))
    out.check_accounting(input_records=3)
    got = {
        (c, lang): (p, r, line)
        for c, lang, p, r, line in out.shards.select("concept_id", "lang", "prompt", "response", "source_line").iter_rows()
    }
    expected = {
        (s["concept_id"], lang): (s[lang]["prompt"], s[lang]["response"], i + 2)
        for i, s in enumerate(SFT[:2])
        for lang in ("en", "de")
    }
    assert got == expected
    assert out.shards["text"].null_count() == out.shards.height
    # sft.3 has empty German cells: missing, not "empty"
    assert sorted(out.rejected.select("concept_id", "lang", "drop_reason").iter_rows()) == [
        ("sft.3", "de", "missing_target"),
        ("sft.3", "en", "too_few_languages"),
    ]


def test_json_file_holding_one_array_is_read_as_records(tmp_path: Path, run_build) -> None:
    src = tmp_path / "array.json"
    src.write_text(
        '[\n  {"concept_id": "a", "en": "All human beings are born free.", "de": "Alle Menschen sind frei geboren."},\n'
        '  {"concept_id": "b", "en": "Everyone has the right to life.", "de": "Jeder hat das Recht auf Leben."},\n'
        "  42\n]\n",
        encoding="utf-8",
    )
    result = run_build(src, tmp_path / "out", tgt=("de",))
    shards = pl.read_parquet(tmp_path / "out" / "shards" / "*.parquet")
    assert sorted(shards["concept_id"].unique().to_list()) == ["a", "b"]
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine" / "*.parquet")
    assert quarantine.select("source_line", "error").rows() == [(3, "expected a JSON object, got int")]
    assert result.manifest["accounting"]["ok"]
