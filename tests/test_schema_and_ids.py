"""The shard schema the writer enforces, and stable concept ids."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusalign.config import BuildConfig, NormaliseConfig, load_config
from corpusalign.read.formats import RawItem
from corpusalign.read.records import records_to_batch
from corpusalign.runner import build
from corpusalign.steps.normalise import normalise_expr
from corpusalign.store import manifest as mf
from corpusalign.store.files import write_parquet
from corpusalign.store.schema import SCHEMA_VERSION, SHARD_SCHEMA, TEXT_FIELDS, conform

# ------------------------------------------------------------------------------------------ schema


def _shard_row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {f.name: None for f in SHARD_SCHEMA}
    row.update(concept_id="c1", lang="en", text="Hello.", origin="source", source_file="in.jsonl", source_line=1)
    row.update(over)
    return row


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)


def test_conform_gives_exactly_the_schema_and_drops_working_columns() -> None:
    t = _table([_shard_row(), _shard_row(lang="de", text="Hallo.")])
    loose = t.drop_columns(["lid_score", "source_line"]).append_column("lid_score", pa.array([0.5, 0.25], pa.float64()))
    loose = loose.append_column("source_line", pa.array([1, 2], pa.int32())).append_column("_seq", pa.array([7, 8]))
    out = conform(loose, SHARD_SCHEMA)
    assert out.schema.equals(SHARD_SCHEMA, check_metadata=True)
    assert out.column_names == SHARD_SCHEMA.names
    assert out.column("lid_score").to_pylist() == [0.5, 0.25]
    assert out.schema.metadata[b"corpusalign.schema_version"] == str(SCHEMA_VERSION).encode()


def test_conform_refuses_missing_column() -> None:
    t = _table([_shard_row()]).drop_columns(["source_file"])
    with pytest.raises(ValueError, match="source_file"):
        conform(t, SHARD_SCHEMA)


@pytest.mark.parametrize("column", ["concept_id", "lang", "source_file", "source_line"])
def test_conform_refuses_nulls_in_non_nullable(column: str) -> None:
    t = pa.Table.from_pylist(
        [_shard_row(**{column: None})],
        schema=SHARD_SCHEMA.with_metadata({}).set(
            SHARD_SCHEMA.get_field_index(column), SHARD_SCHEMA.field(column).with_nullable(True)
        ),
    )
    with pytest.raises(ValueError, match=rf"{column}.*null"):
        conform(t, SHARD_SCHEMA)


def test_conform_returns_a_conformed_table_as_it_is_and_still_checks_its_nulls() -> None:
    """The fast path for slices of conformed tables (stage 3 conforms each bucket slice): no copy, the
    schema's metadata kept, and a non-nullable column that holds nulls anyway still refused."""
    t = conform(_table([_shard_row(), _shard_row(lang="de", text="Hallo.")]), SHARD_SCHEMA)
    piece = t.slice(1, 1)
    assert conform(piece, SHARD_SCHEMA) is piece
    stripped = t.replace_schema_metadata({})
    out = conform(stripped, SHARD_SCHEMA)
    assert out is not stripped and out.schema.equals(SHARD_SCHEMA, check_metadata=True), "metadata restored"
    i = SHARD_SCHEMA.get_field_index("lang")
    holey = pa.Table.from_arrays(
        [pa.array([None, "de"], pa.string()) if k == i else t.column(k) for k in range(t.num_columns)], schema=SHARD_SCHEMA
    )
    assert holey.schema.equals(SHARD_SCHEMA, check_metadata=True)
    with pytest.raises(ValueError, match="lang.*null"):
        conform(holey, SHARD_SCHEMA)


def test_conform_refuses_impossible_cast() -> None:
    t = _table([_shard_row()])
    i = t.schema.get_field_index("source_line")
    bad = t.set_column(i, "source_line", pa.array(["line one"]))
    with pytest.raises(ValueError, match="source_line.*cast"):
        conform(bad, SHARD_SCHEMA)
    struct = t.set_column(t.schema.get_field_index("original"), "original", pa.array(["not a struct"]))
    with pytest.raises(ValueError, match="original"):
        conform(struct, SHARD_SCHEMA)


