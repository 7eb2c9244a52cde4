"""Shared helpers for the store, resume, schema and CLI tests (not a conftest: imported explicitly).

Builds use a small input made from the bundled sample plus a few records that exercise every
output set: an exact duplicate (rejected), a record without an id (derived id) and an unreadable
line (quarantined).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl

from corpusalign.config import BuildConfig, load_config
from corpusalign.store import manifest as mf

SAMPLE = Path(str(files("corpusalign") / "data" / "sample"))
TATOEBA = SAMPLE / "tatoeba_en_de_ja.jsonl"
UDHR = SAMPLE / "udhr_en_de_ja_sw.jsonl"


def sample_lines(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def write_input(path: Path, n_tatoeba: int = 120, n_udhr: int = 20) -> Path:
    """A JSONL input of ``n_tatoeba + n_udhr + 3`` records, one of them unreadable."""
    lines = sample_lines(TATOEBA, n_tatoeba) + sample_lines(UDHR, n_udhr)
    first = json.loads(lines[0])
    extra = [
        # same English text as the first record under another id: an exact duplicate
        json.dumps({**first, "concept_id": "dup.of.first"}, ensure_ascii=False),
        # no id: derived from the normalised source text
        json.dumps({"en": "A record without an id gets a derived one.", "de": "Ein Datensatz ohne Kennung."}),
        "{this is not json",
    ]
    lines = lines[:7] + extra + lines[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def n_records(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def small_config(**overrides: Any) -> BuildConfig:
    """en -> de, ja, sw; batches of 50 records; shards of at most 7 rows (many shards)."""
    base: dict[str, Any] = {
        "src": "en",
        "tgt": ("de", "ja", "sw"),
        "batch_size": 50,
        "shards__max_rows": 7,
        "verify__enabled": False,  # store and resume tests; verification has its own tests
    }
    base.update(overrides)
    return load_config(None, **base)


def shard_frame(out: Path) -> pl.DataFrame:
    """All shard rows of a corpus, in the manifest's shard order."""
    m = mf.read_manifest(out)
    return pl.concat([pl.read_parquet(out / e["path"]) for e in m["shards"]])


