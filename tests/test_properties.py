"""Property-based tests (hypothesis): normalisation, concept ids, and the shard schema round trip.

Complements the property tests in ``tests/test_schema_and_ids.py`` (normalise idempotent for the
default options; derived ids invariant under surrounding whitespace) with the output invariants of
every normalisation option, id properties, and Parquet round trips of arbitrary valid rows.
"""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corpusalign.config import BuildConfig, NormaliseConfig
from corpusalign.read.formats import RawItem
from corpusalign.read.records import MAX_ID_CHARS, records_to_batch
from corpusalign.steps.normalise import normalise_expr
from corpusalign.store.files import write_parquet
from corpusalign.store.schema import SHARD_SCHEMA, TEXT_FIELDS

FAST = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

# Characters that interact with normalisation: letters and the marks they compose with, Hangul jamo,
# compatibility characters (NFKC), removed characters, every kind of whitespace and line break, anything.
_ATOM = st.one_of(
    st.sampled_from(list("aeoAEOnc\u1100\u1161")),
    st.sampled_from(["\u0301", "\u0308", "\u0327", "\ufb01", "\u2474", "\uff21", "\u00bd", "\u2126"]),
    st.sampled_from(["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\u200b", "\u2060", "\ufeff"]),
    st.sampled_from([" ", "  ", "\t", "\n", "\n\n\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\u2029", "\u1680"]),
    st.characters(codec="utf-8"),
)
TEXT = st.lists(_ATOM, max_size=30).map("".join)
CONFIGS = st.builds(
    NormaliseConfig, form=st.sampled_from(["NFC", "NFKC"]), collapse_whitespace=st.booleans(), strip_control=st.booleans()
)
_REMOVED = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u200B\u2060\uFEFF]")


def normalise(texts: list[str | None], cfg: NormaliseConfig) -> list[str | None]:
    frame = pl.Series("t", texts, dtype=pl.String).to_frame()
    return frame.select(normalise_expr(pl.col("t"), cfg))["t"].to_list()


# ------------------------------------------------------------------------------------- normalise
@FAST
@given(texts=st.lists(TEXT, min_size=1, max_size=5), cfg=CONFIGS)
def test_normalise_twice_equals_once(texts: list[str], cfg: NormaliseConfig) -> None:
    once = normalise(texts, cfg)
    assert normalise(once, cfg) == once


@FAST
@given(text=TEXT, cfg=CONFIGS)
def test_normalise_output_is_in_the_configured_normal_form(text: str, cfg: NormaliseConfig) -> None:
    [out] = normalise([text], cfg)
    assert unicodedata.is_normalized(cfg.form, out), (text, out)


@FAST
@given(text=TEXT, cfg=CONFIGS)
def test_normalise_never_introduces_control_characters(text: str, cfg: NormaliseConfig) -> None:
    [out] = normalise([text], cfg)
    assert "\r" not in out  # line endings are always \n
    controls = {c for c in out if unicodedata.category(c) == "Cc"} - {"\n", "\t"}
    if cfg.strip_control:
        assert not controls and not _REMOVED.search(out), repr(out)
    else:  # nothing new: every control character left was in the input
        assert controls <= set(text)
    assert {c for c in out if unicodedata.category(c) == "Cc"} <= set(text) | {"\n", " "}


@FAST
@given(text=TEXT, form=st.sampled_from(["NFC", "NFKC"]))
def test_normalise_collapses_whitespace(text: str, form: str) -> None:
    [out] = normalise([text], NormaliseConfig(form=form))  # type: ignore[arg-type]
    assert out == out.strip()  # no leading or trailing whitespace (Unicode White_Space)
    assert "  " not in out and "\t" not in out
    assert not re.search(r"[^\S\n]", out.replace(" ", "")), repr(out)  # the only whitespace: space and newline
    assert " \n" not in out and "\n " not in out and "\n\n\n" not in out


@FAST
@given(text=TEXT)
def test_normalise_keeps_null_and_changes_nothing_normal(text: str) -> None:
    cfg = NormaliseConfig()
    [out, none] = normalise([text, None], cfg)
    assert none is None
    assert normalise([out], cfg) == [out]


# ------------------------------------------------------------------------------------- concept ids
CFG = BuildConfig(src="en", tgt=("de",))


def ids(texts: list[str], cfg: BuildConfig = CFG, id_field: str | None = None) -> list[str]:
    records = [{"en": t} for t in texts] if id_field is None else [{"concept_id": t, "en": "x"} for t in texts]
    batch, quarantined, _ = records_to_batch([RawItem("p.jsonl", i + 1, r) for i, r in enumerate(records)], cfg, 0)
    assert not quarantined, quarantined
    return batch.filter(pl.col("lang") == cfg.src)["concept_id"].to_list()


