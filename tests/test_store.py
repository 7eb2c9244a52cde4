"""Shard layout, manifest and validation of a built corpus; overwrite and lock protection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import corpusalign
from corpusalign.config import ShardConfig
from corpusalign.runner import BuildError, build, output_lock
from corpusalign.store import manifest as mf
from corpusalign.store.files import PieceFiles, read_piece, write_pieces
from corpusalign.store.schema import SCHEMA_VERSION, SHARD_SCHEMA, TEXT_FIELDS
from corpusalign.store.shards import (
    BUCKETS_PER_UNIT,
    bucket_of,
    open_buckets,
    read_bucket,
    shard_units,
    split_bucket,
    write_buckets,
)
from corpusalign.store.validate import validate

try:
    from helpers_store import n_records, outcome, reseal, sha256, shard_frame, small_config, write_input
except ImportError:  # tests/ imported as a package
    from tests.helpers_store import n_records, outcome, reseal, sha256, shard_frame, small_config, write_input

MAX_ROWS = 7
MAX_BYTES = 600


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(input file, corpus) built with small shards so that there are many."""
    root = tmp_path_factory.mktemp("store")
    inp = write_input(root / "in.jsonl")
    out = root / "corpus"
    build(small_config(shards__max_rows=MAX_ROWS), [inp], out, progress=False)
    return inp, out


