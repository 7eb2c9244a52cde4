"""make_noisy_set: labelled corruptions of real pairs, deterministic, nothing invented."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from corpusalign.verify.corrupt import CORRUPTIONS, UI_TEMPLATES, make_noisy_set
from corpusalign.verify.scores import placeholders


@pytest.fixture(scope="module")
def concepts(tatoeba_rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(tatoeba_rows, infer_schema_length=None)


def _strip_template(text: str) -> str:
    for template in UI_TEMPLATES:
        head, _, tail = template.partition("{text}")
        if text.startswith(head) and text.endswith(tail) and len(text) >= len(head) + len(tail):
            return text[len(head) : len(text) - len(tail)]
    return text


def test_deterministic_and_labelled(concepts: pl.DataFrame) -> None:
    a = make_noisy_set(concepts, "en", ["de", "ja"], seed=3)
    b = make_noisy_set(concepts, "en", ["de", "ja"], seed=3)
    c = make_noisy_set(concepts, "en", ["de", "ja"], seed=4)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.columns == ["concept_id", "lang", "src_text", "tgt_text", "label", "kind"]
    assert (a["label"] == (a["kind"] == "good")).all()
    assert set(a["kind"].unique()) <= {"good", *CORRUPTIONS}
    share = 1 - a["label"].mean()
    assert 0.35 < share < 0.65
    assert a.group_by("concept_id", "lang").len()["len"].max() == 1


def test_every_corruption_appears_with_short_texts(concepts: pl.DataFrame) -> None:
    big = pl.concat([make_noisy_set(concepts, "en", ["de", "ja"], seed=s, corrupt_share=0.9, ui_share=0.3) for s in range(4)])
    kinds = set(big["kind"].unique())
    assert set(CORRUPTIONS) <= kinds
    short = big.filter(pl.col("src_text").map_elements(lambda t: len(_strip_template(t).split()) <= 3, return_dtype=pl.Boolean))
    short_kinds = set(short["kind"].unique())
    assert set(CORRUPTIONS) - {"placeholder_dropped"} <= short_kinds
    assert "placeholder_dropped" in set(big.filter(pl.col("src_text").str.len_chars() < 40)["kind"].unique())


def test_corruptions_are_made_of_real_texts(concepts: pl.DataFrame) -> None:
    noisy = make_noisy_set(concepts, "en", ["de", "ja"], seed=0, corrupt_share=0.8)
    by_id = {str(r["concept_id"]): r for r in concepts.iter_rows(named=True)}
    all_texts = {lang: {_strip_template(t) for t in concepts[lang].drop_nulls()} for lang in ("en", "de", "ja", "fr", "es")}
    for row in noisy.iter_rows(named=True):
        real = by_id[row["concept_id"]]
        src, tgt, kind = _strip_template(row["src_text"]), _strip_template(row["tgt_text"]), row["kind"]
        assert src == real["en"]
        good = real[row["lang"]]
        if kind == "good":
            assert tgt == good
        elif kind == "untranslated":
            assert row["tgt_text"] == row["src_text"]
        elif kind == "wrong_language":
            assert tgt in {real.get(lang) for lang in ("de", "ja", "fr", "es") if lang != row["lang"]}
        elif kind == "misaligned":
            assert tgt in all_texts[row["lang"]] and tgt != good
        elif kind == "truncated":
            cut = tgt.rstrip(".!?。！？")
            assert good.startswith(cut)
            if not placeholders(row["src_text"]):  # a templated text is cut as a whole, template included
                assert 0.2 * len(good) <= len(cut) <= 0.65 * len(good)
        elif kind == "extra_content":
            assert tgt.startswith(good) and len(tgt) > len(good) + 1
        elif kind == "placeholder_dropped":
            assert placeholders(row["src_text"]) and placeholders(row["tgt_text"]) != placeholders(row["src_text"])
        elif kind == "number_changed":
            assert row["tgt_text"] != good


def test_truncations_may_keep_their_final_punctuation(concepts: pl.DataFrame) -> None:
    plain = make_noisy_set(concepts, "en", ["de"], seed=2, corrupt_share=1.0, ui_share=0.0).filter(pl.col("kind") == "truncated")
    kept = make_noisy_set(concepts, "en", ["de"], seed=2, corrupt_share=1.0, ui_share=0.0, keep_punct_share=1.0)
    kept = kept.filter(pl.col("kind") == "truncated")
    assert plain.height > 5 and kept.height == plain.height
    assert not plain["tgt_text"].str.contains(r"[.!?]$").any()
    assert kept["tgt_text"].str.contains(r"[.!?]$").mean() > 0.9


def test_placeholders_only_where_the_source_has_some(concepts: pl.DataFrame) -> None:
    noisy = make_noisy_set(concepts, "en", ["de"], seed=1, corrupt_share=1.0, ui_share=0.0)
    assert "placeholder_dropped" not in set(noisy["kind"])
    assert noisy.filter(pl.col("src_text").map_elements(lambda t: bool(placeholders(t)), return_dtype=pl.Boolean)).height == 0


def test_repeated_sources_are_skipped_and_bad_arguments_rejected() -> None:
    df = pl.DataFrame({"concept_id": ["a", "b", "c"], "en": ["Hi.", "Hi.", "Bye."], "de": ["Hallo.", "Servus.", "Tschüss."]})
    out = make_noisy_set(df, "en", "de", seed=0, corrupt_share=0.0)
    assert out["concept_id"].to_list() == ["a", "c"]
    with pytest.raises(ValueError):
        make_noisy_set(df, "en", ["de"], seed=0, corrupt_share=1.5)
    with pytest.raises(ValueError):
        make_noisy_set(df, "xx", ["de"], seed=0)
