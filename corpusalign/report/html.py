"""Render a report dict (see :mod:`corpusalign.report.collect`) as one self-contained HTML page.

Everything is inline: CSS in a ``<style>`` block and charts as static SVG
(:mod:`corpusalign.report.charts`). The page has no scripts and references nothing outside itself,
so it opens from disk in any browser, offline, and can be attached to a ticket or a model card.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from corpusalign.report import charts
from corpusalign.report.collect import DOMAIN_HELP, domain_cell
from corpusalign.verify.scores import DOMAINS

#: A language whose kept share of concepts is below this is flagged as thin.
THIN_LANGUAGE = 0.5

CSS = """
:root { --ink:#2b2f36; --muted:#6b7280; --line:#e3e6ea; --bg:#f7f8fa; --kept:#3b75af; --rej:#e08a2c; --bad:#c0392b; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK JP",sans-serif; color:var(--ink); background:var(--bg); }
main { max-width:1120px; margin:0 auto; padding:24px 28px 48px; }
h1 { font-size:22px; margin:0 0 2px; }
h2 { font-size:17px; margin:34px 0 6px; padding-top:6px; border-top:1px solid var(--line); }
p.sub, p.note { color:var(--muted); margin:2px 0 10px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:10px; margin:16px 0 6px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .v { font-size:22px; font-weight:650; }
.card .l { color:var(--muted); font-size:12px; }
.card.warn .v { color:var(--bad); }
table { border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:6px; width:100%; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f2f5; font-weight:600; font-size:12px; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
tr.thin td, td.thin { background:#fff4e5; }
.tag { display:inline-block; padding:0 6px; border-radius:9px; font-size:12px; background:#eef1f5; margin:1px 2px 1px 0; }
.ok { color:var(--ok); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
.grid { display:flex; flex-wrap:wrap; gap:6px 14px; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 10px; margin:6px 0; }
.legend span { display:inline-block; width:10px; height:10px; margin:0 4px 0 10px; vertical-align:-1px; }
.dot { display:inline-block; width:12px; height:12px; border-radius:50%; background:var(--kept); }
.dot.no { background:none; border:1.5px solid #c9ced6; }
.bar { display:inline-block; height:10px; background:var(--kept); border-radius:2px; vertical-align:middle; }
.ex td { font-size:13px; }
.ex .txt { max-width:420px; white-space:pre-wrap; word-break:break-word; }
.muted { color:var(--muted); }
footer { margin-top:40px; color:var(--muted); font-size:12px; }
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _legend(threshold: bool = True) -> str:
    line = f'<span style="background:none;border-top:2px dashed {charts.THRESHOLD};height:0;width:14px"></span>gate threshold'
    return (
        '<p class="legend note">'
        f'<span style="background:{charts.KEPT}"></span>kept'
        f'<span style="background:{charts.REJECTED}"></span>rejected'
        f"{line if threshold else ''}</p>"
    )


def _cards(report: dict[str, Any]) -> str:
    h = report["headline"]
    thin = [
        lang
        for lang, d in report["per_language"].items()
        if lang != report["source_language"] and d["kept_ratio"] < THIN_LANGUAGE
    ]
    items = [
        ("concepts in", f"{h['concepts_in']:,}", f"{h['input_records']:,} input records", False),
        ("concepts kept", f"{h['concepts_kept']:,}", f"{_pct(h['concept_kept_ratio'])} of concepts in", False),
        (
            "with every language",
            f"{h['concepts_complete']:,}",
            f"{_pct(h['complete_ratio'])} of concepts in",
            h["complete_ratio"] < THIN_LANGUAGE,
        ),
        ("rows kept", f"{h['kept_rows']:,}", f"{_pct(h['kept_ratio'])} of {h['input_rows']:,} input rows", False),
        ("rows rejected", f"{h['rejected_rows']:,}", "judged and dropped by a step", False),
        ("not in the input", f"{h.get('not_in_input_rows', 0):,}", "language slots with no text and no translation", False),
        ("quarantined", f"{h['quarantined_rows']:,}", "malformed input rows", h["quarantined_rows"] > 0),
    ]
    if thin:
        items.append(("thin languages", ", ".join(thin), f"under {_pct(THIN_LANGUAGE)} of concepts kept", True))
    out = ['<div class="cards">']
    for label, value, sub, warn in items:
        out.append(
            f'<div class="card{" warn" if warn else ""}"><div class="l">{escape(label)}</div>'
            f'<div class="v">{escape(value)}</div><div class="l">{escape(sub)}</div></div>'
        )
    out.append("</div>")
    acct = "holds" if h["accounting_ok"] else "VIOLATED"
    out.append(
        f'<p class="note">Accounting <span class="{"ok" if h["accounting_ok"] else "bad"}">{acct}</span>: input rows '
        f"{h['input_rows']:,} = kept {h['kept_rows']:,} + rejected {h['rejected_rows']:,} + not in the input "
        f"{h.get('not_in_input_rows', 0):,} + quarantined {h['quarantined_rows']:,}. A row is one concept in one language.</p>"
    )
    for warning in report.get("warnings", []):  # e.g. a target language that kept no row
        out.append(f'<p class="note"><span class="bad">warning</span>: {escape(warning)}</p>')
    return "".join(out)


def _languages(report: dict[str, Any]) -> str:
    src = report["source_language"]
    rows = []
    for lang, d in report["per_language"].items():
        lid = report["language_id"].get(lang, {})
        prov = report["provenance"].get(lang, {})
        reasons = "".join(f'<span class="tag">{escape(r)} {n:,}</span>' for r, n in list(d["drop_reasons"].items())[:4])
        thin = lang != src and d["kept_ratio"] < THIN_LANGUAGE
        rows.append(
            f'<tr class="{"thin" if thin else ""}"><td><b>{escape(lang)}</b>{" (source)" if lang == src else ""}</td>'
            f'<td class="n">{d["kept_rows"]:,}</td>'
            f'<td><span class="bar" style="width:{100 * d["kept_ratio"]:.0f}px"></span> {_pct(d["kept_ratio"])}</td>'
            f'<td class="n">{d["rejected_rows"]:,}</td><td>{reasons or "-"}</td>'
            f'<td class="n">{d.get("not_in_input_rows", 0):,}</td>'
            f'<td class="n">{_pct(lid["agreement"]) if lid.get("identified") else "-"}</td>'
            f"<td>{escape(', '.join(f'{k} {v:,}' for k, v in prov.items())) or '-'}</td></tr>"
        )
    return (
        "<table><tr><th>language</th><th class='n'>kept rows</th><th>kept of concepts in</th><th class='n'>rejected</th>"
        "<th>top drop reasons</th><th class='n'>not in the input</th><th class='n'>language ID agrees</th><th>made by (origin:translator)</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _drops(report: dict[str, Any]) -> str:
    reasons = report["drop_reasons"]
    if not reasons:
        return '<p class="note">Nothing was dropped.</p>'
    chart = charts.bars(
        [(r, d["rows"]) for r, d in reasons.items()],
        fmt=lambda v: f"{v:,.0f}",
        color=charts.REJECTED,
        label="rows dropped per reason",
    )
    langs = report["languages"]
    head = "".join(f"<th class='n'>{escape(lang)}</th>" for lang in langs)
    body = "".join(
        f"<tr><td>{escape(r)}</td><td class='n'>{_pct(d['rate'])}</td>"
        + "".join(f"<td class='n'>{d['per_language'].get(lang, 0) or ''}</td>" for lang in langs)
        + "</tr>"
        for r, d in reasons.items()
    )
    table = f"<table><tr><th>reason</th><th class='n'>of input rows</th>{head}</tr>{body}</table>"
    return f'<div class="panel">{chart}</div>{table}'


def _kept_by_domain(report: dict[str, Any]) -> str:
    by_lang = report.get("kept_by_domain") or {}
    if not by_lang:
        return (
            '<p class="note">No per-domain counts in this build\'s statistics (a build made before corpusalign counted '
            "them, or one without target rows).</p>"
        )
    langs = list(by_lang)
    head = "".join(f"<th class='n'>{escape(lang)}</th>" for lang in langs)
    rows = []
    for domain in DOMAINS:
        cells = []
        for lang in langs:
            c = by_lang[lang][domain]
            thin = c["total"] and c["share"] < THIN_LANGUAGE
            cells.append(f"<td class='n{' thin' if thin else ''}'>{escape(domain_cell(c))}</td>")
        rows.append(
            f"<tr><td><b>{escape(domain)}</b> <span class='muted'>{escape(DOMAIN_HELP.get(domain, ''))}</span></td>{''.join(cells)}</tr>"
        )
    return (
        "<p class='note'>Share of target rows kept, by the length of the concept's source text: where the verification gate "
        f"and the select step cut. Rows never in the input (missing_target) are not counted; shares under {_pct(THIN_LANGUAGE)} "
        "are highlighted.</p>"
        f"<table><tr><th>domain</th>{head}</tr>{''.join(rows)}</table>"
    )


def _completeness(report: dict[str, Any]) -> str:
    comp = report["completeness"]
    langs = comp["languages"]
    patterns = comp["patterns"]
    if not patterns:
        return '<p class="note">No concept was kept.</p>'
    top = max(p["concepts"] for p in patterns)
    total = sum(p["concepts"] for p in patterns)
    head = "".join(f"<th>{escape(lang)}</th>" for lang in langs)
    rows = []
    for p in patterns:
        dots = "".join(f'<td><span class="dot{"" if lang in p["languages"] else " no"}"></span></td>' for lang in langs)
        rows.append(
            f"<tr>{dots}<td class='n'>{p['concepts']:,}</td><td><span class='bar' style='width:{260 * p['concepts'] / top:.0f}px'>"
            f"</span> <span class='muted'>{_pct(p['concepts'] / total)}</span></td></tr>"
        )
    per = comp["concepts_per_language"]
    foot = "".join(f"<td class='n muted'>{per.get(lang, 0):,}</td>" for lang in langs)
    return (
        "<p class='note'>Each row is a set of languages; the count is how many kept concepts have exactly that set. "
        "The last row counts kept concepts per language.</p>"
        f"<table style='width:auto'><tr>{head}<th class='n'>concepts</th><th></th></tr>{''.join(rows)}"
        f"<tr>{foot}<td class='n muted'>{total:,}</td><td class='muted'>all kept concepts</td></tr></table>"
    )


def _scores(report: dict[str, Any]) -> str:
    out = [_legend()]
    for score, d in report["scores"].items():
        if score == "lid_expected":
            continue
        panels = []
        for lang, s in d["per_language"].items():
            panels.append(
                charts.histogram(
                    d["edges"],
                    s["kept"],
                    s["rejected"],
                    threshold=s["threshold"],
                    title=f"{lang}: {sum(s['kept']):,} kept, {sum(s['rejected']):,} rejected",
                )
            )
        out.append(
            f'<div class="panel"><b>{escape(score)}</b> <span class="muted">{escape(d["help"])}</span><div class="grid">{"".join(panels)}</div></div>'
        )
    if len(out) == 1:
        return '<p class="note">Verification was off for this build: no scores.</p>'
    return "".join(out)


def _lengths(report: dict[str, Any]) -> str:
    src = report["source_language"]
    plots = [
        charts.scatter(
            d["src_chars"],
            d["tgt_chars"],
            d["kept"],
            title=f"{lang} ({len(d['kept']):,} of {d['pairs']:,} pairs)",
            xlabel=f"{src} characters",
            ylabel=f"{lang} characters",
        )
        for lang, d in report["lengths"].items()
    ]
    if not plots:
        return '<p class="note">No pairs.</p>'
    return (
        _legend(threshold=False)
        + "<p class='note'>The dotted diagonal is equal length.</p>"
        + f'<div class="grid panel">{"".join(plots)}</div>'
    )


def _lid(report: dict[str, Any]) -> str:
    d = report["scores"].get("lid_expected")
    if not d:
        return '<p class="note">No language-ID scores.</p>'
    panels = [
        charts.histogram(d["edges"], s["kept"], s["rejected"], title=f"lid_expected · {lang}")
        for lang, s in d["per_language"].items()
    ]
    return (
        f"<p class='note'>{escape(d['help'])}. Short texts score lower: the select and verify steps only trust language ID "
        "on texts long enough for it.</p>" + f'<div class="grid panel">{"".join(panels)}</div>'
    )


def _provenance(report: dict[str, Any]) -> str:
    cats: list[str] = []
    for parts in report["provenance"].values():
        for k in parts:
            if k not in cats:
                cats.append(k)
    chart = charts.stacked_bars(
        list(report["provenance"].items()), cats, label="origin and translator per language", palette=charts.PALETTE[2:]
    )
    trans = "".join(
        f"<span class='tag'>{escape(name)}: origin {escape(str(t.get('origin')))}, model {escape(str(t.get('model') or '-'))}</span>"
        for name, t in report["translators"].items()
    )
    tr = report.get("translation") or {}
    mt = (
        f"<p class='note'>Machine translation: {tr.get('filled', 0):,} of {tr['requested']:,} missing rows filled "
        f"({tr.get('cache_hits', 0):,} from the cache), {tr.get('failed', 0):,} failed.</p>"
        if tr.get("requested")
        and report["translators"]
        and any(t.get("origin") == "machine" for t in report["translators"].values())
        else ""
    )
    return f'<div class="panel">{chart}</div><p class="note">Translators: {trans or "none"}</p>{mt}'


def _duplicates(report: dict[str, Any]) -> str:
    if not report["duplicates"]:
        return '<p class="note">No duplicates found.</p>'
    out = []
    for reason, d in report["duplicates"].items():
        items = [(f"{size} concepts", n) for size, n in d["size_histogram"].items()]
        out.append(
            f"<div class='panel'><b>{escape(reason)}</b> <span class='muted'>{d['clusters']:,} clusters, "
            f"{d['concepts_dropped']:,} concepts dropped, largest cluster {d['largest']}</span>"
            + charts.bars(items, label=f"{reason} cluster sizes")
            + "</div>"
        )
    return (
        "<p class='note'>Clusters of concepts whose source text is the same (duplicate) or nearly the same (near_duplicate); the first is kept.</p>"
        + "".join(out)
    )


def _timings(report: dict[str, Any]) -> str:
    steps = sorted(report["timings"]["steps"].items(), key=lambda kv: -kv[1]["seconds"])
    if not steps:
        return '<p class="note">No step statistics.</p>'
    chart = charts.bars([(name, s["seconds"]) for name, s in steps], fmt=lambda v: f"{v:.2f} s", label="seconds per step")
    total = report["timings"].get("build_seconds")
    return (
        f'<p class="note">Build took {total:.1f} s in all.</p><div class="panel">{chart}</div>'
        if total
        else f'<div class="panel">{chart}</div>'
    )


def _examples(report: dict[str, Any]) -> str:
    ex = report["examples"]
    if not ex:
        return '<p class="note">Nothing was dropped.</p>'
    src = report["source_language"]
    out = []
    for reason, rows in ex.items():
        if reason == "quarantined":
            body = "".join(
                f"<tr><td>{escape(r['source_file'])}:{r['source_line']}</td><td class='txt'>{escape(r['error'])}</td></tr>"
                for r in rows
            )
            out.append(f"<h3>{escape(reason)}</h3><table class='ex'><tr><th>file:line</th><th>error</th></tr>{body}</table>")
            continue
        body = []
        for r in rows:
            scores = " ".join(
                f"{k}={v:g}" for k, v in r["scores"].items() if k in ("verify_p", "cos", "margin", "copy_sim", "lid_expected")
            )
            body.append(
                f"<tr><td><b>{escape(r['lang'])}</b><br><span class='muted'>{escape(r['concept_id'])}</span></td>"
                f"<td class='txt'>{escape(r['source_text'] or ('(this is the source row)' if r['lang'] == src else '-'))}</td>"
                f"<td class='txt'>{escape(r['text'] or '(missing)')}</td>"
                f"<td class='txt'>{escape(r['detail'] or '')}<br><span class='muted'>{escape(scores)}</span></td></tr>"
            )
        out.append(
            f"<h3>{escape(reason)}</h3><table class='ex'><tr><th>lang</th><th>source ({escape(src)})</th><th>dropped row</th>"
            f"<th>why</th></tr>{''.join(body)}</table>"
        )
    return "".join(out)


def render(report: dict[str, Any]) -> str:
    """The report page as an HTML string."""
    name = Path(report["corpus"]).name or report["corpus"]
    v = report.get("verification")
    verified = f"verified with {escape(v['embedder'])} ({escape(v['model'] or '')})" if v else "not verified (verification off)"
    sections = [
        ("Languages", _languages(report)),
        ("Why rows were dropped", _drops(report)),
        ("Kept per domain and language", _kept_by_domain(report)),
        ("Completeness: concepts by language", _completeness(report)),
        ("Verification scores and where the gate cuts", _scores(report)),
        ("Length: source vs target", _lengths(report)),
        ("Language-ID confidence", _lid(report)),
        ("Who made each row", _provenance(report)),
        ("Near-duplicate clusters", _duplicates(report)),
        ("Step timings", _timings(report)),
        ("Examples of dropped rows", _examples(report)),
    ]
    nav = " · ".join(f'<a href="#s{i}">{escape(t)}</a>' for i, (t, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{escape(t)}</h2>{html}' for i, (t, html) in enumerate(sections))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>corpusalign report: {escape(name)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>corpusalign report: {escape(name)}</h1>"
        f"<p class='sub'>{escape(report['corpus'])} · built {escape(str(report['created']))} · "
        f"{escape(report['source_language'])} → {escape(', '.join(lg for lg in report['languages'] if lg != report['source_language']))} · "
        f"{verified} · corpusalign {escape(str(report['corpusalign_version']))}, schema v{report['schema_version']}</p>"
        + _cards(report)
        + f"<p class='note'>{nav}</p>"
        + body
        + f"<footer>Made by <code>corpusalign report</code> from the build's manifest, statistics, shards, rejected and "
        f"quarantine sets (manifest digest {escape(str(report['manifest_digest'])[:16])}…). The same numbers are in report.json.</footer>"
        "</main></body></html>"
    )
