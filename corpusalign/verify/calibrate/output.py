"""Writing calibrated gates: a pipeline YAML, the gates JSON, and the held-out metrics as a text table."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from corpusalign.verify.calibrate.metrics import CalibrationResult


def _comment_lines(result: CalibrationResult) -> list[str]:
    m = result.metrics
    lines = [
        f"verification gates calibrated by corpusalign.verify.calibrate ({m.get('mode')} mode) on "
        f"{_dt.date.today().isoformat()} with {m.get('embedder')}"
    ]
    estimated = m.get("mode") == "unlabelled"
    lines.append(
        "expected precision / recall per language"
        + (" (ESTIMATED from score distributions):" if estimated else " (held-out pairs):")
    )
    for lang, gate in sorted(result.gates.items()):
        if gate.precision is None:
            lines.append(f"  {lang}: unknown")
            continue
        pl_ = m.get("per_language", {}).get(lang, {})
        extra = f", F1 {pl_['f1']:.3f}, n={pl_['n']}" if "f1" in pl_ else ""
        lines.append(f"  {lang}: precision {gate.precision:.3f}, recall {gate.recall:.3f}{extra}, threshold {gate.threshold:.3f}")
    return lines


def cell_rows(metrics: dict[str, Any]) -> list[tuple[str, int, float | None, int, float | None]]:
    """Per domain of each language on the held-out concepts (``metrics["per_cell"]``): ``(cell, good pairs,
    share of them kept, faulty pairs, share of them kept)``; a share is ``None`` where there are no pairs."""
    rows = []
    for name, m in (metrics.get("per_cell") or {}).items():
        faults = [v for k, v in (m.get("kinds") or {}).items() if k != "good"]
        n_bad = sum(v["n"] for v in faults)
        kept_bad = sum(v["n"] * v["kept"] for v in faults)
        rows.append((name, m["n_good"], m["recall"] if m["n_good"] else None, n_bad, kept_bad / n_bad if n_bad else None))
    return rows


def summary_table(metrics: dict[str, Any]) -> str:
    """The held-out metrics as a plain-text table: one line per language, per length domain, per domain of
    each language (R: the share of its good pairs kept) and the pooled gate."""
    if metrics.get("mode") == "unlabelled":
        lines = [f"unlabelled calibration ({metrics.get('note')})"]
        for lang, m in metrics.get("per_language", {}).items():
            lines.append(
                f"  {lang:4s} margin cut {m['margin_cut']:.3f}, estimated precision {m['precision_estimated']:.3f}, "
                f"recall {m['recall_estimated']:.3f} (n={m['n']})"
            )
        return "\n".join(lines)
    rows = [
        ("overall", metrics.get("overall")),
        *metrics.get("per_language", {}).items(),
        *metrics.get("per_domain", {}).items(),
        *metrics.get("per_cell", {}).items(),
        ("pooled *", metrics.get("pooled_gate")),
    ]
    kinds = sorted({k for _, m in rows if m for k in m.get("kinds", {}) if k != "good"})
    head = f"{'held-out':14s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>6s}  " + " ".join(f"{k[:12]:>12s}" for k in kinds)
    lines = [f"{metrics.get('mode')} calibration with {metrics.get('embedder')}; share of faulty pairs kept per kind:", head]
    for name, m in rows:
        if not m:
            continue
        cells = " ".join(f"{m['kinds'][k]['kept']:>12.3f}" if k in m.get("kinds", {}) else f"{'-':>12s}" for k in kinds)
        lines.append(f"{name:14s} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['n']:6d}  {cells}")
    return "\n".join(lines)


def write_pipeline(
    result: CalibrationResult, path: str | Path, base_pipeline: str | Path | None = None, embedder: str | None = None
) -> Path:
    """Write a pipeline YAML whose ``verify.gates`` hold ``result.gates``, with expected precision/recall as comments.

    With ``base_pipeline``, every other setting (and the rest of its ``verify`` section) is copied
    from that file; otherwise the file holds only the ``verify`` section. Load it like any pipeline
    file (``verify: {gates: {de: {...}, "*": {...}}}``).
    """
    import yaml

    from corpusalign.config import read_parameter_file

    base: dict[str, Any] = {}
    if base_pipeline is not None:  # strict YAML: a syntax error or repeated key is a ConfigError with file:line:column
        base = read_parameter_file(base_pipeline, {})
    verify = dict(base.pop("verify", None) or {})
    if embedder is not None:  # gates are fitted for one embedder: record which
        verify["embedder"] = embedder
    verify["gates"] = {lang: gate.to_dict() for lang, gate in sorted(result.gates.items(), key=lambda kv: kv[0] == "*")}
    head = "".join(f"# {line}\n" for line in _comment_lines(result))
    body = yaml.safe_dump(base, sort_keys=False, allow_unicode=True) if base else ""
    ver = yaml.safe_dump({"verify": verify}, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + body + ver, encoding="utf-8")
    return path


def write_gates_json(result: CalibrationResult, path: str | Path, provenance: dict[str, Any]) -> Path:
    """Write ``{"provenance": ..., "metrics": ..., "gates": {lang: gate}}`` (the format of ``gates_e5_small.json``)."""
    doc = {
        "provenance": provenance,
        "metrics": result.metrics,
        "gates": {lang: gate.to_dict() for lang, gate in sorted(result.gates.items())},
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