@pytest.fixture
def corpus(built: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the built corpus, free to damage."""
    out = tmp_path / "corpus"
    shutil.copytree(built[1], out)
    return out


def _shards(out: Path) -> list[tuple[str, pl.DataFrame]]:
    m = mf.read_manifest(out)
    return [(e["path"], pl.read_parquet(out / e["path"])) for e in m["shards"]]


# ------------------------------------------------------------------------------------------ layout
def test_many_shards_each_concept_whole_in_one_shard(built: tuple[Path, Path]) -> None:
    _, out = built
    shards = _shards(out)
    assert len(shards) > 10, "small max_rows must give many shards"
    home: dict[str, str] = {}
    for rel, df in shards:
        for cid in df["concept_id"].unique().to_list():
            assert cid not in home, f"concept {cid} spans {home[cid]} and {rel}"
            home[cid] = rel
    # every kept language version of a concept is in the concept's shard: no row of it anywhere else
    everything = shard_frame(out)
    assert everything.select("concept_id", "lang").is_duplicated().sum() == 0
    per_concept = everything.group_by("concept_id").agg(pl.col("lang"))
    for cid, langs in per_concept.iter_rows():
        assert "en" in langs, f"concept {cid} kept without its source row"
        assert len(langs) >= 2


def test_all_languages_of_a_concept_in_the_same_shard(built: tuple[Path, Path]) -> None:
    _, out = built
    for rel, df in _shards(out):
        # the UDHR records carry all four languages: when one is in a shard, all four are
        udhr = df.filter(pl.col("concept_id").str.starts_with("udhr."))
        for cid, n in udhr.group_by("concept_id").len().iter_rows():
            assert n == 4, f"{rel}: concept {cid} has {n} of its 4 languages"


def test_rows_sorted_by_concept_then_language(built: tuple[Path, Path]) -> None:
    _, out = built
    for rel, df in _shards(out):
        keys = list(zip(df["concept_id"].to_list(), df["lang"].to_list(), strict=True))
        assert keys == sorted(keys), f"{rel} not sorted by (concept_id, lang)"


def test_shard_row_bound(built: tuple[Path, Path]) -> None:
    _, out = built
    for rel, df in _shards(out):
        assert df.height <= MAX_ROWS or df["concept_id"].n_unique() == 1, rel
    assert max(df.height for _, df in _shards(out)) > 1


def _text_bytes(df: pl.DataFrame) -> int:
    return int(df.select(pl.sum_horizontal(pl.col(f).str.len_bytes().fill_null(0) for f in TEXT_FIELDS).sum()).item())


def test_shard_byte_bound_except_single_big_concept(tmp_path: Path) -> None:
    inp = write_input(tmp_path / "in.jsonl", n_tatoeba=40, n_udhr=10)
    out = tmp_path / "corpus"
    build(small_config(shards__max_rows=1000, shards__max_bytes=MAX_BYTES), [inp], out, progress=False)
    shards = _shards(out)
    single_big = multi = 0
    for rel, df in shards:
        if df["concept_id"].n_unique() == 1:
            single_big += _text_bytes(df) > MAX_BYTES
        else:
            multi += 1
            assert _text_bytes(df) <= MAX_BYTES, f"{rel}: {_text_bytes(df)} text bytes > max_bytes {MAX_BYTES}"
    assert single_big, "the long UDHR paragraphs must each get a shard of their own"
    assert multi, "short sentences must still share shards"
    assert validate(out) == []


def test_split_bucket_single_concept_may_exceed_bound() -> None:
    cids = ["a"] * 2 + ["b"] * 10 + ["c"] * 1 + ["d"] * 1
    rows = pl.DataFrame(
        {
            "concept_id": cids,
            "lang": [f"l{i:02d}" for i in range(len(cids))],
            **{f: ["x"] * len(cids) if f == "text" else [None] * len(cids) for f in TEXT_FIELDS},
        },
        schema={"concept_id": pl.String, "lang": pl.String, **{f: pl.String for f in TEXT_FIELDS}},
    ).sample(fraction=1.0, shuffle=True, seed=1)
    pieces = list(split_bucket(rows, ShardConfig(max_rows=3)))
    assert [p["concept_id"].unique().sort().to_list() for p in pieces] == [["a"], ["b"], ["c", "d"]]
    assert [p.height for p in pieces] == [2, 10, 2]
    for p in pieces:
        assert p.equals(p.sort("concept_id", "lang"))
    assert list(split_bucket(rows.head(0), ShardConfig(max_rows=3))) == []


def _shard_rows(cids: list[str], tag: str) -> pl.DataFrame:
    """Rows with every shard column: the given concept ids, texts naming the batch and position."""
    table = pa.Table.from_pylist(
        [
            {"concept_id": c, "lang": "en", "text": f"{tag}-{i}", "source_file": "in.jsonl", "source_line": i}
            for i, c in enumerate(cids)
        ],
        schema=SHARD_SCHEMA,
    )
    return pl.from_arrow(table)  # type: ignore[return-value]


def test_bucket_files_give_each_bucket_its_rows_in_batch_order(tmp_path: Path) -> None:
    """One file per batch, one record batch per bucket (empty ones too); a bucket read back from
    every batch's file holds exactly its rows, batch by batch, in their order."""
    n_buckets = 7
    batches = [
        _shard_rows([f"c{j % 23}" for j in range(40)], "b0"),
        _shard_rows([], "b1"),  # a batch that kept nothing still writes its file
        _shard_rows(["only-one"], "b2"),
        _shard_rows([f"c{j}" for j in range(100, 160)], "b3"),
    ]
    paths = [write_buckets([df.to_arrow()], n_buckets, tmp_path / f"part-{i:06d}.arrow") for i, df in enumerate(batches)]
    files = open_buckets(paths)
    seen = 0
    for b in (*range(0, n_buckets, 2), *range(1, n_buckets, 2)):  # files opened once serve any order
        got = read_bucket(files, b)
        want = pl.concat([df.filter(bucket_of(df["concept_id"], n_buckets) == b) for df in batches])
        assert got.to_arrow().cast(SHARD_SCHEMA).equals(want.to_arrow().cast(SHARD_SCHEMA)), f"bucket {b}"
        seen += got.height
    assert seen == sum(df.height for df in batches)
    assert len({read_bucket(files, b).height for b in range(n_buckets)}) > 1, "the fixture must fill buckets unevenly"
    with pytest.raises(ValueError, match="has 7 pieces, asked for piece 7"):
        read_bucket(files, n_buckets)


def test_piece_files_read_what_read_piece_reads(tmp_path: Path) -> None:
    """Pieces read through files opened once (offsets from the index, one pread a piece) equal the
    pieces read one at a time, empty pieces too; a file that is not one of pieces is refused."""
    tables = [_shard_rows([f"c{j}" for j in range(n)], f"p{n}").to_arrow() for n in (5, 0, 1, 40)]
    paths = [write_pieces(([t] for t in tables[i:] + tables[:i]), tmp_path / f"u{i}.arrow", SHARD_SCHEMA) for i in range(3)]
    files = PieceFiles(paths, SHARD_SCHEMA)
    for k in reversed(range(len(tables))):
        got = files.read(k)
        assert [b.num_rows for b in got] == [tables[(i + k) % len(tables)].num_rows for i in range(3)]
        assert all(g.equals(read_piece(p, k, SHARD_SCHEMA)) for g, p in zip(got, paths, strict=True))
    with pytest.raises(ValueError, match="has 4 pieces, asked for piece 4"):
        files.read(4)
    other = tmp_path / "plain.arrow"
    with pa.OSFile(str(other), "wb") as sink, pa.ipc.new_file(sink, tables[0].schema) as writer:
        writer.write_table(tables[0])
    with pytest.raises(ValueError, match="not a file of pieces"):
        PieceFiles([other], SHARD_SCHEMA)


@pytest.mark.parametrize("n,parallelism", [(0, 1), (1, 1), (7, 1), (30, 1), (300, 1), (300, 2), (300, 64), (1001, 4)])
def test_shard_units_cover_the_buckets_in_order(n: int, parallelism: int) -> None:
    todo = [b for b in range(2 * n) if b % 2 == 0]  # those a resumed build has left, not always consecutive
    units = shard_units(todo, parallelism)
    assert [b for unit in units for b in unit] == todo
    assert all(1 <= len(unit) <= BUCKETS_PER_UNIT for unit in units)
    if n >= 4 * parallelism:
        assert len(units) >= 4 * parallelism, "a cluster keeps a unit for every CPU"
    if n >= 4 * parallelism * BUCKETS_PER_UNIT:
        assert all(len(unit) == BUCKETS_PER_UNIT for unit in units[:-1]), "a file opened once serves ten buckets"


def test_stage4_units_of_several_buckets_write_the_same_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage-4 unit writes several buckets from bucket files it opens once; the corpus is the same
    as with one bucket a unit."""
    import corpusalign.store.shards as shards

    inp = write_input(tmp_path / "in.jsonl")
    cfg = small_config(batch_size=20, shards__max_rows=MAX_ROWS)
    several = tmp_path / "several"
    build(cfg, [inp], several, progress=False, keep_work=True)
    n_buckets = json.loads((several / "_work" / "buckets.json").read_text())["buckets"]
    assert len(shard_units(list(range(n_buckets)), 1)[0]) > 1, "the fixture must give units of several buckets"
    monkeypatch.setattr(shards, "BUCKETS_PER_UNIT", 1)
    one = tmp_path / "one"
    build(cfg, [inp], one, progress=False)
    assert outcome(several) == outcome(one)


def test_a_build_writes_one_bucket_file_per_select_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stages 3 and 4 meet through one file per stage-3 unit (consecutive batches), whatever the
    number of buckets (one file per (batch, bucket) grew with the square of the corpus); the size of
    the units changes no row of the corpus."""
    import corpusalign.runner as runner

    inp = write_input(tmp_path / "in.jsonl")
    cfg = small_config(batch_size=20, shards__max_rows=MAX_ROWS)
    whole = tmp_path / "one-unit"
    build(cfg, [inp], whole, progress=False)
    monkeypatch.setattr(runner, "ROWS_PER_SELECT_UNIT", 2 * cfg.batch_size * len(cfg.langs))  # two batches a unit
    out = tmp_path / "two-batch-units"
    build(cfg, [inp], out, progress=False, keep_work=True)
    work = out / "_work"
    n_batches = json.loads((work / "stage1.done.json").read_text())["batches"]
    n_buckets = json.loads((work / "buckets.json").read_text())["buckets"]
    assert n_batches >= 3 and n_buckets > n_batches
    files = sorted(p.name for p in (work / "buckets").iterdir())
    assert files == [f"part-{u:06d}.arrow" for u in range(-(-n_batches // 2))]
    assert outcome(out) == outcome(whole)
    assert sorted(p.name for p in (out / "rejected").iterdir()) == sorted(p.name for p in (whole / "rejected").iterdir())


# ---------------------------------------------------------------------------------------- manifest
def test_manifest_fields(built: tuple[Path, Path]) -> None:
    inp, out = built
    m = mf.read_manifest(out)
    cfg = small_config(shards__max_rows=MAX_ROWS)
    assert m["format"] == mf.FORMAT
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["corpusalign_version"] == corpusalign.__version__
    assert m["config"] == cfg.to_dict()
    assert m["languages"] == ["en", "de", "ja", "sw"] and m["source_language"] == "en"
    assert m["digest"] == mf.canonical_digest(m)
    # every file listed with its true size, row count and sha256, and every shard file listed
    for key in ("shards", "rejected", "quarantine"):
        for e in m[key]:
            path = out / e["path"]
            assert e["sha256"] == sha256(path), e["path"]
            assert e["bytes"] == path.stat().st_size
            assert e["rows"] == pq.read_metadata(path).num_rows
    assert sorted(e["path"] for e in m["shards"]) == sorted(p.relative_to(out).as_posix() for p in (out / "shards").iterdir())
    # counts per language are the rows in the shards
    rows = shard_frame(out)
    per_lang = dict(rows.group_by("lang").len().iter_rows())
    assert m["counts"]["rows_per_lang"] == per_lang
    assert m["counts"]["rows"] == rows.height
    assert m["counts"]["concepts"] == rows["concept_id"].n_unique()
    for e in m["shards"]:
        df = pl.read_parquet(out / e["path"])
        assert e["rows_per_lang"] == dict(df.group_by("lang").len().iter_rows())
        assert e["concepts"] == df["concept_id"].n_unique()
    # accounting: nothing lost
    acct = m["accounting"]
    assert acct["ok"] is True
    assert acct["input_records"] == n_records(inp)
    assert acct["quarantined_rows"] == 1 == sum(e["rows"] for e in m["quarantine"])
    assert acct["kept_rows"] == rows.height
    assert acct["rejected_rows"] == sum(e["rows"] for e in m["rejected"]) > 0
    assert acct["input_rows"] == acct["kept_rows"] + acct["rejected_rows"] + acct["quarantined_rows"]
    assert m["drop_reasons"]["duplicate"] == {"de": 1, "en": 1, "ja": 1, "sw": 1}
    assert (out / mf.STATS).exists()
    assert not (out / "_work").exists(), "working files are removed after a successful build"


def test_shards_on_disk_have_the_schema(built: tuple[Path, Path]) -> None:
    _, out = built
    for e in mf.read_manifest(out)["shards"]:
        schema = pq.read_schema(out / e["path"])
        assert schema.equals(SHARD_SCHEMA, check_metadata=True)
        assert schema.metadata[b"corpusalign.schema_version"] == str(SCHEMA_VERSION).encode()


# -------------------------------------------------------------------------------------- validation
def test_validate_fresh_build_is_clean(built: tuple[Path, Path]) -> None:
    assert validate(built[1]) == []


def _first_shard(out: Path) -> Path:
    return out / mf.read_manifest(out)["shards"][0]["path"]


def _has(problems: list[str], *words: str) -> bool:
    return any(all(w in p for w in words) for p in problems)


def test_validate_detects_flipped_byte(corpus: Path) -> None:
    shard = _first_shard(corpus)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    problems = validate(corpus)
    assert _has(problems, shard.name, "sha256"), problems


def test_validate_detects_truncated_shard(corpus: Path) -> None:
    shard = _first_shard(corpus)
    shard.write_bytes(shard.read_bytes()[:-100])
    problems = validate(corpus)
    assert _has(problems, shard.name, "truncated"), problems


def test_validate_detects_missing_shard(corpus: Path) -> None:
    shard = _first_shard(corpus)
    shard.unlink()
    problems = validate(corpus)
    assert _has(problems, shard.name, "missing"), problems


@pytest.mark.parametrize("name", ["part-99999-000.parquet", "part-00000-000.parquet.tmp", "notes.txt"])
def test_validate_detects_extra_file_in_shards(corpus: Path, name: str) -> None:
    shutil.copy(_first_shard(corpus), corpus / "shards" / name)
    problems = validate(corpus)
    assert _has(problems, name, "not listed"), problems


def test_validate_detects_hand_edited_manifest(corpus: Path) -> None:
    path = corpus / mf.MANIFEST
    m = json.loads(path.read_text())
    m["counts"]["rows_per_lang"]["de"] += 1
    path.write_text(json.dumps(m, indent=2))
    problems = validate(corpus)
    assert _has(problems, "digest"), problems
    assert _has(problems, "rows per language"), problems


def test_validate_detects_edited_and_resealed_counts(corpus: Path) -> None:
    m = mf.read_manifest(corpus)
    m["counts"]["concepts"] += 1
    reseal(corpus, m)
    problems = validate(corpus)
    assert not _has(problems, "digest")
    assert _has(problems, "concepts"), problems


def test_validate_detects_shard_with_other_schema(corpus: Path) -> None:
    shard = _first_shard(corpus)
    table = pq.read_table(shard)
    other = table.set_column(
        table.schema.get_field_index("source_line"),
        pa.field("source_line", pa.int32(), nullable=False),
        table.column("source_line").cast(pa.int32()),
    )
    pq.write_table(other, shard)
    # even if the manifest is rewritten to match the new file, the schema is checked
    m = mf.read_manifest(corpus)
    rel = shard.relative_to(corpus).as_posix()
    for e in m["shards"]:
        if e["path"] == rel:
            e.update(bytes=shard.stat().st_size, sha256=sha256(shard))
    reseal(corpus, m)
    problems = validate(corpus)
    assert _has(problems, shard.name, "schema"), problems


def test_validate_without_manifest(tmp_path: Path) -> None:
    problems = validate(tmp_path)
    assert problems and "manifest.json" in problems[0]


# --------------------------------------------------------------------------- overwrite and locking
def test_existing_corpus_needs_overwrite(built: tuple[Path, Path], corpus: Path) -> None:
    inp, _ = built
    before = (corpus / mf.MANIFEST).read_bytes()
    with pytest.raises(BuildError, match="--overwrite"):
        build(small_config(shards__max_rows=MAX_ROWS + 1), [inp], corpus, progress=False)
    assert (corpus / mf.MANIFEST).read_bytes() == before, "a refused build must not touch the corpus"
    assert validate(corpus) == []
    # the same inputs and configuration again: nothing to do, nothing rewritten
    again = build(small_config(shards__max_rows=MAX_ROWS), [inp], corpus, progress=False)
    assert again.up_to_date and not again.resumed
    assert (corpus / mf.MANIFEST).read_bytes() == before
    # with overwrite=True the old corpus is replaced, not mixed with the new one
    result = build(small_config(tgt=("de",), shards__max_rows=50), [inp], corpus, overwrite=True, progress=False)
    assert result.manifest["languages"] == ["en", "de"]
    assert validate(corpus) == []
    assert set(shard_frame(corpus)["lang"].unique().to_list()) == {"en", "de"}
    assert len(list((corpus / "shards").iterdir())) == len(result.manifest["shards"])


def test_second_build_on_locked_output_fails(built: tuple[Path, Path], tmp_path: Path) -> None:
    inp, _ = built
    out = tmp_path / "corpus"
    with output_lock(out):
        with pytest.raises(BuildError, match="lock") as info:
            build(small_config(), [inp], out, progress=False)
        assert "another build" in str(info.value)
        assert not (out / "_work").exists() and not (out / "shards").exists()
    # once the first build lets go, the output is free
    build(small_config(shards__max_rows=500), [inp], out, progress=False)
    assert validate(out) == []


def test_batch_of_only_unreadable_records_builds(tmp_path: Path) -> None:
    """A whole batch of quarantined lines is an empty batch for the steps; the build goes on."""
    good = write_input(tmp_path / "good.jsonl", n_tatoeba=20, n_udhr=0).read_text().splitlines()
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(["{not json"] * 10 + good) + "\n")
    out = tmp_path / "corpus"
    result = build(small_config(batch_size=5, shards__max_rows=500), [inp], out, progress=False)
    assert result.manifest["accounting"]["quarantined_rows"] == 11
    assert result.manifest["counts"]["concepts"] > 0
    assert validate(out) == []
