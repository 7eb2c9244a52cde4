"""Training data side: ShardDataset over a real built corpus and the batch samplers.

One corpus is built per module from 60 real Tatoeba records (en/de/ja) with some German and Japanese
translations removed, so some concepts lack a language; shards of at most 20 rows (several shards).
Sampler properties are checked with hypothesis over K, language subsets, ranks (1-4), drop_last,
the missing-language policy, seed and epoch, against the shards read back independently with polars.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusalign.config import load_config
from corpusalign.runner import build
from corpusalign.store import manifest as mf
from corpusalign.training import CorruptCorpusError, ShardDataset, split_fraction
from corpusalign.training.sampler import (
    AlignedBatchSampler,
    LanguageHomogeneousBatchSampler,
    RandomRowBatchSampler,
    ablation_samplers,
)

LANGS = ("en", "de", "ja")
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tatoeba_rows: list[dict[str, Any]]) -> Path:
    tmp = tmp_path_factory.mktemp("train_corpus")
    records = []
    for i, row in enumerate(tatoeba_rows[:60]):
        rec = {k: row[k] for k in ("concept_id", *LANGS) if k in row}
        if i % 7 == 3:
            rec.pop("ja", None)
        if i % 11 == 5:
            rec.pop("de", None)
        records.append(rec)
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    cfg = load_config(src="en", tgt=("de", "ja"), verify__enabled=False, shards__max_rows=20)
    result = build(cfg, [src], tmp / "corpus", progress=False)
    return Path(result.output)


@pytest.fixture(scope="module")
def ds(corpus: Path) -> ShardDataset:
    return ShardDataset(corpus)


@pytest.fixture(scope="module")
def truth(corpus: Path) -> dict[str, set[str]]:
    """concept_id -> languages it has, read from the shards without the code under test."""
    df = pl.read_parquet(sorted((corpus / "shards").glob("*.parquet")), columns=["concept_id", "lang"])
    out: dict[str, set[str]] = {}
    for cid, lang in df.iter_rows():
        out.setdefault(cid, set()).add(lang)
    return out


# ------------------------------------------------------------------------------------------ dataset


def test_corpus_has_missing_languages_and_several_shards(corpus: Path, truth: dict[str, set[str]]) -> None:
    m = mf.read_manifest(corpus)
    assert len(m["shards"]) >= 3
    assert any(langs != set(LANGS) for langs in truth.values())
    assert sum(langs == set(LANGS) for langs in truth.values()) >= 30


def test_dataset_rows_and_concepts_match_the_shards(ds: ShardDataset, corpus: Path, truth: dict[str, set[str]]) -> None:
    shards = pl.read_parquet(sorted((corpus / "shards").glob("*.parquet")), columns=["concept_id", "lang", "text"])
    expected = shards.sort("concept_id", "lang").to_dicts()
    assert len(ds) == len(expected)
    assert ds.__getitems__(list(range(len(ds)))) == expected
    assert ds[3] == expected[3] and ds[-1] == expected[-1]
    assert ds.langs == LANGS and ds.anchor == "en" and ds.fields == ("text",)
    assert ds.num_concepts == len(truth) == mf.read_manifest(corpus)["counts"]["concepts"]
    by_key = {(r["concept_id"], r["lang"]): r["text"] for r in expected}
    for c, concept in enumerate(ds.concepts()):
        assert concept.concept_id == ds.concept_id(c)
        assert set(concept.langs) == truth[concept.concept_id]
        assert concept.langs[0] == "en"  # anchor first
        for lang, row in concept.rows.items():
            assert row == {"text": by_key[(concept.concept_id, lang)]}
            assert ds[concept.indices[lang]]["lang"] == lang
        lo, hi = ds.concept_offsets[c], ds.concept_offsets[c + 1]
        assert set(ds.column("concept_id", list(range(lo, hi)))) == {concept.concept_id}


def test_dataset_language_and_field_options(corpus: Path, truth: dict[str, set[str]]) -> None:
    sub = ShardDataset(corpus, langs=["ja", "de"], fields=["text", "prompt"])
    assert sub.langs == ("ja", "de") and sub.fields == ("text", "prompt")
    assert set(sub.column("lang")) == {"de", "ja"}
    assert sub.num_concepts == sum(bool(langs & {"de", "ja"}) for langs in truth.values())
    assert all(v is None for v in sub.column("prompt"))
    assert ShardDataset(corpus, langs=["de", "en"]).langs == ("en", "de")  # anchor moved first
    with pytest.raises(ValueError, match="corpus languages"):
        ShardDataset(corpus, langs=["fr"])
    with pytest.raises(ValueError, match="fields"):
        ShardDataset(corpus, fields=["title"])


def test_held_out_split_is_a_stable_partition_by_concept(corpus: Path, ds: ShardDataset) -> None:
    train = ShardDataset(corpus, split="train", eval_fraction=0.25)
    held = ShardDataset(corpus, split="eval", eval_fraction=0.25)
    assert set(train.concept_ids).isdisjoint(held.concept_ids)
    assert set(train.concept_ids) | set(held.concept_ids) == set(ds.concept_ids)
    assert len(train) + len(held) == len(ds)  # whole concepts, every language row on one side
    assert set(held.concept_ids) == {c for c in ds.concept_ids if split_fraction(c) < 0.25}
    assert 0 < held.num_concepts < ds.num_concepts
    assert ShardDataset(corpus, split="eval", eval_fraction=0.25, check=False).concept_ids == held.concept_ids
    # the split depends only on the concept id: the same under a language subset
    held_ja = ShardDataset(corpus, split="eval", eval_fraction=0.25, langs=["en", "ja"])
    assert set(held_ja.concept_ids) <= set(held.concept_ids)
    assert ShardDataset(corpus, split="eval", eval_fraction=0.0).num_concepts == 0
    assert ShardDataset(corpus, split="eval", split_salt="other", eval_fraction=0.25).concept_ids != held.concept_ids


# --------------------------------------------------------------------------------- aligned sampler

#: None: the dataset's languages; a list: those plus the anchor (always requested)
lang_subsets = st.none() | st.lists(st.sampled_from(LANGS), unique=True, max_size=3)


@SETTINGS
@given(
    k=st.integers(1, 9),
    langs=lang_subsets,
    num_replicas=st.integers(1, 4),
    drop_last=st.booleans(),
    missing=st.sampled_from(["skip_concept", "partial"]),
    min_langs=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 5),
)
def test_aligned_batches_hold_whole_concepts(
    ds: ShardDataset,
    truth: dict[str, set[str]],
    k: int,
    langs: list[str] | None,
    num_replicas: int,
    drop_last: bool,
    missing: str,
    min_langs: int,
    seed: int,
    epoch: int,
) -> None:
    requested = set(LANGS) if langs is None else set(langs) | {"en"}  # the anchor is always requested
    if missing == "skip_concept":
        min_langs = 1
    kw = dict(langs=langs, missing=missing, min_langs=min_langs, seed=seed, drop_last=drop_last)
    if missing == "skip_concept":
        eligible = {c for c, have in truth.items() if requested <= have}
    else:
        eligible = {c for c, have in truth.items() if len(requested & have) >= min_langs}
    n = len(eligible)

    def run(ep: int) -> list[list[list[str]]]:
        """per rank, per batch: the concept ids in batch order (one entry per concept)."""
        ranks = []
        for rank in range(num_replicas):
            s = AlignedBatchSampler(ds, k, num_replicas=num_replicas, rank=rank, **kw)
            s.set_epoch(ep)
            assert s.langs[0] == "en" and set(s.langs) == requested
            batches = list(s)
            assert len(s) == len(batches)
            per_batch = []
            for batch in batches:
                rows = ds.__getitems__(batch)
                cids = [r["concept_id"] for r in rows]
                # group consecutive rows of a concept; every requested language it has, anchor first
                groups: list[tuple[str, list[str]]] = []
                for r in rows:
                    if groups and groups[-1][0] == r["concept_id"]:
                        groups[-1][1].append(r["lang"])
                    else:
                        groups.append((r["concept_id"], [r["lang"]]))
                assert len(groups) == k
                for cid, got in groups:
                    assert cid in eligible
                    assert got == [lg for lg in s.langs if lg in truth[cid]]  # whole concept, anchor first
                    assert got[0] == "en"
                    assert cids.count(cid) == len(got) or n < k  # not repeated inside a batch (unless n < k)
                if missing == "skip_concept":
                    assert len(batch) == k * len(requested) == s.rows_per_batch
                per_batch.append([cid for cid, _ in groups])
            ranks.append(per_batch)
        return ranks

    ranks = run(epoch)
    counts = [len(r) for r in ranks]
    assert len(set(counts)) == 1  # every rank yields the same number of batches
    b = counts[0]
    step = k * num_replicas
    assert b == (n // step if drop_last else -(-n // step))
    occurrences = Counter(cid for per_batch in ranks for batch in per_batch for cid in batch)
    total = b * step
    assert sum(occurrences.values()) == total
    if drop_last:
        assert set(occurrences.values()) <= {1}  # no concept twice in an epoch, over all ranks
        assert n - total < step  # only the remainder is dropped
    else:
        assert set(occurrences) == eligible  # every eligible concept, exactly once plus padding
        assert total - n < step or n == 0
        assert set(occurrences.values()) <= {total // n, -(-total // n)} if n else True
    # a concept never appears on two ranks unless it is a padding repeat
    if drop_last or total <= n:
        seen = [set(c for batch in per_batch for c in batch) for per_batch in ranks]
        assert sum(len(x) for x in seen) == len(set().union(*seen))
    # set_epoch: reproducible, and another epoch reorders
    assert run(epoch) == ranks
    if total >= 3:
        assert run(epoch + 1) != ranks


def test_aligned_sampler_without_shuffle_and_validation(ds: ShardDataset) -> None:
    s = AlignedBatchSampler(ds, 2, shuffle=False)
    first = ds.__getitems__(next(iter(s)))
    assert [r["concept_id"] for r in first][0] == ds.concept_id(int(s.concepts[0]))
    for bad in (
        dict(missing="drop"),
        dict(num_replicas=2, rank=2),
        dict(langs=["fr"]),
        dict(anchor="sw"),
    ):
        with pytest.raises(ValueError):
            AlignedBatchSampler(ds, 2, **bad)
    with pytest.raises(ValueError):
        AlignedBatchSampler(ds, 0)


def test_anchor_always_requested_and_absent_anchor_tolerated(corpus: Path) -> None:
    full = ShardDataset(corpus)
    assert AlignedBatchSampler(full, 3, langs=["ja"]).langs == ("en", "ja")
    no_en = ShardDataset(corpus, langs=["de", "ja"])
    s = AlignedBatchSampler(no_en, 3, missing="partial")
    assert s.anchor is None and s.langs == ("de", "ja")
    assert len(list(s)) == len(s) > 0


def test_no_anchor_batches_hold_whole_concepts_without_the_anchor(ds: ShardDataset) -> None:
    """The anchor ablation: the aligned sampler's concepts, each in every other language, never English."""
    s = AlignedBatchSampler(ds, 3, with_anchor=False, seed=1)
    assert s.langs == ("de", "ja")
    with_en = AlignedBatchSampler(ds, 3, seed=1)
    assert set(s.concepts) >= set(with_en.concepts), "a concept need not have English to be drawn"
    batches = list(s)
    assert len(batches) == len(s) > 0
    for batch in batches:
        rows = ds.__getitems__(batch)
        assert {r["lang"] for r in rows} <= {"de", "ja"}
        by_concept = Counter(r["concept_id"] for r in rows)
        assert len(by_concept) == 3 and set(by_concept.values()) == {2}, "three whole concepts, two languages each"
    assert AlignedBatchSampler(ds, 3, langs=["de"], with_anchor=False).langs == ("de",)
    with pytest.raises(ValueError, match="no language is left"):
        AlignedBatchSampler(ds, 3, langs=["en"], with_anchor=False)
    with pytest.raises(ValueError, match="needs an anchor"):
        AlignedBatchSampler(ShardDataset(ds.root, langs=["de", "ja"]), 3, with_anchor=False)


