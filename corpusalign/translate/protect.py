"""Shield placeholders, URLs, e-mails and markup from a translation model, and put them back.

:func:`protect` replaces each protected span with a numbered sentinel ``{0}``, ``{1}``, ...
(brace placeholders are what MT models and LLMs are most used to copying unchanged), and
:func:`restore` maps the sentinels in the model's output back to the original spans, wherever the
model moved them. A sentinel the model dropped stays missing: the verification gate then rejects the
row as ``placeholder_mismatch`` instead of shipping a broken string.

Protected: URLs, e-mail addresses, printf (``%s``, ``%1$d``, ``%(name)s``) and brace (``{name}``,
``{{name}}``) placeholders (the same patterns as :func:`corpusalign.placeholders.placeholders`),
XML/HTML tags and inline code in backticks.

Example::

    >>> p = protect("Hi {name}, see <b>https://x.org</b>")
    >>> p.text
    'Hi {0}, see {1}{2}{3}'
    >>> restore("Hallo {0}, siehe {1}{2}{3}", p)
    'Hallo {name}, siehe <b>https://x.org</b>'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corpusalign.placeholders import BRACE, EMAIL, PRINTF, URL

_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")
_CODE = re.compile(r"`[^`\n]+`")
_PROTECTED = re.compile(
    "|".join(f"(?:{p.pattern})" for p in (URL, EMAIL, _TAG, _CODE, BRACE, PRINTF)),
    flags=re.IGNORECASE,
)
_SENTINEL = re.compile(r"\{\s*(\d+)\s*\}")
_TRAILING = ".,;:!?)]}>»”’。、，！？"


@dataclass(frozen=True)
class Protected:
    text: str  # the text with sentinels
    spans: tuple[str, ...]  # the original span of each sentinel, by number


def protect(text: str) -> Protected:
    spans: list[str] = []

    def swap(m: re.Match[str]) -> str:
        span = m.group(0)
        if span == "%%":
            return span
        tail = ""
        if URL.fullmatch(span) or EMAIL.fullmatch(span):  # keep sentence punctuation outside the URL
            stripped = span.rstrip(_TRAILING)
            span, tail = stripped, span[len(stripped) :]
        spans.append(span)
        return "{" + str(len(spans) - 1) + "}" + tail

    if not text:
        return Protected(text, ())
    return Protected(_PROTECTED.sub(swap, text), tuple(spans))


def restore(text: str, protected: Protected) -> str:
    """``text`` (a translation of ``protected.text``) with the sentinels replaced by the original spans."""
    if not protected.spans:
        return text

    def back(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return protected.spans[i] if i < len(protected.spans) else m.group(0)

    return _SENTINEL.sub(back, text)
