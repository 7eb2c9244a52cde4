"""Quality gates for CI: ``--fail-under NAME=VALUE`` and ``--fail-over NAME=VALUE`` on report metrics.

Names are the keys of ``report.json``'s ``metrics`` (see :func:`corpusalign.report.collect.metrics`),
for example ``kept_ratio``, ``kept_ratio.de``, ``drop_rate.misaligned`` or ``verify_p.median.ja``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class CheckError(ValueError):
    """A check that cannot be evaluated (bad syntax or unknown metric)."""


@dataclass(frozen=True)
class Check:
    name: str
    op: str  # "under": fail when value < limit; "over": fail when value > limit
    limit: float

    def describe(self, value: float) -> str:
        sign = ">=" if self.op == "under" else "<="
        return f"{self.name} = {value:.6g} (required {sign} {self.limit:g})"


def parse(specs: Iterable[str], op: str) -> list[Check]:
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip():
            raise CheckError(f"expected NAME=VALUE, got {spec!r} (e.g. kept_ratio=0.8)")
        try:
            limit = float(value)
        except ValueError:
            raise CheckError(f"{spec!r}: {value!r} is not a number") from None
        out.append(Check(name.strip(), op, limit))
    return out


def evaluate(checks: Iterable[Check], metrics: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(passed, failed) descriptions; raises :class:`CheckError` for an unknown metric name."""
    passed, failed = [], []
    for c in checks:
        if c.name not in metrics:
            close = difflib.get_close_matches(c.name, list(metrics), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see the metrics in report.json"
            raise CheckError(f"unknown metric {c.name!r}{hint}")
        value = metrics[c.name]
        ok = value >= c.limit if c.op == "under" else value <= c.limit
        (passed if ok else failed).append(c.describe(value))
    return passed, failed
