"""Two builds side by side (counts, drop reasons, score distributions), for threshold tuning.

``corpusalign report A B`` writes ``compare.json`` and ``compare.html``. Both builds are read from
their artefacts (their own report.json when it is current, else collected afresh).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from corpusalign.report import charts
from corpusalign.report.html import CSS, _legend, _pct


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The differences between reports ``a`` and ``b`` (B minus A)."""
    metrics = {}
    for name in sorted(set(a["metrics"]) | set(b["metrics"])):
        va, vb = a["metrics"].get(name), b["metrics"].get(name)
        metrics[name] = {"a": va, "b": vb, "delta": None if va is None or vb is None else round(vb - va, 6)}
    reasons = {}
    for r in list(a["drop_reasons"]) + [r for r in b["drop_reasons"] if r not in a["drop_reasons"]]:
        ra, rb = a["drop_reasons"].get(r, {}), b["drop_reasons"].get(r, {})
        langs = sorted(set(ra.get("per_language", {})) | set(rb.get("per_language", {})))
        reasons[r] = {
            "a": ra.get("rows", 0),
            "b": rb.get("rows", 0),
            "per_language": {
                lg: {"a": ra.get("per_language", {}).get(lg, 0), "b": rb.get("per_language", {}).get(lg, 0)} for lg in langs
            },
        }
    scores: dict[str, Any] = {}
    for score in list(a["scores"]) + [sc for sc in b["scores"] if sc not in a["scores"]]:
        pa = a["scores"].get(score, {}).get("per_language", {})
        pb = b["scores"].get(score, {}).get("per_language", {})
        ref = a["scores"].get(score) or b["scores"][score]
        if score in a["scores"] and score in b["scores"] and a["scores"][score]["edges"] != b["scores"][score]["edges"]:
            continue  # a different report layout; the bins would not line up
        langs = list(pa) + [lg for lg in pb if lg not in pa]
        per = {lg: {"a": pa.get(lg), "b": pb.get(lg)} for lg in langs}
        scores[score] = {"edges": ref["edges"], "help": ref["help"], "per_language": per}
    return {
        "a": {"corpus": a["corpus"], "created": a["created"], "verification": a.get("verification")},
        "b": {"corpus": b["corpus"], "created": b["created"], "verification": b.get("verification")},
        "languages": [lg for lg in a["languages"] if lg in b["languages"]],
        "metrics": metrics,
        "drop_reasons": reasons,
        "scores": scores,
    }


def _delta(v: float | None, ratio: bool) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "<span class='muted'>0</span>"
    s = f"{100 * v:+.2f} pt" if ratio else f"{v:+,.0f}"
    return f"<b>{s}</b>"


def _changed(per_language: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{lg} {v['a']}→{v['b']}" for lg, v in per_language.items() if v["a"] != v["b"])


def render(cmp: dict[str, Any]) -> str:
    """The comparison page as one self-contained HTML string."""
    a, b = cmp["a"]["corpus"], cmp["b"]["corpus"]
    head = ["kept_ratio", "concept_kept_ratio", "complete_ratio", "kept_rows", "concepts_kept", "concepts_complete"]
    head += [f"kept_ratio.{lg}" for lg in cmp["languages"]] + [f"kept_rows.{lg}" for lg in cmp["languages"]]
    rows = []
    for name in head:
        m = cmp["metrics"].get(name)
        if not m:
            continue
        ratio = "ratio" in name
        fmt = (lambda v: _pct(v) if v is not None else "-") if ratio else (lambda v: f"{v:,.0f}" if v is not None else "-")
        rows.append(
            f"<tr><td>{escape(name)}</td><td class='n'>{fmt(m['a'])}</td><td class='n'>{fmt(m['b'])}</td><td class='n'>{_delta(m['delta'], ratio)}</td></tr>"
        )
    reasons = "".join(
        f"<tr><td>{escape(r)}</td><td class='n'>{d['a']:,}</td><td class='n'>{d['b']:,}</td><td class='n'>{_delta(d['b'] - d['a'], False)}</td>"
        f"<td>{escape(_changed(d['per_language']))}</td></tr>"
        for r, d in cmp["drop_reasons"].items()
    )
    panels = [_legend()]
    for score, d in cmp["scores"].items():
        if score == "lid_expected":
            continue
        grid = []
        for lang, ab in d["per_language"].items():
            for side in ("a", "b"):
                s = ab[side]
                if s is None:
                    grid.append(
                        f"<div class='muted' style='width:230px;padding-top:40px'>{lang} · {side.upper()}: no scores</div>"
                    )
                    continue
                grid.append(
                    charts.histogram(
                        d["edges"], s["kept"], s["rejected"], threshold=s["threshold"], title=f"{lang} · {side.upper()}"
                    )
                )
        panels.append(
            f"<div class='panel'><b>{escape(score)}</b> <span class='muted'>{escape(d['help'])}</span><div class='grid'>{''.join(grid)}</div></div>"
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>corpusalign comparison</title>"
        f"<style>{CSS}</style></head><body><main><h1>corpusalign: two builds side by side</h1>"
        f"<p class='sub'><b>A</b> {escape(a)} (built {escape(str(cmp['a']['created']))})<br><b>B</b> {escape(b)} (built {escape(str(cmp['b']['created']))})</p>"
        "<h2>Counts</h2><table><tr><th>metric</th><th class='n'>A</th><th class='n'>B</th><th class='n'>B − A</th></tr>"
        + "".join(rows)
        + "</table><h2>Drop reasons (rows)</h2><table><tr><th>reason</th><th class='n'>A</th><th class='n'>B</th><th class='n'>B − A</th><th>changed per language</th></tr>"
        + reasons
        + "</table><h2>Score distributions</h2>"
        + "".join(panels)
        + "<footer>Made by <code>corpusalign report A B</code>; every metric of both builds is in compare.json.</footer></main></body></html>"
    )


def write_compare(a_dir: str | Path, b_dir: str | Path, output: str | Path) -> tuple[dict[str, Any], Path, Path]:
    from corpusalign.report import current_report
    from corpusalign.store.files import write_json, write_text

    cmp = compare(current_report(a_dir), current_report(b_dir))
    out = Path(output)
    return cmp, write_json(cmp, out / "compare.json"), write_text(render(cmp), out / "compare.html")
