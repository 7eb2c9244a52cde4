"""The docs name real tests: every test that docs/reliability.md cites as proof exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reliability_doc_cites_existing_tests() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    cited = 0
    current = None
    for m in re.finditer(r"`tests/(test_\w+\.py)(?:::(test_\w+\*?))?`|`::(test_\w+\*?)`", doc):
        path, name, more = m.groups()
        if path:
            current = ROOT / "tests" / path
            assert current.exists(), f"docs/reliability.md cites missing {path}"
        name = name or more
        if name:
            assert current is not None
            source = current.read_text(encoding="utf-8")
            assert re.search(rf"def {re.escape(name.rstrip('*'))}", source), f"{current.name} has no {name}"
            cited += 1
    assert cited >= 15
