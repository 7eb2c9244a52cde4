"""Reports and data cards of a finished build, made from its artefacts only.

:mod:`~corpusalign.report.collect` counts the numbers (``report.json``),
:mod:`~corpusalign.report.html` draws them (``report.html``), :mod:`~corpusalign.report.compare`
sets two builds side by side, :mod:`~corpusalign.report.checks` turns ``--fail-under`` into an exit
code, and :mod:`~corpusalign.report.card` writes a Hugging Face dataset card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def write_report(corpus: str | Path, output: str | Path | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Collect the build in ``corpus`` and write report.json and report.html into ``output`` (default:
    the corpus directory). Returns the report and both paths."""
    from corpusalign.report.collect import collect
    from corpusalign.report.html import render
    from corpusalign.store.files import write_json, write_text

    report = collect(corpus)
    out = Path(output) if output is not None else Path(corpus)
    json_path = write_json(report, out / REPORT_JSON)
    html_path = write_text(render(report), out / REPORT_HTML)
    return report, json_path, html_path


def current_report(corpus: str | Path) -> dict[str, Any]:
    """The corpus's report.json when it matches the build (same manifest digest and report version),
    else a freshly collected report."""
    import json

    from corpusalign.report.collect import REPORT_VERSION, collect
    from corpusalign.store.manifest import read_manifest

    path = Path(corpus) / REPORT_JSON
    if path.exists():
        report = json.loads(path.read_text(encoding="utf-8"))
        if report.get("report_version") == REPORT_VERSION and report.get("manifest_digest") == read_manifest(corpus).get(
            "digest"
        ):
            return report
    return collect(corpus)
