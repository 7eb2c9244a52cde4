"""Placeholders, URLs and e-mail addresses in UI strings and documents: what must survive translation unchanged.

One set of patterns for the whole package: the translators shield these spans from the model
(:mod:`corpusalign.translate.protect`), and verification checks that a translation kept every one
(:func:`corpusalign.verify.scores.placeholder_agreement`).

Example::

    >>> sorted(placeholders("Hi {name}, %s new: see https://x.org/a."))
    ['%s', 'https://x.org/a', '{name}']
"""

from __future__ import annotations

import re
from collections import Counter

URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'）」]+|www\.[^\s<>\"'）」]+", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PRINTF = re.compile(
    r"%%"  # an escaped percent sign: literal, not a placeholder
    r"|%\([A-Za-z_]\w*\)[-+0#]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"  # Python %(name)s
    r"|%(?:\d+\$)?[-+0#]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn@]"  # C printf %1$s
)
BRACE = re.compile(r"\{\{\s*[\w.\-]+\s*\}\}|\{[\w.\-]*(?::[^{}]*)?\}")
TRAILING = ".,;:!?)]}>»”’。、，！？"
POSITION = re.compile(r"^%\d+\$")
POSITIONAL = re.compile(r"%\d+\$")


def placeholders(text: str) -> Counter[str]:
    """The multiset of placeholders in ``text``: URLs, e-mail addresses, printf (``%s``, ``%d``,
    ``%1$s``, ``%(name)s``) and brace (``{name}``, ``{0}``, ``{{name}}``) placeholders.

    Example: ``placeholders("Hi {name}, see https://x.org/a.")`` counts ``{name}`` and ``https://x.org/a``.
    """
    text = text or ""
    found: Counter[str] = Counter()
    for m in URL.findall(text):
        found[m.rstrip(TRAILING)] += 1
    text = URL.sub(" ", text)
    for m in EMAIL.findall(text):
        found[m.rstrip(TRAILING)] += 1
    text = EMAIL.sub(" ", text)
    for m in PRINTF.findall(text):
        if m != "%%":
            found[m] += 1
    for m in BRACE.findall(text):
        found[re.sub(r"\s+", "", m)] += 1
    return found


def strip_placeholders(text: str) -> str:
    """``text`` without its URLs, e-mails and printf/brace placeholders (what :func:`placeholders` finds)."""
    text = URL.sub(" ", text or "")
    text = EMAIL.sub(" ", text)
    text = PRINTF.sub(" ", text)
    return BRACE.sub(" ", text)