def test_write_parquet_enforces_schema_and_writes_nothing_on_error(tmp_path: Path) -> None:
    path = tmp_path / "shards" / "part.parquet"
    bad = _table([_shard_row()]).drop_columns(["lang"])
    with pytest.raises(ValueError, match="lang"):
        write_parquet(bad, path, SHARD_SCHEMA)
    assert not path.exists() and not list(tmp_path.rglob("*.tmp"))
    write_parquet(_table([_shard_row()]), path, SHARD_SCHEMA)
    assert pq.read_schema(path).equals(SHARD_SCHEMA, check_metadata=True)
    assert not list(tmp_path.rglob("*.tmp"))


def test_schema_text_fields_and_version() -> None:
    assert SCHEMA_VERSION == 3  # v2 added language-ID and verification scores, v3 translator_params
    for f in TEXT_FIELDS:
        assert SHARD_SCHEMA.field(f).type == pa.string()
    assert SHARD_SCHEMA.field("original").type == pa.struct([pa.field(f, pa.string()) for f in TEXT_FIELDS])
    assert [f.name for f in SHARD_SCHEMA if not f.nullable] == ["concept_id", "lang", "source_file", "source_line"]


# ------------------------------------------------------------------------------------- concept ids
CFG = BuildConfig(src="en", tgt=("de",))


def _ids(records: list[dict[str, Any]], cfg: BuildConfig = CFG) -> list[str]:
    """Concept id of each record, as the reader gives it."""
    items = [RawItem("in.jsonl", i + 1, r) for i, r in enumerate(records)]
    batch, quarantined, _ = records_to_batch(items, cfg, seq_start=0)
    assert not quarantined, quarantined
    return batch.filter(pl.col("lang") == cfg.src)["concept_id"].to_list()


def _one(text: str, cfg: BuildConfig = CFG, **extra: Any) -> str:
    return _ids([{cfg.src: text, **extra}], cfg)[0]


def _documented_recipe(src: str, values: dict[str, str]) -> str:
    """``derive_concept_ids``'s documented recipe, recomputed here by hand: NFC, whitespace collapsed
    and stripped, then sha256 of ``corpusalign-concept-v1``, the source language and ``field=value``
    items joined by U+001F; the first 24 hex digits."""
    norm = {f: re.sub(r"\s+", " ", unicodedata.normalize("NFC", v)).strip() for f, v in values.items()}
    key = "\x1f".join(["corpusalign-concept-v1", src, *(f"{f}={v}" for f, v in norm.items())])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def test_derived_id_follows_documented_recipe() -> None:
    text = "All human beings are born free and equal in dignity and rights."
    cid = _one(text)
    assert re.fullmatch(r"[0-9a-f]{24}", cid)
    assert cid == _documented_recipe("en", {"text": text})
    assert _one("  Café\u0301  x\t\ty ", load_config(None, src="en", tgt=("de",))) == _documented_recipe(
        "en", {"text": "Café\u0301 x y"}
    )


def test_derived_id_recipe_with_several_fields() -> None:
    cfg = BuildConfig(src="en", tgt=("de",), fields=("prompt", "response"))
    rec = {"en": {"prompt": "Name a colour.", "response": "Blue."}}
    [cid] = _ids([rec], cfg)
    assert cid == _documented_recipe("en", {"prompt": "Name a colour.", "response": "Blue."})
    swapped = {"en": {"prompt": "Blue.", "response": "Name a colour."}}
    assert _ids([swapped], cfg)[0] != cid


def test_derived_id_ignores_composition_and_spacing() -> None:
    nfc = unicodedata.normalize("NFC", "Le café est très près de l'hôtel.")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    base = _one(nfc)
    assert _one(nfd) == base
    assert _one("  Le café   est très\tprès de l'hôtel. \n") == base
    assert _one("Le\u00a0café est très près de l'hôtel.") == base  # no-break space


def test_derived_id_differs_for_other_text_or_source_language() -> None:
    text = "The museum opens at nine."
    base = _one(text)
    assert _one("The museum opens at ten.") != base
    assert _one("The museum opens at nine!") != base
    assert _one(text.lower()) != base  # ids are case-sensitive: only dedup casefolds
    as_german = BuildConfig(src="de", tgt=("en",))
    assert _one(text, as_german) != base


