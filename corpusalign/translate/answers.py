"""Clean the answers of chat models: the translation without the wrapping they add.

Shared by the ``causal`` (transformers) and ``openai`` (HTTP) translators, so both hand the same
text to the pipeline for the same answer.
"""

from __future__ import annotations

import re

from corpusalign.translate.base import LANGUAGE_NAMES

_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)
#: A first line that only announces the answer: "Here is the translation:", "Sure! German translation:".
_PREAMBLE_LINE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok)\b[!,.]?\s*)?"
    r"(?:(?:here\s+is|here's|this\s+is|below\s+is)\b[^\n]*|[^\n]{0,40}\btranslation\b[^\n]*|[^\n]{0,40}\btranslated\b[^\n]*)"
    r":\s*$",
    re.IGNORECASE,
)
#: An inline label before the answer: "Translation: Guten Morgen.", "German: Guten Morgen."
_NAMES = "|".join(sorted(LANGUAGE_NAMES.values(), key=len, reverse=True))
_LABEL = re.compile(
    rf"^\s*(?:\*\*)?(?:(?:(?:{_NAMES})\s+)?translation|translated text|(?:{_NAMES})(?:\s+text)?)(?:\*\*)?\s*:\s*(?=\S)",
    re.IGNORECASE,
)
_SURE_LINE = re.compile(r"^\s*(?:sure|certainly|of course|okay|ok)\b[^\n]{0,40}[!.]\s*$", re.IGNORECASE)
#: A trailing paragraph of remarks: "Note: ...", "(Note: ...)", "Explanation: ...".
_NOTE = re.compile(r"\n\s*\n\s*[(\[*]*\s*(?:note|notes|explanation|remark)s?\b.*$", re.IGNORECASE | re.DOTALL)
_NOTE_LINE = re.compile(r"\n\s*[(\[*]*\s*(?:note|notes|explanation)\s*:.*$", re.IGNORECASE | re.DOTALL)
_QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("„", "“"), ("«", "»"), ("»", "«"), ("「", "」"), ("『", "』"), ("‘", "’"))


def clean_answer(answer: str, source: str | None = None) -> str:
    """The translation in a chat model's answer, without the wrapping chat models add.

    Removes a code fence around the whole answer, a leading line that announces the translation
    ("Here is the translation:", "Sure! German translation:"), an inline label ("Translation: ...",
    "German: ..."), a trailing "Note: ..." paragraph or line, and quotes around the whole answer
    (unless ``source`` is quoted the same way). Pure: the same answer always gives the same text.

    >>> clean_answer('Here is the translation:\\n\\n"Guten Morgen."\\n\\nNote: informal.')
    'Guten Morgen.'
    """
    text = answer.strip()
    for _ in range(3):  # wrappers nest: a fence inside a preamble, quotes inside a fence
        before = text
        m = _FENCE.match(text)
        if m:
            text = m.group(1).strip()
        lines = text.split("\n", 1)
        if len(lines) == 2 and (_PREAMBLE_LINE.match(lines[0]) or _SURE_LINE.match(lines[0])):
            text = lines[1].strip()
        if not (source and (_NOTE.search(source) or _NOTE_LINE.search(source))):
            text = _NOTE.sub("", text).strip()
            text = _NOTE_LINE.sub("", text).strip()
        if "\n" not in text:
            text = _LABEL.sub("", text, count=1).strip()
        text = _strip_quotes(text, source)
        if text == before:
            break
    return text


def _strip_quotes(text: str, source: str | None) -> str:
    src = (source or "").strip()
    for left, right in _QUOTES:
        if len(text) >= 2 and text.startswith(left) and text.endswith(right):
            inner = text[len(left) : -len(right)]
            if left in inner or right in inner:  # '"a" and "b"' is not one quoted answer
                continue
            if src.startswith(left) and src.endswith(right):
                return text
            return inner.strip()
    return text
