"""corpusalign export / Corpus.export: Hugging Face translation JSONL, plain JSONL and TMX 1.4 (docs/export.md).

Small corpora built without verification (a few seconds): texts with XML-special characters,
newlines and characters outside the BMP, a concept without Japanese, a concept id that needs
escaping, several shards; a prompt/response corpus; and one built without control-character
stripping.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lxml import etree
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import corpusalign
from corpusalign import export as ex
from corpusalign.cli import app
from corpusalign.config import load_config
from corpusalign.read.formats import read_tmx
from corpusalign.runner import build

runner = CliRunner()

RECORDS: list[dict[str, Any]] = [
    {
        "concept_id": "c.xml",
        "en": "Use <b>bold</b> & \"quotes\" or 'single' quotes ]]> in markup.",
        "de": "Verwende <b>fett</b> & \"Anführungszeichen\" oder 'einfache' ]]> im Markup.",
        "ja": "マークアップでは<b>太字</b>と\"引用符\"や'単一引用符' ]]>を使います。",
    },
    {
        "concept_id": "c.lines",
        "en": "The first line of the poem.\nThe second line follows here.",
        "de": "Die erste Zeile des Gedichts.\nDie zweite Zeile folgt hier.",
        "ja": "詩の最初の行です。\n二行目がここに続きます。",
    },
    {
        "concept_id": "c.emoji",
        "en": "The rocket 🚀 launched with the rare character 𠀋 on board.",
        "de": "Die Rakete 🚀 startete mit dem seltenen Zeichen 𠀋 an Bord.",
        "ja": "ロケット🚀は珍しい文字𠀋を載せて打ち上げられました。",
    },
    {
        "concept_id": "c.apples",
        "en": "I bought three apples at the market today.",
        "de": "Ich habe heute drei Äpfel auf dem Markt gekauft.",
    },
    {
        "concept_id": 'q&a <"door">',
        "en": "Please close the door when you leave the room.",
        "de": "Bitte schließ die Tür, wenn du den Raum verlässt.",
        "ja": "部屋を出るときはドアを閉めてください。",
    },
    {
        "concept_id": "c.weather",
        "en": "The weather is very nice today, so we are going for a walk.",
        "de": "Das Wetter ist heute sehr schön, also gehen wir spazieren.",
        "ja": "今日はとても天気がいいので、散歩に行きます。",
    },
]

SFT_RECORDS: list[dict[str, Any]] = [
    {
        "concept_id": "sft.1",
        "en": {"prompt": "How do I close the door?", "response": "Push the door gently until it clicks."},
        "de": {"prompt": "Wie schließe ich die Tür?", "response": "Drücke die Tür sanft, bis sie einrastet."},
    },
    {
        "concept_id": "sft.2",
        "en": {"prompt": "What did you buy at the market?", "response": "I bought three apples & two pears."},
        "de": {"prompt": "Was hast du auf dem Markt gekauft?", "response": "Ich habe drei Äpfel & zwei Birnen gekauft."},
    },
]


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _build(tmp: Path, name: str, records: list[dict[str, Any]], **overrides: Any) -> Path:
    overrides = {"src": "en", "tgt": ("de", "ja"), "verify__enabled": False, **overrides}
    out = tmp / name
    build(load_config(**overrides), [_write(tmp / f"{name}.jsonl", records)], out, progress=False)
    return out


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # shards of at most 4 rows: several shards, concepts never split
    return _build(tmp_path_factory.mktemp("export"), "corpus", RECORDS, shards__max_rows=4)


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("export-sft"), "sft", SFT_RECORDS, tgt=("de",), fields=("prompt", "response"))


@pytest.fixture(scope="module")
def kept(corpus_dir: Path) -> pl.DataFrame:
    frame = corpusalign.Corpus(corpus_dir).to_polars()
    assert isinstance(frame, pl.DataFrame)
    return frame


def _texts(frame: pl.DataFrame, field: str = "text") -> dict[str, dict[str, str]]:
    """{concept_id: {lang: text}} of the kept rows."""
    out: dict[str, dict[str, str]] = {}
    for row in frame.iter_rows(named=True):
        out.setdefault(row["concept_id"], {})[row["lang"]] = row[field]
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_corpus_has_what_the_tests_need(corpus_dir: Path, kept: pl.DataFrame) -> None:
    corpus = corpusalign.Corpus(corpus_dir)
    assert len(corpus.manifest["shards"]) >= 3
    texts = _texts(kept)
    assert set(texts) == {r["concept_id"] for r in RECORDS}
    assert set(texts["c.apples"]) == {"en", "de"}
    assert (
        "&" in texts["c.xml"]["de"]
        and "<" in texts["c.xml"]["ja"]
        and "\n" in texts["c.lines"]["de"]
        and "𠀋" in texts["c.emoji"]["ja"]
    )


# ------------------------------------------------------------------------------------------------ TMX
def test_tmx_reads_back_through_corpusaligns_tmx_reader(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "memory.tmx"
    result = corpusalign.Corpus(corpus_dir).export("tmx", out)
    assert result.files == {out: len(RECORDS)} and result.concepts == len(RECORDS) and result.replaced_chars == 0
    items = list(read_tmx(out))
    assert all(item.error is None for item in items), [item.error for item in items]
    back = {item.record["concept_id"]: {k: v for k, v in item.record.items() if k != "concept_id"} for item in items}
    assert back == _texts(kept)  # same concept ids (tuid), same texts per language: <, &, quotes, newlines, non-BMP
    assert [item.record["concept_id"] for item in items] == kept["concept_id"].unique(maintain_order=True).to_list()

    root = etree.parse(str(out)).getroot()
    assert root.get("version") == "1.4"
    header = root.find("header")
    assert header is not None and header.get("srclang") == "en" and header.get("creationtool") == "corpusalign"
    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    for tu in root.iter("tu"):
        langs = [tuv.get(xml_lang) for tuv in tu.iter("tuv")]
        assert langs[0] == "en" and langs == [lang for lang in ("en", "de", "ja") if lang in langs]
        assert [p.text for p in tu.iter("prop")][0] == "source"


def test_tmx_memory_feeds_a_build(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path) -> None:
    """The exported TMX is an input `corpusalign build` reads as it is: the same rows come back."""
    corpusalign.Corpus(corpus_dir).export("tmx", tmp_path / "memory.tmx")
    again = corpusalign.build(
        src="en", tgt="de,ja", inputs=str(tmp_path / "memory.tmx"), output=tmp_path / "again", verify__enabled=False, report=False
    )
    assert _texts(again.to_polars()) == _texts(kept)  # type: ignore[arg-type]


def test_tmx_keeps_tabs_and_spaces_and_replaces_what_xml_cannot_hold(tmp_path: Path) -> None:
    records = [
        {
            "concept_id": "raw",
            "en": "A tab\there,  two spaces\x0bthen a vertical tab.",
            "de": "Ein Tab\thier,  zwei Leerzeichen.",
        },
    ]
    raw = _build(tmp_path, "raw", records, tgt=("de",), normalise__strip_control=False, normalise__collapse_whitespace=False)
    result = corpusalign.Corpus(raw).export("tmx", tmp_path / "raw.tmx")
    assert result.replaced_chars == 1
    (item,) = list(read_tmx(tmp_path / "raw.tmx"))
    assert item.record == {
        "concept_id": "raw",
        "en": "A tab\there,  two spaces\ufffdthen a vertical tab.",
        "de": "Ein Tab\thier,  zwei Leerzeichen.",
    }


def test_xml_escapes_survive_a_parser() -> None:
    result = ex.ExportResult("tmx", Path("x"))
    text = "a\r\nb <c> & d ]]> \"e\" 'f' \U0001f680"
    attr = 'id "1"\t<&>\n'
    doc = f'<r a="{ex._xml(attr, ex._ATTR_ESCAPES, result)}">{ex._xml(text, ex._TEXT_ESCAPES, result)}</r>'
    el = etree.fromstring(doc.encode("utf-8"))
    assert el.text == text and el.get("a") == attr and result.replaced_chars == 0


# ----------------------------------------------------------------------------------- hf-translation
@pytest.fixture
def offline_hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-cache"


def test_hf_translation_pairs_load_with_datasets(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path, offline_hf: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    result = corpusalign.Corpus(corpus_dir).export("hf-translation", out)
    texts = _texts(kept)
    assert list(result.files) == [out / "en-de.jsonl", out / "en-ja.jsonl"]
    assert result.files[out / "en-ja.jsonl"] == sum("ja" in t for t in texts.values()) == len(RECORDS) - 1
    for lang in ("de", "ja"):
        ds = datasets.load_dataset("json", data_files=str(out / f"en-{lang}.jsonl"), split="train", cache_dir=str(offline_hf))
        assert set(ds.features["translation"]) == {"en", lang}
        for row in ds:
            assert row["translation"] == {"en": texts[row["concept_id"]]["en"], lang: texts[row["concept_id"]][lang]}
        typed = ds.cast_column("translation", datasets.Translation(languages=["en", lang]))
        assert isinstance(typed.features["translation"], datasets.Translation)
        assert typed[0]["translation"] == ds[0]["translation"]


def test_hf_translation_all_languages_in_one_line(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path, offline_hf: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "all.jsonl"
    result = corpusalign.Corpus(corpus_dir).export("hf-translation", out, pairs="all")
    assert result.files == {out: len(RECORDS)}
    texts = _texts(kept)
    lines = _lines(out)
    assert [list(line) for line in lines] == [["concept_id", "translation"]] * len(RECORDS)
    # every build language in build order, the anchor first; null where the concept lacks one
    assert all(list(line["translation"]) == ["en", "de", "ja"] for line in lines)
    assert {line["concept_id"]: {k: v for k, v in line["translation"].items() if v is not None} for line in lines} == texts
    assert lines[[line["concept_id"] for line in lines].index("c.apples")]["translation"]["ja"] is None
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(offline_hf))
    assert set(ds.features["translation"]) == {"en", "de", "ja"}
    typed = ds.cast_column("translation", datasets.Translation(languages=["en", "de", "ja"]))
    assert isinstance(typed.features["translation"], datasets.Translation)
    apples = typed[ds["concept_id"].index("c.apples")]["translation"]
    assert apples == {**texts["c.apples"], "ja": None}


# -------------------------------------------------------------------------------------------- jsonl
def test_jsonl_rows_round_trip_to_the_kept_rows(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    result = corpusalign.Corpus(corpus_dir).export("jsonl", out, layout="rows")
    assert result.files == {out: kept.height} and result.concepts == len(RECORDS)
    back = pl.read_ndjson(out, schema=kept.schema)
    assert_frame_equal(back, kept)


def test_jsonl_concepts_match_corpus_concepts_and_rebuild(corpus_dir: Path, kept: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "concepts.jsonl"
    corpus = corpusalign.Corpus(corpus_dir)
    corpus.export("jsonl", out)
    lines = _lines(out)
    expected = [{"concept_id": cid, **{lang: row["text"] for lang, row in rows.items()}} for cid, rows in corpus.concepts()]
    assert lines == expected  # same order, keys concept_id then the languages in build order
    again = corpusalign.build(
        src="en", tgt="de,ja", inputs=str(out), output=tmp_path / "again", verify__enabled=False, report=False
    )
    assert _texts(again.to_polars()) == _texts(kept)  # type: ignore[arg-type]


def test_small_record_batches_group_concepts_the_same(corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = corpusalign.Corpus(corpus_dir)
    corpus.export("tmx", tmp_path / "a.tmx")
    corpus.export("jsonl", tmp_path / "a.jsonl")
    monkeypatch.setattr(ex, "BATCH_ROWS", 1)  # every row its own record batch: concepts span batches
    corpus.export("tmx", tmp_path / "b.tmx")
    corpus.export("jsonl", tmp_path / "b.jsonl")
    assert (tmp_path / "a.tmx").read_bytes() == (tmp_path / "b.tmx").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


# ------------------------------------------------------------------------------------ multi-field
def test_multi_field_corpus(sft_dir: Path, tmp_path: Path) -> None:
    corpus = corpusalign.Corpus(sft_dir)
    assert corpus.manifest["fields"] == ["prompt", "response"]
    for fmt, out in (("tmx", tmp_path / "x.tmx"), ("hf-translation", tmp_path / "hf")):
        with pytest.raises(ex.ExportError, match="prompt, response"):
            corpus.export(fmt, out)
    with pytest.raises(ex.ExportError, match="'text' is not a field.*prompt, response"):
        corpus.export("tmx", tmp_path / "x.tmx", field="text")

    corpus.export("tmx", tmp_path / "responses.tmx", field="response")
    back = {item.record["concept_id"]: item.record for item in read_tmx(tmp_path / "responses.tmx")}
    assert back["sft.2"] == {"concept_id": "sft.2", **{lang: SFT_RECORDS[1][lang]["response"] for lang in ("en", "de")}}

    corpus.export("jsonl", tmp_path / "nested.jsonl")  # every field, nested per language: a shape build reads
    assert _lines(tmp_path / "nested.jsonl") == SFT_RECORDS
    corpus.export("jsonl", tmp_path / "prompts.jsonl", field="prompt")
    assert _lines(tmp_path / "prompts.jsonl")[0] == {
        "concept_id": "sft.1",
        "en": "How do I close the door?",
        "de": "Wie schließe ich die Tür?",
    }

    corpus.export("hf-translation", tmp_path / "hf", field="prompt")
    assert _lines(tmp_path / "hf" / "en-de.jsonl")[1]["translation"] == {
        "en": "What did you buy at the market?",
        "de": "Was hast du auf dem Markt gekauft?",
    }


# ------------------------------------------------------------------------------- options, safety
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "csv"}, "unknown export format 'csv'"),
        ({"format": "tmx", "pairs": "all"}, "pairs applies to hf-translation only"),
        ({"format": "hf-translation", "layout": "rows"}, "layout applies to jsonl only"),
        ({"format": "hf-translation", "pairs": "some"}, "pairs must be one of anchor, all"),
        ({"format": "jsonl", "layout": "table"}, "layout must be one of concepts, rows"),
        ({"format": "jsonl", "layout": "rows", "field": "text"}, "rows layout exports every shard column"),
    ],
)
def test_bad_options_raise_export_error(corpus_dir: Path, tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    fmt = kwargs.pop("format")
    with pytest.raises(ex.ExportError, match=message):
        corpusalign.Corpus(corpus_dir).export(fmt, tmp_path / "out", **kwargs)


def test_output_never_inside_the_corpus_data(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ex.ExportError, match="shards"):
        corpusalign.Corpus(corpus_dir).export("tmx", corpus_dir / "shards" / "x.tmx")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ex.ExportError, match="is a file"):
        corpusalign.Corpus(corpus_dir).export("hf-translation", tmp_path / "a-file")
    with pytest.raises(ex.ExportError, match="is a directory"):
        corpusalign.Corpus(corpus_dir).export("jsonl", tmp_path)


def test_a_failed_export_leaves_the_old_file_and_no_temporary(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "memory.tmx"
    out.write_text("old")

    def broken(*args: Any) -> Any:
        yield from []
        raise OSError("disk gone")

    monkeypatch.setattr(ex, "_iter_concepts", broken)
    with pytest.raises(OSError, match="disk gone"):
        corpusalign.Corpus(corpus_dir).export("tmx", out)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.tmx"]


def test_a_damaged_corpus_is_refused(corpus_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(corpus_dir, broken)
    corpus = corpusalign.Corpus(broken)
    shard = broken / corpus.manifest["shards"][1]["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the full validation sees it
    shard.write_bytes(bytes(data))
    with pytest.raises(corpusalign.CorpusValidationError, match="sha256"):
        corpus.export("jsonl", tmp_path / "x.jsonl")
    shard.write_bytes(bytes(data[:100]))  # truncated: refused even without the full validation
    with pytest.raises(ex.ExportCorpusError, match="size"):
        corpus.export("jsonl", tmp_path / "x.jsonl", validate=False)
    assert not (tmp_path / "x.jsonl").exists()


# ---------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    ("args", "written"),
    [
        (["--format", "tmx", "-o", "{out}/memory.tmx"], ["memory.tmx"]),
        (["-f", "hf-translation", "-o", "{out}/hf"], ["hf/en-de.jsonl", "hf/en-ja.jsonl"]),
        (["-f", "hf-translation", "--pairs", "all", "-o", "{out}/all.jsonl"], ["all.jsonl"]),
        (["-f", "jsonl", "-o", "{out}/concepts.jsonl"], ["concepts.jsonl"]),
        (["-f", "jsonl", "--layout", "rows", "--no-validate", "-o", "{out}/rows.jsonl"], ["rows.jsonl"]),
    ],
)
def test_cli_export_each_format(corpus_dir: Path, tmp_path: Path, args: list[str], written: list[str]) -> None:
    result = runner.invoke(app, ["export", str(corpus_dir), *(a.format(out=tmp_path) for a in args)])
    assert result.exit_code == 0, result.output
    for name in written:
        assert (tmp_path / name).stat().st_size > 0
    assert result.output.count("export:") == len(written)
    assert not list(tmp_path.rglob("*.tmp"))


def test_cli_export_errors(corpus_dir: Path, sft_dir: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["export", str(corpus_dir), "--format", "csv", "-o", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown format 'csv'" in unknown.output and "hf-translation, jsonl, tmx" in unknown.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nowhere"), "--format", "tmx", "-o", str(tmp_path / "x.tmx")])
    assert missing.exit_code == 2 and "no manifest.json" in missing.output
    fields = runner.invoke(app, ["export", str(sft_dir), "--format", "tmx", "-o", str(tmp_path / "x.tmx")])
    assert fields.exit_code == 2 and "prompt, response" in fields.output
    assert runner.invoke(app, ["export", str(corpus_dir), "-o", str(tmp_path / "x")]).exit_code == 2  # no --format

    broken = tmp_path / "broken"
    shutil.copytree(corpus_dir, broken)
    (broken / corpusalign.Corpus(broken).manifest["shards"][0]["path"]).write_bytes(b"not parquet")
    damaged = runner.invoke(app, ["export", str(broken), "--format", "tmx", "-o", str(tmp_path / "x.tmx")])
    assert damaged.exit_code == 1 and "fails validation" in damaged.output
    assert not (tmp_path / "x.tmx").exists()


def test_a_manifest_path_outside_the_corpus_is_refused(corpus_dir: Path, tmp_path: Path) -> None:
    from corpusalign.store import manifest as mf

    broken = tmp_path / "broken"
    shutil.copytree(corpus_dir, broken)
    outside = tmp_path / "outside.parquet"
    shutil.copy(corpusalign.Corpus(broken).files()[0], outside)
    manifest = json.loads((broken / mf.MANIFEST).read_text(encoding="utf-8"))
    manifest["shards"][0]["path"] = "../outside.parquet"
    (broken / mf.MANIFEST).write_text(json.dumps(mf.seal(manifest)), encoding="utf-8")
    with pytest.raises(ex.ExportCorpusError, match="outside the corpus"):
        corpusalign.Corpus(broken).export("tmx", tmp_path / "x.tmx", validate=False)
    with pytest.raises(corpusalign.CorpusValidationError, match="outside the corpus"):
        corpusalign.Corpus(broken).export("tmx", tmp_path / "x.tmx")