def test_works_as_a_dataloader_batch_sampler(ds: ShardDataset) -> None:
    from torch.utils.data import DataLoader

    s = AlignedBatchSampler(ds, 4, seed=3)
    loader = DataLoader(ds, batch_sampler=s, collate_fn=lambda rows: rows)
    assert list(loader) == [ds.__getitems__(b) for b in s]


# ---------------------------------------------------------------------------------------- baselines


def _pool(ds: ShardDataset, **kw: Any) -> Counter:
    s = AlignedBatchSampler(ds, 1, drop_last=True, **kw)
    return Counter(i for b in s for i in b)


@SETTINGS
@given(
    k=st.integers(1, 6),
    langs=lang_subsets,
    num_replicas=st.integers(1, 4),
    drop_last=st.booleans(),
    missing=st.sampled_from(["skip_concept", "partial"]),
    seed=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 5),
)
def test_baselines_share_pool_size_and_rank_contract(
    ds: ShardDataset, k: int, langs: list[str] | None, num_replicas: int, drop_last: bool, missing: str, seed: int, epoch: int
) -> None:
    kw = dict(langs=langs, missing=missing, seed=seed, drop_last=drop_last)
    samplers = ablation_samplers(ds, k, **kw)
    pool = _pool(ds, langs=langs, missing=missing)  # every pool row exactly once
    assert set(pool.values()) == {1}
    size = samplers["random_rows"].rows_per_batch
    assert size == samplers["language_homogeneous"].rows_per_batch == k * len(samplers["aligned"].langs)
    for cls in (RandomRowBatchSampler, LanguageHomogeneousBatchSampler):
        ranks = []
        for rank in range(num_replicas):
            s = cls(ds, size, num_replicas=num_replicas, rank=rank, **kw)
            s.set_epoch(epoch)
            got = list(s)
            assert len(got) == len(s)
            assert got == list(s)  # same epoch, same batches
            ranks.append(got)
        assert len({len(r) for r in ranks}) == 1
        rows = Counter(i for r in ranks for b in r for i in b)
        assert set(rows) <= set(pool)
        for r in ranks:
            for b in r:
                assert len(b) == size
                if cls is LanguageHomogeneousBatchSampler:
                    assert len(set(ds.column("lang", b))) == 1
        if drop_last:
            assert set(rows.values()) <= {1}
        else:
            assert set(rows) == set(pool)


