"""Labelled noisy pair sets made from real parallel data, for calibrating and benchmarking verification.

:func:`make_noisy_set` takes real concept-aligned texts and replaces a share of the translations by
a realistic fault. Every text in the result comes from the input data: a good pair is a human
translation as given, and each corruption is a mechanical change of real texts (no translation is
ever invented). Short texts (1-3 word sentences, which Tatoeba has many of) and UI-string style pairs
take part in every corruption type.

=======================  ======================================================================
kind                     what the target becomes
=======================  ======================================================================
``good``                 the real translation (label ``True``)
``misaligned``           the translation of another concept (preferably one whose own row is
                         itself corrupted, so that the text does not appear twice in the pool)
``untranslated``         a copy of the source text
``wrong_language``       the concept's translation in another language (e.g. the German in the
                         Swahili slot)
``truncated``            the translation cut to 30-60% of its characters (at a word boundary
                         where the language has spaces); with ``keep_punct_share`` > 0 that share
                         of the cuts gets the final punctuation back (an omission, not a cut-off)
``number_changed``       a number of the translation altered, or a number inserted when it has none
``extra_content``        the translation followed by an unrelated sentence of the same language
``placeholder_dropped``  one placeholder, URL or e-mail removed (only where the source has some)
=======================  ======================================================================

UI strings: a share of the concepts with short sources (``ui_share``) is wrapped, on every side, in
the same language-neutral template (``"{user}: …"``, ``"… (%d)"``, ``"… https://example.com/help"``,
...), which gives pairs with placeholders built from real translations.

Example::

    concepts = pl.read_ndjson("corpusalign/data/sample/tatoeba_en_de_ja.jsonl")
    noisy = make_noisy_set(concepts, "en", ["de", "ja"], seed=0)
    noisy.group_by("kind").len()  # about half "good", the rest spread over the corruptions
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from corpusalign.langtags import base_language
from corpusalign.placeholders import EMAIL, URL, placeholders

CORRUPTIONS: tuple[str, ...] = (
    "misaligned",
    "untranslated",
    "wrong_language",
    "truncated",
    "number_changed",
    "extra_content",
    "placeholder_dropped",
)
KINDS: tuple[str, ...] = ("good", *CORRUPTIONS)

#: Columns of a set of (possibly corrupted) translation pairs, as calibration and benchmarks use them.
PAIR_SCHEMA = {
    "concept_id": pl.String,
    "lang": pl.String,
    "src_text": pl.String,
    "tgt_text": pl.String,
    "label": pl.Boolean,  # True: a faithful pair
    "kind": pl.String,  # "good" or the corruption
}

#: Language-neutral UI templates: ``{text}`` is the real text of each language.
UI_TEMPLATES: tuple[str, ...] = (
    "{{user}}: {text}",
    "{text} (%d)",
    "%s – {text}",
    "%1$s: {text} %2$s",
    "{text} {{count}}",
    "{text} https://example.com/help",
    "[{0}] {text}",
    "{text} <support@example.org>",
    "{text} %(name)s",
)
#: Languages written without spaces between words (truncation cuts characters, joins add no space).
NO_SPACE_LANGS = frozenset({"ja", "zh", "th", "lo", "km", "my"})
_SHORT_UI_WORDS = 8
_NUM = re.compile(r"\d+")
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_PRINTF = re.compile(r"%(?:\d+\$)?[-+0#]*\d*(?:\.\d+)?[sd]|%\([A-Za-z_]\w*\)s")
_BRACE = re.compile(r"\{\{\s*\w+\s*\}\}|\{\w*\}")


def _words(text: str) -> int:
    return len(text.split())


def _joiner(lang: str) -> str:
    return "" if base_language(lang) in NO_SPACE_LANGS else " "


def _truncate(text: str, lang: str, rng: np.random.Generator, keep_punct_share: float = 0.0) -> str | None:
    """``text`` cut to 30-60% of its characters (a share ``keep_punct_share`` of the cuts gets the
    text's final punctuation back); ``None`` when nothing sensible is left."""
    n = len(text)
    if n < 2:
        return None
    target = max(1, int(round(n * rng.uniform(0.3, 0.6))))
    if base_language(lang) not in NO_SPACE_LANGS and " " in text.strip():
        lo, hi = max(1, int(n * 0.3)), max(1, int(n * 0.6))
        cuts = [i for i, ch in enumerate(text) if ch == " " and lo <= i <= hi]
        if cuts:
            target = min(cuts, key=lambda i: abs(i - target))
    out = text[:target].rstrip(" ,;:、，")
    end = text.rstrip()[-1:]
    if keep_punct_share > 0 and end in ".!?。！？" and rng.random() < keep_punct_share:  # looks like an omission
        out = out.rstrip(".!?。！？") + end
    return out if out and out != text else None


def _change_number(text: str, lang: str, rng: np.random.Generator) -> str:
    """Alter one number of ``text`` (full-width digits stay full-width), or insert one when there is none."""
    from corpusalign.verify.scores import _to_ascii_digits

    ascii_text = _to_ascii_digits(text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    found = list(_NUM.finditer(ascii_text))
    if found:
        m = found[int(rng.integers(len(found)))]
        old = int(m.group())
        new = old + int(rng.integers(1, 10)) * (1 if old < 10 or rng.random() < 0.5 else -1)
        new_s = str(max(new, 0) if new != old else old + 1)
        if new_s == m.group():
            new_s = str(old + 1)
        if any("０" <= ch <= "９" for ch in text[m.start() : m.end()]):
            new_s = new_s.translate(_FULLWIDTH)
        return text[: m.start()] + new_s + text[m.end() :]
    number = str(int(rng.choice([int(rng.integers(2, 100)), int(rng.integers(1900, 2030))])))
    if base_language(lang) in NO_SPACE_LANGS:  # at a change of script (kanji/kana/punctuation boundary) or the start
        from corpusalign.verify.scores import script_of

        bounds = [0] + [i for i in range(1, len(text)) if script_of(text[i]) != script_of(text[i - 1])]
        pos = bounds[int(rng.integers(len(bounds)))]
        return text[:pos] + number + text[pos:]
    words = text.split(" ")
    pos = int(rng.integers(0, len(words) + 1)) if len(words) > 1 else 1
    return " ".join([*words[:pos], number, *words[pos:]])


def _drop_placeholder(text: str, rng: np.random.Generator) -> str | None:
    spans = [m.span() for rx in (URL, EMAIL, _PRINTF, _BRACE) for m in rx.finditer(text)]
    if not spans:
        return None
    a, b = spans[int(rng.integers(len(spans)))]
    out = re.sub(r"\s{2,}", " ", (text[:a] + text[b:]).replace("<>", "").replace("()", "").replace("[]", ""))
    out = out.strip().lstrip(":–- ").rstrip(":–- ")
    return out if out != text and placeholders(out) != placeholders(text) else None


def _template(text: str, template: str) -> str:
    return template.replace("{text}", text)


def make_noisy_set(
    concepts: pl.DataFrame,
    src: str,
    tgts: str | Sequence[str],
    seed: int,
    corrupt_share: float = 0.5,
    ui_share: float = 0.1,
    keep_punct_share: float = 0.0,
) -> pl.DataFrame:
    """A labelled set of real and corrupted translation pairs, deterministic for a given ``seed``.

    ``concepts``: one row per concept, ``concept_id`` plus one text column per language (the layout
    of the bundled sample). Every concept with a ``src`` text and a text in a target language gives
    one pair; concepts repeating an earlier source text are skipped (the pipeline's dedup keeps the
    first). A share ``ui_share`` of the concepts with short sources (up to 8 words) is wrapped in a UI
    template on every side. Then each pair is corrupted with probability ``corrupt_share`` by one of
    the :data:`CORRUPTIONS` that applies to it, chosen uniformly (``placeholder_dropped``, which
    applies only to pairs with placeholders, is three times as likely there). ``keep_punct_share``:
    share of truncations that keep the final punctuation (0 by default, a cut-off text; calibration
    uses a third, so that the gate does not rely on the missing full stop alone).

    Returns ``concept_id, lang, src_text, tgt_text, label`` (``True`` = good pair) ``, kind``
    (``"good"`` or the corruption), one row per (concept, target language), in input order.
    """
    tgts = [tgts] if isinstance(tgts, str) else list(tgts)
    if not 0.0 <= corrupt_share <= 1.0 or not 0.0 <= keep_punct_share <= 1.0:
        raise ValueError(f"corrupt_share and keep_punct_share must be in [0, 1], got {corrupt_share}, {keep_punct_share}")
    if src not in concepts.columns:
        raise ValueError(f"concepts has no {src!r} column")
    rng = np.random.default_rng(seed)
    langs = [c for c in concepts.columns if c != "concept_id"]
    tgts = [t for t in tgts if t in concepts.columns and t != src]

    # one row per concept, first occurrence of each source text
    records: list[dict[str, str | None]] = []
    seen: set[str] = set()
    for row in concepts.iter_rows(named=True):
        s = row.get(src)
        if not s or not s.strip() or s in seen:
            continue
        seen.add(s)
        records.append(row)

    # UI templating of short concepts
    for row in records:
        s = row[src] or ""
        if _words(s) <= _SHORT_UI_WORDS and not placeholders(s) and rng.random() < ui_share:
            template = UI_TEMPLATES[int(rng.integers(len(UI_TEMPLATES)))]
            for lang in langs:
                if row.get(lang):
                    row[lang] = _template(row[lang] or "", template)

    pairs: list[dict[str, object]] = []
    for row in records:
        for lang in tgts:
            tgt = row.get(lang)
            if tgt and tgt.strip():
                pairs.append(
                    {"concept_id": str(row["concept_id"]), "lang": lang, "src_text": row[src], "tgt_text": tgt, "row": row}
                )

    # decide the kinds first, so that misaligned rows can borrow texts whose own row is corrupted
    kinds: list[str] = []
    for p in pairs:
        if rng.random() >= corrupt_share:
            kinds.append("good")
            continue
        row, lang, s, t = p["row"], p["lang"], p["src_text"], p["tgt_text"]
        options = ["misaligned", "truncated", "number_changed", "extra_content"]
        if str(s).casefold().strip() != str(t).casefold().strip():
            options.append("untranslated")
        if any(row.get(o) for o in langs if o not in (src, lang)):  # type: ignore[union-attr]
            options.append("wrong_language")
        weights = [1.0] * len(options)
        if placeholders(str(s)) and placeholders(str(t)):
            options.append("placeholder_dropped")
            weights.append(3.0)
        w = np.array(weights) / sum(weights)
        kinds.append(options[int(rng.choice(len(options), p=w))])

    by_lang: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_lang.setdefault(str(p["lang"]), []).append(i)

    out: list[dict[str, object]] = []
    for i, (p, kind) in enumerate(zip(pairs, kinds)):
        lang, s, t, row = str(p["lang"]), str(p["src_text"]), str(p["tgt_text"]), p["row"]
        new: str | None = t
        if kind == "misaligned" or kind == "extra_content":
            pool = by_lang[lang]
            preferred = [j for j in pool if j != i and kinds[j] != "good" and pairs[j]["tgt_text"] != t]
            anyone = [j for j in pool if j != i and pairs[j]["tgt_text"] != t]
            candidates = preferred if kind == "misaligned" and preferred else anyone
            if kind == "extra_content":  # an unrelated sentence, not longer than a typical one
                short = [j for j in candidates if len(str(pairs[j]["tgt_text"])) <= max(80, len(t) // 2)]
                candidates = short or candidates
            if not candidates:
                new = None
            else:
                other = str(pairs[candidates[int(rng.integers(len(candidates)))]]["tgt_text"])
                new = other if kind == "misaligned" else t + _joiner(lang) + other
        elif kind == "untranslated":
            new = s
        elif kind == "wrong_language":
            others = [o for o in langs if o not in (src, lang) and row.get(o)]  # type: ignore[union-attr]
            new = row[others[int(rng.integers(len(others)))]]  # type: ignore[index]
        elif kind == "truncated":
            new = _truncate(t, lang, rng, keep_punct_share)
        elif kind == "number_changed":
            new = _change_number(t, lang, rng)
        elif kind == "placeholder_dropped":
            new = _drop_placeholder(t, rng)
        if new is None or (kind != "good" and new == t):
            kind, new = "good", t  # the corruption does not apply here: keep the real pair
        out.append(
            {"concept_id": p["concept_id"], "lang": lang, "src_text": s, "tgt_text": new, "label": kind == "good", "kind": kind}
        )
    return pl.DataFrame(out, schema=PAIR_SCHEMA)