@FAST
@given(texts=st.lists(TEXT, min_size=1, max_size=6))
def test_derived_ids_are_deterministic_and_short(texts: list[str]) -> None:
    first = ids(texts)
    assert ids(texts) == first
    assert ids(list(reversed(texts))) == list(reversed(first))  # a record's id does not depend on its batch
    assert all(re.fullmatch(r"[0-9a-f]{24}", c) and len(c) <= MAX_ID_CHARS for c in first)


@FAST
@given(text=TEXT)
def test_records_equal_after_normalisation_get_the_same_id(text: str) -> None:
    [norm] = normalise([text], NormaliseConfig())
    decomposed = unicodedata.normalize("NFD", text)
    a, b, c = ids([text, norm, "\u200b " + decomposed.replace(" ", "\u00a0 \t") + "\r\n"])
    assert a == b == c


@FAST
@given(texts=st.lists(TEXT, min_size=2, max_size=8))
def test_different_normalised_texts_get_different_ids(texts: list[str]) -> None:
    norm = normalise(list(texts), NormaliseConfig())
    by_norm = dict(zip(norm, ids(texts), strict=True))
    assert len(set(by_norm.values())) == len(by_norm)  # one id per distinct normalised text


_ID_CHARS = st.characters(codec="utf-8", min_codepoint=32)


@FAST
@given(raw=st.text(_ID_CHARS, min_size=1, max_size=MAX_ID_CHARS + 20))
@example(raw=" ")
@example(raw="\x85")
@example(raw="  id-7\u3000")
def test_given_ids_are_kept_stripped_or_refused(raw: str) -> None:
    items = [RawItem("p.jsonl", 1, {"concept_id": raw, "en": "A text."})]
    batch, quarantined, n = records_to_batch(items, CFG, 0)
    assert n == 1
    stripped = raw.strip()
    if not stripped or len(stripped) > MAX_ID_CHARS:  # an id given but blank (any Unicode space), or too long
        assert batch.height == 0 and quarantined[0]["error"].startswith("id field 'concept_id': empty, longer than 256")
    else:
        assert not quarantined and set(batch["concept_id"]) == {stripped}


# ------------------------------------------------------------------------------------- schema round trip
_str = st.text(st.characters(codec="utf-8"), max_size=12)
_f32 = st.floats(width=32, allow_nan=False)


def _value(f: pa.Field) -> st.SearchStrategy[Any]:
    t = f.type
    if pa.types.is_string(t):
        v: st.SearchStrategy[Any] = _str
    elif pa.types.is_int64(t):
        v = st.integers(-(2**63), 2**63 - 1)
    elif pa.types.is_float32(t):
        v = _f32 | st.just(math.inf)
    elif pa.types.is_boolean(t):
        v = st.booleans()
    elif pa.types.is_struct(t):
        v = st.fixed_dictionaries({sub.name: st.none() | _str for sub in t})
    else:  # pragma: no cover - a new type in the schema needs a strategy here
        raise AssertionError(f"no strategy for {f}")
    return v if not f.nullable else st.none() | v


ROW = st.fixed_dictionaries({f.name: _value(f) for f in SHARD_SCHEMA})


@FAST
@given(rows=st.lists(ROW, max_size=6))
def test_valid_rows_round_trip_through_parquet(rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("rt") / "part.parquet"
    table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)
    write_parquet(table.append_column("_work", pa.array([0] * len(rows), pa.int8())), path, SHARD_SCHEMA)
    back = pq.read_table(path)
    assert back.schema.equals(SHARD_SCHEMA, check_metadata=True)
    assert back.to_pylist() == rows
    assert not list(path.parent.glob("*.tmp"))


@FAST
@given(
    rows=st.lists(ROW, min_size=1, max_size=5),
    column=st.sampled_from([f.name for f in SHARD_SCHEMA if not f.nullable]),
    data=st.data(),
)
def test_rows_with_null_in_a_required_column_are_refused(
    rows: list[dict[str, Any]], column: str, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bad = data.draw(st.integers(0, len(rows) - 1))
    rows[bad] = rows[bad] | {column: None}
    loose = pa.schema([f.with_nullable(True) for f in SHARD_SCHEMA])
    path = tmp_path_factory.mktemp("bad") / "part.parquet"
    with pytest.raises(ValueError, match=rf"column '{column}' holds \d+ nulls but is not nullable"):
        write_parquet(pa.Table.from_pylist(rows, schema=loose), path, SHARD_SCHEMA)
    assert not path.exists() and not list(path.parent.iterdir())  # nothing written, not even a temporary


@FAST
@given(rows=st.lists(ROW, min_size=1, max_size=4), text=st.sampled_from(TEXT_FIELDS))
def test_polars_round_trip_keeps_text_exactly(
    rows: list[dict[str, Any]], text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path: Path = tmp_path_factory.mktemp("pl") / "part.parquet"
    write_parquet(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), path, SHARD_SCHEMA)
    assert pl.read_parquet(path)[text].to_list() == [r[text] for r in rows]
