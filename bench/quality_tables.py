"""The markdown tables of docs/verification.md, from the per-seed results of ``bench_quality.py``.

    python bench/bench_quality.py --embedding-cache bench/_work/quality-emb.npz --out bench/results/quality.json
    python bench/quality_tables.py bench/results/quality.json

Reads ``quality-seed*.json`` next to the summary and prints: F1 per method (overall, per domain, per
language), good pairs kept per domain and language cell, each fault kind kept per method, the
shipped method's fault kinds per language and domain (all seeds pooled), and one line per seed.
Means are over seeds, ranges in brackets; nothing is computed that the results do not hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpusalign.verify.corrupt import KINDS  # noqa: E402  (good, then the seven fault kinds)

LANGS = ("de", "ja", "sw")
DOMAINS = ("short", "sentence", "paragraph")
MAIN = "corpusalign"
CELL_TARGET = 0.95
KIND_TARGET = 0.05


def _range(values: list[float], pct: bool = False, digits: int = 3) -> str:
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.{digits}f}")
    return f"{f(mean(values))}{'%' if pct else ''} ({f(min(values))}-{f(max(values))})"


def f1_table(runs: list[dict[str, Any]], methods: list[str]) -> list[str]:
    head = "| method | F1 overall | F1 short strings | F1 sentences | F1 paragraphs | F1 de | F1 ja | F1 sw | good pairs kept |"
    out = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        ms = [r["methods"][m] for r in runs]
        cells = [_range([x["overall"]["f1"] for x in ms])]
        cells += [f"{mean(x['per_domain'][d]['f1'] for x in ms):.3f}" for d in DOMAINS]
        cells += [f"{mean(x['per_language'][lang]['f1'] for x in ms):.3f}" for lang in LANGS]
        cells.append(f"{100 * mean(x['kept_share']['good']['kept'] for x in ms):.1f}%")
        name = f"**{m}**" if m == MAIN else m
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def cell_table(runs: list[dict[str, Any]], baseline: str | None) -> list[str]:
    out = [
        f"| domain / language | {MAIN}: mean | min-max over seeds | {baseline or '-'}: mean | good pairs per seed |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in DOMAINS:
        for lang in LANGS:
            key = f"{d}/{lang}"
            cells = [r["methods"][MAIN]["per_domain_language"].get(key) for r in runs]
            if not all(cells):
                continue
            kept = [c["good_kept"] for c in cells]
            lo = f"**{100 * min(kept):.1f}**" if min(kept) < CELL_TARGET else f"{100 * min(kept):.1f}"
            base = (
                f"{100 * mean(r['methods'][baseline]['per_domain_language'][key]['good_kept'] for r in runs):.1f}%"
                if baseline
                else "-"
            )
            n = [c["n_good"] for c in cells]
            out.append(f"| {key} | {100 * mean(kept):.1f}% | {lo}-{100 * max(kept):.1f}% | {base} | {min(n)}-{max(n)} |")
    return out


def kind_table(runs: list[dict[str, Any]], methods: list[str]) -> list[str]:
    out = ["| kind | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for k in KINDS:
        row = []
        for m in methods:
            v = [r["methods"][m]["kept_share"][k]["kept"] for r in runs if k in r["methods"][m]["kept_share"]]
            text = _range(v, pct=True) if v else "-"
            row.append(f"**{text}**" if v and m == MAIN and k != "good" and mean(v) > KIND_TARGET else text)
        if any(cell != "-" for cell in row):  # a kind no run has (no placeholders in the data) gets no row
            out.append(f"| `{k}` | " + " | ".join(row) + " |")
    return out


def pooled_kind_table(runs: list[dict[str, Any]]) -> list[str]:
    out = ["| kind | " + " | ".join((*LANGS, *DOMAINS)) + " |", "|---|" + "---:|" * (len(LANGS) + len(DOMAINS))]
    for k in KINDS[1:]:
        row = []
        for group, names in (("per_language", LANGS), ("per_domain", DOMAINS)):
            for name in names:
                parts = [r["methods"][MAIN]["kept_share"].get(k, {}).get(group, {}).get(name) for r in runs]
                parts = [p for p in parts if p]
                n = sum(p["n"] for p in parts)
                kept = sum(p["kept"] * p["n"] for p in parts) / n if n else float("nan")
                row.append(f"{100 * kept:.1f}% ({n})" if n else "-")
        out.append(f"| `{k}` | " + " | ".join(row) + " |")
    return out


def seed_table(summary: dict[str, Any]) -> list[str]:
    out = [
        "| seed | F1 | F1 short | F1 sw | lowest cell of good pairs kept | worst fault kind kept | targets met |",
        "|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in summary["methods"][MAIN]:
        cell, kind = s["worst_cell"], s["worst_kind"]
        out.append(
            f"| {s['seed']} | {s['f1']:.3f} | {s['f1_short']:.3f} | {s['f1_sw']:.3f} | {cell[0]} {100 * cell[1]:.1f}% "
            f"| `{kind[0]}` {100 * kind[1]:.1f}% | {s['targets_met']}/8 |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("summary", type=Path, help="the --out file of bench_quality.py")
    ap.add_argument(
        "--leave-out",
        nargs="*",
        default=["shipped gates"],
        help="methods to leave out (default: the shipped gates, which saw the held-out concepts in their calibration)",
    )
    args = ap.parse_args(argv)
    summary = json.loads(args.summary.read_text(encoding="utf-8"))
    runs = [
        json.loads(args.summary.with_name(f"{args.summary.stem}-seed{s['seed']}.json").read_text(encoding="utf-8"))
        for s in summary["methods"][MAIN]
    ]
    methods = [m for m in runs[0]["methods"] if m not in args.leave_out]
    baseline = "previous gates" if "previous gates" in methods else None
    print(f"Seeds {', '.join(str(r['seed']) for r in runs)}; command: {summary.get('command')}\n")
    for title, lines in (
        ("F1 per method", f1_table(runs, methods)),
        ("Good pairs kept, per domain and language", cell_table(runs, baseline)),
        ("Faulty pairs kept, per kind", kind_table(runs, methods)),
        (f"{MAIN}: faulty pairs kept per language and domain (seeds pooled, n in brackets)", pooled_kind_table(runs)),
        ("Per seed", seed_table(summary)),
    ):
        print(f"**{title}**\n")
        print("\n".join(lines) + "\n")
    below = sum(1 for s in summary["methods"][MAIN] for v in s["cells"].values() if v < CELL_TARGET)
    cells = sum(len(s["cells"]) for s in summary["methods"][MAIN])
    print(f"cells below {100 * CELL_TARGET:.0f}% good kept: {below} of {cells}")
    for ref in summary.get("reference_faults", []):
        print(f"left out as a faulty reference: {ref['concept_id']} ({ref['lang']}): {ref['why']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