def test_given_ids_kept_as_given() -> None:
    ids = _ids(
        [
            {"concept_id": 42, "en": "Forty-two."},
            {"concept_id": "Tatoeba/ABC-1 ä", "en": "Given."},
            {"concept_id": "x", "en": "Same text."},
            {"concept_id": "y", "en": "Same text."},
            {"en": "No id here."},
        ]
    )
    assert ids[:4] == ["42", "Tatoeba/ABC-1 ä", "x", "y"]
    assert ids[4] == _documented_recipe("en", {"text": "No id here."})
    no_id_field = BuildConfig(src="en", tgt=("de",), id_field=None)
    assert _ids([{"concept_id": "ignored", "en": "No id here."}], no_id_field) == [ids[4]]


def test_every_language_row_of_a_concept_gets_its_id() -> None:
    items = [RawItem("in.jsonl", 1, {"en": "Good morning.", "de": "Guten Morgen."})]
    batch, _, _ = records_to_batch(items, CFG, seq_start=0)
    assert batch["concept_id"].n_unique() == 1 and batch["concept_id"].null_count() == 0


def test_derived_ids_equal_across_two_builds(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[1] / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()[:40]
    records = [{k: v for k, v in json.loads(line).items() if k != "concept_id"} for line in lines]
    a = tmp_path / "a.jsonl"
    a.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    # the same records again, decomposed and padded: the same concepts
    b = tmp_path / "b.jsonl"
    b.write_text(
        "\n".join(json.dumps({k: f"  {unicodedata.normalize('NFD', v)} " for k, v in r.items()}) for r in records) + "\n",
        encoding="utf-8",
    )
    cfg = load_config(None, src="en", tgt=("de", "ja"), shards__max_rows=20)
    ids = []
    for name, inp in (("one", a), ("two", a), ("three", b)):
        out = tmp_path / name
        build(cfg, [inp], out, progress=False)
        m = mf.read_manifest(out)
        ids.append(
            sorted(
                pl.concat([pl.read_parquet(out / e["path"], columns=["concept_id"]) for e in m["shards"]])["concept_id"]
                .unique()
                .to_list()
            )
        )
    assert len(ids[0]) > 30
    assert ids[0] == ids[1] == ids[2]
    assert set(ids[0]) <= {_documented_recipe("en", {"text": r["en"]}) for r in records}


# ------------------------------------------------------------------------------ property tests
_WS = st.sampled_from([" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "  \n "])
# Texts built from characters that interact under normalisation: letters and the combining marks
# (or Hangul vowels) they compose with, characters the normaliser removes, whitespace, and anything.
_ATOM = st.one_of(
    st.sampled_from(list("aeouAEOnc\u1100")),
    st.sampled_from(["\u0301", "\u0308", "\u0303", "\u0323", "\u0327", "\u1161"]),
    st.sampled_from(["\x00", "\x07", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\u200b", "\u2060", "\ufeff"]),
    st.sampled_from([" ", "  ", "\t", "\n", "\n\n\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028"]),
    st.characters(codec="utf-8"),
)
_TEXT = st.lists(_ATOM, max_size=30).map("".join)


def _normalise(values: list[str], cfg: NormaliseConfig) -> list[str]:
    return pl.Series("t", values, dtype=pl.String).to_frame().select(normalise_expr(pl.col("t"), cfg))["t"].to_list()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT, form=st.sampled_from(["NFC", "NFKC"]))
def test_normalise_is_idempotent(text: str, form: str) -> None:
    cfg = NormaliseConfig(form=form)  # type: ignore[arg-type]
    once = _normalise([text], cfg)[0]
    assert _normalise([once], cfg)[0] == once


def test_normalise_composes_across_removed_characters() -> None:
    # a zero-width space between a letter and its accent: removed, and the two composed
    assert _normalise(["e\u200b\u0301", "\u1100\ufeff\u1161"], NormaliseConfig()) == ["\u00e9", "\uac00"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT, before=st.lists(_WS, max_size=3), after=st.lists(_WS, max_size=3))
def test_derived_id_invariant_under_surrounding_whitespace(text: str, before: list[str], after: list[str]) -> None:
    padded = "".join(before) + text + "".join(after)
    assert _one(padded) == _one(text)
