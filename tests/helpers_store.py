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
