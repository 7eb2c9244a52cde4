"""Terminal summaries of a build: counts per language, provenance, drop reasons, samples."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from corpusalign.store.manifest import NOT_IN_INPUT_REASONS, language_warnings, rows_not_in_input


def print_build_summary(manifest: dict[str, Any], root: str | Path, seconds: float | None, console: Console) -> None:
    counts = manifest["counts"]
    acct = manifest["accounting"]
    langs = manifest["languages"]
    drops = {r: v for r, v in manifest.get("drop_reasons", {}).items() if r not in NOT_IN_INPUT_REASONS}
    absent = rows_not_in_input(manifest)
    table = Table(title=f"corpus in {root}", title_justify="left")
    table.add_column("language")
    table.add_column("kept rows", justify="right")
    table.add_column("made by (origin:translator)")
    table.add_column("rejected", justify="right")
    table.add_column("top reasons")
    table.add_column("not in the input", justify="right")
    for lang in langs:
        rejected = {r: v[lang] for r, v in drops.items() if lang in v}
        made_by = counts.get("provenance_per_lang", {}).get(lang, {})
        table.add_row(
            lang + (" (source)" if lang == manifest["source_language"] else ""),
            f"{counts['rows_per_lang'].get(lang, 0):,}",
            ", ".join(f"{k} {v:,}" for k, v in made_by.items()) or "-",
            f"{sum(rejected.values()):,}",
            ", ".join(f"{r} {n:,}" for r, n in sorted(rejected.items(), key=lambda kv: -kv[1])[:3]) or "-",
            f"{absent.get(lang, 0):,}",
        )
    console.print(table)
    for warning in language_warnings(manifest):  # a target language that kept nothing
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(
        f"concepts kept: {counts['concepts']:,} ({counts['complete_concepts']:,} with every language) in "
        f"{len(manifest['shards'])} shard(s); input records: {acct['input_records']:,}; quarantined: {acct['quarantined_rows']:,}"
    )
    v = manifest.get("verification")
    console.print(
        f"verified with {v['embedder']} ({v['model']}); the engine is part of the build fingerprint"
        if v
        else "verification off: pairs were not checked for semantic equivalence"
    )
    tr = manifest.get("translation") or {}
    if tr.get("requested"):
        console.print(
            f"translated: {tr.get('filled', 0):,} of {tr['requested']:,} missing rows "
            f"(cache hits {tr.get('cache_hits', 0):,}, model calls for {tr.get('cache_misses', 0):,}); "
            f"no translation {tr.get('not_found', 0):,}; failed {tr.get('failed', 0):,}"
        )
        if tr.get("failed"):
            console.print(
                f"[yellow]{tr['failed']:,} translation(s) failed[/yellow] (rejected as translation_failed): "
                "run the same command again to retry them; the cache answers the rest."
            )
    check = "[green]holds[/green]" if acct["ok"] else "[red]VIOLATED[/red]"
    n_absent = sum(absent.values())
    console.print(
        f"accounting {check}: input rows {acct['input_rows']:,} ({acct['concepts_read']:,} concepts x "
        f"{acct['languages']} languages + {acct['quarantined_rows']:,} quarantined records) = kept {acct['kept_rows']:,} "
        f"+ rejected {acct['rejected_rows'] - n_absent:,} + not in the input {n_absent:,} "
        f"+ quarantined {acct['quarantined_rows']:,}"
    )
    from corpusalign.store.quarantine import quarantine_summary

    for line in quarantine_summary(manifest, root):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if seconds is not None:
        console.print(f"built in {seconds:.1f} s. Next: corpusalign validate {root}  |  corpusalign inspect {root}")


def print_samples(manifest: dict[str, Any], root: str | Path, n: int, seed: int, console: Console) -> None:
    if n <= 0 or not manifest["shards"]:
        return
    root = Path(root)
    rng = random.Random(seed)
    shard = rng.choice(manifest["shards"])
    from corpusalign.store.manifest import entry_path

    rows = pl.read_parquet(entry_path(root, shard.get("path")))
    ids = rows["concept_id"].unique(maintain_order=True).to_list()
    fields = manifest.get("fields", ["text"])
    for cid in rng.sample(ids, min(n, len(ids))):
        table = Table(title=f"concept {cid}", title_justify="left", show_lines=True)
        table.add_column("lang")
        for f in fields:
            table.add_column(f)
        table.add_column("origin")
        table.add_column("lid")
        for row in rows.filter(pl.col("concept_id") == cid).iter_rows(named=True):
            lid = f"{row['lid_lang']} {row['lid_score']:.2f}" if row["lid_lang"] else "-"
            table.add_row(
                row["lang"], *((row[f] or "")[:300] for f in fields), f"{row['origin']}:{row['translator'] or '-'}", lid
            )
        console.print(table)