def test_random_rows_mix_languages_and_split_concepts_on_real_data(ds: ShardDataset) -> None:
    s = RandomRowBatchSampler(ds, 12, seed=0)
    batches = list(s)
    mixed = [b for b in batches if len(set(ds.column("lang", b))) > 1]
    assert len(mixed) == len(batches)  # 12 random rows of 3 languages: every batch mixes here
    where: dict[str, set[int]] = {}
    for n, b in enumerate(batches):
        for cid in ds.column("concept_id", b):
            where.setdefault(cid, set()).add(n)
    split = [c for c, bs in where.items() if len(bs) > 1]
    assert len(split) > len(where) // 2  # most concepts are split across batches


def test_homogeneous_batches_cover_each_language(ds: ShardDataset, truth: dict[str, set[str]]) -> None:
    s = LanguageHomogeneousBatchSampler(ds, 8, seed=1, drop_last=False, missing="partial")
    langs_seen = Counter()
    for b in s:
        (lang,) = set(ds.column("lang", b))
        langs_seen[lang] += 1
    want = {lg: -(-sum(lg in have for have in truth.values()) // 8) for lg in LANGS}
    assert dict(langs_seen) == want


def test_aligned_and_baselines_draw_the_same_rows(ds: ShardDataset) -> None:
    for missing in ("skip_concept", "partial"):
        pool = set(_pool(ds, missing=missing, langs=["de", "ja"]))
        for s in ablation_samplers(ds, 5, missing=missing, langs=["de", "ja"], drop_last=False).values():
            assert {i for b in s for i in b} == pool


# ------------------------------------------------------------------------------------ corrupt corpus


def _first_shard(root: Path) -> Path:
    return root / mf.read_manifest(root)["shards"][0]["path"]


def _flip_byte(root: Path) -> None:
    p = _first_shard(root)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _truncate(root: Path) -> None:
    p = _first_shard(root)
    p.write_bytes(p.read_bytes()[:-100])


def _delete(root: Path) -> None:
    _first_shard(root).unlink()


def _extra_file(root: Path) -> None:
    shutil.copy(_first_shard(root), root / "shards" / "part-99999-000.parquet")


def _edit_manifest(root: Path) -> None:
    m = mf.read_manifest(root)
    m["counts"]["concepts"] += 1
    (root / mf.MANIFEST).write_text(json.dumps(m), encoding="utf-8")


def _schema_mismatch(root: Path) -> None:
    """A shard rewritten with a column more, its size, checksum and the manifest digest updated."""
    p = _first_shard(root)
    t = pq.read_table(p)
    pq.write_table(t.append_column("extra", pa.array([1] * t.num_rows)), p)
    m = mf.read_manifest(root)
    m["shards"][0].update(mf.file_entry(root, m["shards"][0]["path"]))
    (root / mf.MANIFEST).write_text(json.dumps(mf.seal(m)), encoding="utf-8")


@pytest.mark.parametrize(
    "damage, message",
    [
        (_flip_byte, "sha256 differs"),
        (_truncate, "truncated"),
        (_delete, "missing"),
        (_extra_file, "not listed in the manifest"),
        (_edit_manifest, "digest does not match"),
        (_schema_mismatch, "schema differs"),
    ],
)
def test_corrupt_corpus_is_refused(corpus: Path, tmp_path: Path, damage: Any, message: str) -> None:
    root = tmp_path / "copy"
    shutil.copytree(corpus, root)
    ShardDataset(root)  # sound before the damage
    damage(root)
    with pytest.raises(CorruptCorpusError, match=message) as err:
        ShardDataset(root)
    assert err.value.problems and any(message in p for p in err.value.problems)


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptCorpusError, match="manifest.json"):
        ShardDataset(tmp_path)