def content_hash(df: pl.DataFrame) -> str:
    """Order-independent hash of a frame's content (rows sorted by concept and language)."""
    df = df.sort("concept_id", "lang")
    return hashlib.sha256(df.write_ndjson().encode()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reseal(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` back with a fresh digest, as a tool that rewrites it consistently would."""
    (out / mf.MANIFEST).write_text(json.dumps(mf.seal(manifest), indent=2, ensure_ascii=False), encoding="utf-8")


def outcome(out: Path) -> dict[str, Any]:
    """What must be equal between an interrupted-and-resumed build and an uninterrupted one."""
    m = mf.read_manifest(out)
    shard_files = sorted(p.relative_to(out).as_posix() for p in (out / "shards").glob("*"))
    return {
        "shard_files": shard_files,
        "shards": [(e["path"], e["rows"], e["rows_per_lang"], e["concepts"]) for e in m["shards"]],
        "rows": content_hash(shard_frame(out)),
        "counts": m["counts"],
        "drop_reasons": m["drop_reasons"],
        "accounting": m["accounting"],
        "rejected": [(e["path"], e["rows"]) for e in m["rejected"]],
        "quarantine": [(e["path"], e["rows"]) for e in m["quarantine"]],
    }


def interrupt_on(
    func: Callable[..., Any], k: int, when: Callable[..., bool] | None = None, before: Callable[..., Any] | None = None
) -> Callable[..., Any]:
    """Wrap ``func``: raise ``KeyboardInterrupt`` on the ``k``-th call whose arguments match ``when``
    (after running ``before`` with the same arguments). A plain function, so it also works as a method.
    ``wrapper.state["fired"]`` tells whether it fired."""
    state = {"calls": 0, "fired": False}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not state["fired"] and (when is None or when(*args, **kwargs)):
            state["calls"] += 1
            if state["calls"] == k:
                state["fired"] = True
                if before is not None:
                    before(*args, **kwargs)
                raise KeyboardInterrupt
        return func(*args, **kwargs)

    wrapper.state = state  # type: ignore[attr-defined]
    return wrapper


def write_synthetic_corpus(out: Path, concepts: int, shard_rows: int = 20_000, batch: int = 10_000, seed: int = 0) -> Path:
    """A finished-looking en/de/ja corpus of ``concepts`` concepts written straight to shards, rejected
    files and a manifest (no pipeline run: fast at any size), with varied scores for the report:

    * about 3% of the concepts are exact duplicates of an earlier concept (all rows rejected,
      ``dup_of`` its id; clusters span rejected files), 1% near duplicates;
    * about 5% of the target rows are rejected as ``misaligned``, 2% of the ja rows are ``missing_target``;
    * every kept and judged row has scores: ties (``script_ok`` mostly 1.0), negatives
      (``len_log_ratio``), a wide range (``margin``), some nulls and NaN.

    Shards hold whole concepts sorted by (concept_id, lang), at most about ``shard_rows`` rows each;
    rejected files hold the rejected rows of ``batch`` concepts each, as a build writes them.
    """
    import numpy as np
    import pyarrow as pa

    from corpusalign.store.files import write_parquet
    from corpusalign.store.schema import REJECTED_SCHEMA, SHARD_SCHEMA

    rng = np.random.default_rng(seed)
    langs, src = ["en", "de", "ja"], "en"
    ids = np.array([f"syn.{i:09d}" for i in range(concepts)], dtype=object)
    kind = rng.choice(3, size=concepts, p=[0.96, 0.03, 0.01])  # 0 fresh, 1 duplicate, 2 near duplicate
    kind[:10] = 0
    dup_of = np.where(kind > 0, ids[(rng.random(concepts) * np.arange(concepts) * 0.5).astype(np.int64)], None)
    n = concepts * 3
    lang = np.tile(np.array(langs, dtype=object), concepts)
    cid = np.repeat(ids, 3)
    is_src = lang == src
    length = rng.integers(5, 200, size=n)
    base = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. " * 3
    text = np.array([base[:k] for k in length], dtype=object)
    reason = np.full(n, None, dtype=object)
    reason[np.repeat(kind == 1, 3)] = "duplicate"
    reason[np.repeat(kind == 2, 3)] = "near_duplicate"
    free = reason == None  # noqa: E711 - numpy elementwise
    missing = free & (lang == "ja") & (rng.random(n) < 0.02)
    reason[missing] = "missing_target"
    text[missing] = None
    reason[free & ~missing & ~is_src & (rng.random(n) < 0.05)] = "misaligned"
    judged = ~is_src & ~missing

    def score(values: np.ndarray, nulls: float = 0.0) -> pa.Array:
        values = values.astype(np.float32)
        values[rng.random(n) < 0.001] = np.nan
        mask = ~judged | (rng.random(n) < nulls)
        return pa.array(values, type=pa.float32(), mask=mask)

    lid_lang = np.where(rng.random(n) < 0.97, lang, "fr").astype(object)
    lid_lang[rng.random(n) < 0.01] = None
    columns = {
        "concept_id": pa.array(cid, pa.string()),
        "lang": pa.array(lang, pa.string()),
        "text": pa.array(text, pa.string()),
        "origin": pa.array(np.where(is_src, "source", np.where(missing, None, "human")), pa.string()),
        "translator": pa.array(np.where(is_src | missing, None, "tm"), pa.string()),
        "source_file": pa.array(np.full(n, "synthetic.jsonl", dtype=object), pa.string()),
        "source_line": pa.array(np.repeat(np.arange(1, concepts + 1), 3), pa.int64()),
        "lid_lang": pa.array(lid_lang, pa.string()),
        "lid_score": pa.array(rng.random(n).astype(np.float32), pa.float32()),
        "dup_of": pa.array(np.where(np.repeat(kind > 0, 3), np.repeat(dup_of, 3), None), pa.string()),
        "lid_expected": pa.array(rng.beta(8, 1, n).astype(np.float32), pa.float32()),
        "verify_p": score(rng.beta(5, 1, n), nulls=0.01),
        "cos": score(rng.normal(0.85, 0.05, n)),
        "margin": score(rng.lognormal(0.1, 0.3, n)),
        "len_log_ratio": score(rng.normal(0.0, 0.4, n)),
        "num_agree": score(np.where(rng.random(n) < 0.9, 1.0, rng.random(n))),
        "copy_sim": score(rng.random(n) * 0.3),
        "script_ok": score(np.where(rng.random(n) < 0.95, 1.0, rng.random(n))),
        "drop_reason": pa.array(reason, pa.string()),
        "drop_detail": pa.array(np.where(reason == None, None, "synthetic"), pa.string()),  # noqa: E711
    }
    table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in REJECTED_SCHEMA})
    kept_mask = pa.array(reason == None)  # noqa: E711
    kept, rejected = table.filter(kept_mask), table.filter(pa.compute.invert(kept_mask))
    out.mkdir(parents=True, exist_ok=True)

    shards: list[dict[str, Any]] = []
    kept_ids = kept.column("concept_id").to_numpy(zero_copy_only=False)
    start = 0
    while start < kept.num_rows:
        end = min(start + shard_rows, kept.num_rows)
        while end < kept.num_rows and kept_ids[end] == kept_ids[end - 1]:  # cut between concepts
            end += 1
        rel = f"shards/part-{len(shards):05d}-000.parquet"
        write_parquet(kept.slice(start, end - start), out / rel, SHARD_SCHEMA)
        shards.append(mf.file_entry(out, rel))
        start = end
    rejected_entries: list[dict[str, Any]] = []
    line = rejected.column("source_line").to_numpy()
    for b in range(0, concepts, batch):
        part = rejected.filter(pa.array((line > b) & (line <= b + batch)))
        if part.num_rows:
            rel = f"rejected/part-{b // batch:06d}.parquet"
            write_parquet(part, out / rel, REJECTED_SCHEMA)
            rejected_entries.append(mf.file_entry(out, rel))

    kept_frame = pl.from_arrow(kept.select(["concept_id", "lang"]))
    assert isinstance(kept_frame, pl.DataFrame)
    per_concept = kept_frame.group_by("concept_id").len()
    rows_per_lang = dict(kept_frame.group_by("lang").len().iter_rows())
    drop_reasons: dict[str, dict[str, int]] = {}
    for r, lg, k in pl.from_arrow(rejected.select(["drop_reason", "lang"])).group_by("drop_reason", "lang").len().iter_rows():  # type: ignore[union-attr]
        drop_reasons.setdefault(r, {})[lg] = k
    manifest = {
        "format": mf.FORMAT,
        "schema_version": 3,
        "created": "2025-01-01T00:00:00Z",
        "languages": langs,
        "source_language": src,
        "fields": ["text"],
        "shards": shards,
        "rejected": rejected_entries,
        "quarantine": [],
        "accounting": mf.accounting(concepts, 0, 3, kept.num_rows, rejected.num_rows),
        "counts": {
            "concepts": per_concept.height,
            "complete_concepts": per_concept.filter(pl.col("len") == 3).height,
            "rows": kept.num_rows,
            "rows_per_lang": rows_per_lang,
            "provenance_per_lang": {},
        },
        "drop_reasons": drop_reasons,
        "verification": {
            "embedder": "synthetic",
            "model": None,
            "gates": {"*": {"threshold": 0.5, "precision": 0.9, "recall": 0.9}},
        },
    }
    (out / mf.MANIFEST).write_text(json.dumps(mf.seal(manifest), indent=2), encoding="utf-8")
    return out
