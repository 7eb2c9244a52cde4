"""What a finished build quarantined, said with ``file:line``: its most common reasons (for the build
summary) and the input files none of whose records got through (``corpusalign build`` exits 1 for those).

Both read the Parquet files the manifest lists; nothing is re-run. Every record that was read becomes
one row per build language in ``shards/`` or ``rejected/`` (with its ``source_file``) or one row in
``quarantine/``, so a file that appears in ``quarantine/`` and nowhere else lost every record.

Example::

    for reason in top_quarantine_reasons(manifest, "corpus"):
        print(reason.describe())  # data.csv:2 no source text: ... (x2)
    fully_quarantined_files(manifest, "corpus")  # {"data.csv": [(2, "no source text: ..."), ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from corpusalign.store.manifest import entry_path

#: Characters of a quarantine reason shown in the terminal (the full text is in ``quarantine/``).
MAX_REASON_CHARS = 160


@dataclass(frozen=True)
class QuarantineReason:
    """One quarantine reason: its first ``file:line`` (in input order) and how many records it hit."""

    error: str
    source_file: str
    source_line: int
    count: int

    def describe(self) -> str:
        text = self.error if len(self.error) <= MAX_REASON_CHARS else self.error[: MAX_REASON_CHARS - 3] + "..."
        return f"{self.source_file}:{self.source_line} {text}" + (f" (x{self.count:,})" if self.count > 1 else "")


def _read(root: Path, entries: list[dict[str, Any]], columns: list[str]) -> pl.DataFrame:
    paths = [entry_path(root, e.get("path")) for e in entries]
    if not paths:
        return pl.DataFrame(schema={c: pl.Int64 if c == "source_line" else pl.String for c in columns})
    return pl.scan_parquet(paths).select(columns).collect()


def _quarantine(manifest: dict[str, Any], root: str | Path) -> pl.DataFrame:
    """The quarantined rows in input order (quarantine parts are numbered by input batch)."""
    cols = ["source_file", "source_line", "error"]
    return _read(Path(root), manifest.get("quarantine", []), cols).with_row_index("_order")


def top_quarantine_reasons(manifest: dict[str, Any], root: str | Path, limit: int = 3) -> list[QuarantineReason]:
    """The ``limit`` most frequent quarantine reasons, each with the first place it occurred."""
    q = _quarantine(manifest, root)
    if q.height == 0:
        return []
    top = (
        q.group_by("error")
        .agg(
            pl.len().alias("count"),
            pl.col("_order").min(),
            pl.col("source_file").sort_by("_order").first(),
            pl.col("source_line").sort_by("_order").first(),
        )
        .sort(["count", "_order"], descending=[True, False])
        .head(limit)
    )
    return [QuarantineReason(r["error"] or "", r["source_file"], r["source_line"], r["count"]) for r in top.iter_rows(named=True)]


def fully_quarantined_files(manifest: dict[str, Any], root: str | Path, examples: int = 3) -> dict[str, list[tuple[int, str]]]:
    """Input files every record of which was quarantined: ``{file: [(line, error), ...]}`` (the first
    ``examples`` reasons of each), in input order; empty when every file gave at least one row."""
    q = _quarantine(manifest, root)
    if q.height == 0:
        return {}
    files = q["source_file"].unique(maintain_order=True).to_list()
    root = Path(root)
    got_through: set[str] = set()
    for key in ("shards", "rejected"):
        paths = [entry_path(root, e.get("path")) for e in manifest.get(key, [])]
        if paths:  # one column, filtered while scanning: a large corpus need not fit in memory
            seen = pl.scan_parquet(paths).select("source_file").filter(pl.col("source_file").is_in(files)).unique()
            got_through.update(seen.collect()["source_file"].to_list())
    out: dict[str, list[tuple[int, str]]] = {}
    for name in files:
        if name in got_through:
            continue
        rows = q.filter(pl.col("source_file") == name).head(examples)
        out[name] = [(line, error) for line, error in zip(rows["source_line"], rows["error"], strict=True)]
    return out


def quarantine_summary(manifest: dict[str, Any], root: str | Path, limit: int = 3) -> list[str]:
    """A few lines for the terminal: how many records were quarantined and the top reasons with file:line."""
    n = manifest.get("accounting", {}).get("quarantined_rows", 0)
    if not n:
        return []
    try:
        reasons = top_quarantine_reasons(manifest, root, limit)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # a summary never fails a finished build
        return [f"quarantined {n:,} record(s); quarantine/ unreadable: {exc}"]
    lines = [f"quarantined {n:,} record(s) (see {Path(root) / 'quarantine'}); top reasons:"]
    lines += [f"  {r.describe()}" for r in reasons]
    return lines
