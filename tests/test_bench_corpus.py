"""bench/make_corpus.py: the synthetic corpus the scale benchmark builds (its figures depend on it)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from conftest import load_bench_script

from corpusalign.steps.dedup import jaccard


@pytest.fixture(scope="module")
def make_corpus():
    return load_bench_script("make_corpus.py")


@pytest.fixture
def small_source(tmp_path: Path, make_corpus) -> Path:
    """150 Tatoeba sentences: few enough that records of a few hundred share sentences often."""
    sents = make_corpus.load_sentences(make_corpus.default_source())[:150]
    path = tmp_path / "source.jsonl"
    path.write_text("".join(json.dumps(dict(zip(make_corpus.LANGS, s, strict=True))) + "\n" for s in sents))
    return path


def _fresh_english(path: Path) -> list[str]:
    planted = {int(line.split("\t")[0]) for line in path.with_name(path.name + ".planted.tsv").read_text().splitlines()[1:]}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["en"].casefold() for i, r in enumerate(rows) if i not in planted]


def _similar_pairs(texts: list[str], threshold: float) -> int:
    return sum(jaccard(a, b, 5) >= threshold for a, b in itertools.combinations(texts, 2))


def test_shuffled_words_keep_records_that_share_sentences_apart(tmp_path: Path, make_corpus, small_source: Path) -> None:
    """Drawn from a small pool, records share sentences and many pairs are alike by chance; with
    --shuffle-words the same draws share words but (almost) no pair is alike, so dedup's work is the
    planted duplicates. Same seed, same bytes; the words of each text are the drawn ones."""
    plain, shuffled, again = tmp_path / "plain.jsonl", tmp_path / "shuffled.jsonl", tmp_path / "again.jsonl"
    make_corpus.make_corpus(1200, plain, seed=1, source=small_source, distinct=True)
    meta = make_corpus.make_corpus(1200, shuffled, seed=1, source=small_source, shuffle_words=True)
    make_corpus.make_corpus(1200, again, seed=1, source=small_source, shuffle_words=True)
    assert shuffled.read_bytes() == again.read_bytes()
    assert meta["shuffle_words"] and meta["records"] == 400
    chance_plain = _similar_pairs(_fresh_english(plain), 0.5)
    chance_shuffled = _similar_pairs(_fresh_english(shuffled), 0.5)
    assert chance_plain >= 20, chance_plain  # the pool is small enough to make chance near duplicates
    assert chance_shuffled <= chance_plain // 20, (chance_shuffled, chance_plain)
    vocabulary = {w for line in small_source.read_text().splitlines() for w in json.loads(line)["en"].split(" ")}
    rows = [json.loads(line) for line in shuffled.read_text().splitlines()]
    assert all(set(r["en"].split(" ")) <= vocabulary for r in rows[: make_corpus.WARMUP])  # the first are all fresh
