"""Language tags: the languages of a build are BCP-47 tags ``language[-Script][-REGION]``.

The subset corpusalign accepts: a 2-3 letter language subtag, an optional 4-letter ISO 15924 script
subtag and an optional region (2 letters, ISO 3166-1, or 3 digits, UN M.49): ``de``, ``pt-BR``,
``zh-Hant``, ``sr-Latn``, ``es-419``, ``zh-Hant-TW``. :func:`normalize_tag` writes a tag in its
canonical case (``pt-br`` -> ``pt-BR``, ``zh-hant`` -> ``zh-Hant``, ``SR-latn`` -> ``sr-Latn``; ``_``
is read as ``-``) and checks every subtag against the IANA language subtag registry that the
``langcodes`` package ships: a private-use, special (``und``, ``mul``), deprecated (``iw``) or
unregistered subtag (``xx``, ``ger``, ``pt-XX``) raises :class:`UnknownLanguageTag`, which names
the close known tags (``ger``: did you mean ``de``?).

What the language of a tag means to each part of the pipeline:

* language ID (fastText lid.176) knows base languages only: :func:`lid_label` (``pt-BR`` -> ``pt``,
  ``zh-Hant`` -> ``zh``, ``sr-Latn`` -> ``sr``; ``nb`` -> ``no``, ``swh`` -> ``sw``);
* the script a tag is written in: :func:`likely_script` (the script subtag, else the likely script of
  the language in its region: ``zh-TW`` -> ``Hant``, ``sr`` -> ``Cyrl``);
* settings keyed by language (``verify.gates``) fall back from the full tag to broader ones:
  :func:`tag_fallbacks` (``zh-Hant-TW``, ``zh-Hant``, ``zh-TW``, ``zh``);
* names for LLM prompts: :func:`display_name` (``Portuguese (Brazil)``).

Example::

    >>> normalize_tag("pt-br")
    'pt-BR'
    >>> lid_label("zh-Hant"), likely_script("sr"), display_name("sr-Latn")
    ('zh', 'Cyrl', 'Serbian (Latin)')
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any

_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")

#: The labels of fastText lid.176 (the language-ID model): base languages, mostly ISO 639-1.
LID176_LABELS = frozenset(
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da "
    "de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id ie "
    "ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr mrj "
    "ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc "
    "scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu xal "
    "xmf yi yo yue zh".split()
)
#: Languages lid.176 knows under another label (Bokmål as Norwegian, Filipino as Tagalog).
_LID_ALIASES = {"nb": "no", "fil": "tl"}

#: Script names in prompts where "Language (Script)" reads badly.
_NAME_OVERRIDES = {"zh-Hans": "Simplified Chinese", "zh-Hant": "Traditional Chinese"}


class UnknownLanguageTag(ValueError):
    """A language tag that is malformed or names no known language, script or region.

    ``suggestions``: close known tags, best first (may be empty).
    """

    def __init__(self, tag: str, problem: str, suggestions: list[str]) -> None:
        self.tag = tag
        self.problem = problem
        self.suggestions = suggestions
        hint = f"did you mean {', '.join(repr(s) for s in suggestions)}? " if suggestions else ""
        super().__init__(
            f"{tag!r} is not a known language tag ({problem}); {hint}a language is a BCP-47 tag language[-Script][-REGION] "
            "such as 'de', 'pt-BR', 'zh-Hant' or 'sr-Latn'"
        )


@dataclass(frozen=True)
class LanguageTag:
    """The subtags of a tag, in canonical case; ``str()`` joins them with ``-``."""

    language: str
    script: str | None = None
    region: str | None = None

    def __str__(self) -> str:
        return "-".join(p for p in (self.language, self.script, self.region) if p)


def split_tag(tag: Any) -> LanguageTag | None:
    """The subtags of ``tag`` in canonical case, or ``None`` when it is not of the form
    ``language[-Script][-REGION]``. Syntax only: nothing is looked up (``xx-Abcd`` splits)."""
    if not isinstance(tag, str):
        return None
    m = _TAG.match(tag.strip())
    if not m:
        return None
    language, script, region = m.groups()
    return LanguageTag(language.lower(), script.title() if script else None, region.upper() if region else None)


def canonical_case(tag: str) -> str:
    """``tag`` with ``_`` read as ``-`` and each subtag in its canonical case (unknown shapes: stripped only)."""
    parts = split_tag(tag)
    return str(parts) if parts else tag.strip()


def base_language(tag: str) -> str:
    """The language subtag: ``pt-BR`` -> ``pt`` (anything unparsable: lower-cased, cut at ``-``/``_``)."""
    parts = split_tag(tag)
    return parts.language if parts else tag.strip().lower().replace("_", "-").split("-")[0]


def tag_value(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, else the value of a key that names the same language tag in another case or with
    ``_`` for ``-`` (``pt_br``, ``PT-BR`` for ``pt-BR``; ``text.pt_br`` for ``text.pt-BR``); ``None`` when
    neither. Input columns and memory entries named by language are looked up with it."""
    if key in record:
        return record[key]
    want = key.lower().replace("_", "-")
    for k in record:
        if isinstance(k, str) and k.lower().replace("_", "-") == want:
            return record[k]
    return None


# ------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Registry:
    languages: dict[str, dict[str, Any]]  # subtag -> {name, scope, macro, preferred}
    scripts: dict[str, dict[str, Any]]
    regions: dict[str, dict[str, Any]]


@functools.cache
def _registry() -> _Registry:
    """The IANA language subtag registry shipped in ``langcodes`` (private-use ranges left out)."""
    from langcodes.registry_parser import parse_registry

    tables: dict[str, dict[str, dict[str, Any]]] = {"language": {}, "script": {}, "region": {}}
    for item in parse_registry():
        table = tables.get(item.get("Type", ""))
        subtag = item.get("Subtag")
        if table is None or not subtag or ".." in subtag:
            continue
        table[subtag] = {
            "name": (item.get("Description") or [subtag])[0],
            "scope": item.get("Scope"),
            "macro": item.get("Macrolanguage"),
            "preferred": item.get("Preferred-Value") if item.get("Deprecated") else None,
            "deprecated": bool(item.get("Deprecated")),
        }
    return _Registry(tables["language"], tables["script"], tables["region"])


def _language_ok(subtag: str) -> bool:
    info = _registry().languages.get(subtag)
    return info is not None and not info["deprecated"] and info["scope"] not in ("special", "private-use")


def _script_ok(subtag: str) -> bool:
    info = _registry().scripts.get(subtag)
    return info is not None and not info["deprecated"] and not subtag.startswith("Z")  # Zyyy, Zxxx, Zzzz: special


def _region_ok(subtag: str) -> bool:
    info = _registry().regions.get(subtag)
    return info is not None and not info["deprecated"]


def is_known(tag: str) -> bool:
    """Whether :func:`normalize_tag` accepts ``tag``."""
    try:
        normalize_tag(tag)
    except UnknownLanguageTag:
        return False
    return True


def normalize_tag(tag: str) -> str:
    """``tag`` in canonical case, every subtag known; raises :class:`UnknownLanguageTag` naming close tags.

    >>> normalize_tag("zh-hant"), normalize_tag("SR-latn"), normalize_tag("es_419")
    ('zh-Hant', 'sr-Latn', 'es-419')
    """
    if not isinstance(tag, str):
        raise UnknownLanguageTag(repr(tag), f"a language tag is a string, not {type(tag).__name__}", [])
    return _normalize(tag)


@functools.cache
def _normalize(tag: str) -> str:
    parts = split_tag(tag)
    if parts is None:
        problem = "not of the form language[-Script][-REGION]" if tag.strip() else "empty"
        raise UnknownLanguageTag(tag, problem, close_tags(tag))
    if not _language_ok(parts.language):
        info = _registry().languages.get(parts.language)
        if info is None:
            problem = f"unknown language {parts.language!r}"
        elif info["deprecated"]:
            problem = f"the language subtag {parts.language!r} is deprecated"
        else:
            problem = f"{parts.language!r} is a {info['scope']} code, not a language"
        raise UnknownLanguageTag(tag, problem, close_tags(tag))
    if parts.script and not _script_ok(parts.script):
        known = parts.script in _registry().scripts
        problem = f"{parts.script!r} is not a script of a language" if known else f"unknown script {parts.script!r}"
        raise UnknownLanguageTag(tag, problem, close_tags(tag))
    if parts.region and not _region_ok(parts.region):
        known = parts.region in _registry().regions
        problem = f"the region subtag {parts.region!r} is deprecated" if known else f"unknown region {parts.region!r}"
        raise UnknownLanguageTag(tag, problem, close_tags(tag))
    return str(parts)


# ------------------------------------------------------------------------------------- suggestions


@functools.cache
def _names() -> dict[str, str]:
    """Lower-cased English language names -> subtag (two-letter subtags win)."""
    out: dict[str, str] = {}
    for subtag, info in sorted(_registry().languages.items(), key=lambda kv: (len(kv[0]), kv[0])):
        if _language_ok(subtag):
            out.setdefault(info["name"].lower(), subtag)
    return out


@functools.cache
def _common_languages() -> tuple[str, ...]:
    """Languages a suggestion is drawn from: every two-letter subtag, and lid.176's other labels."""
    reg = _registry().languages
    return tuple(sorted({s for s in reg if len(s) == 2 and _language_ok(s)} | {s for s in LID176_LABELS if _language_ok(s)}))


def _standard_alias(tag: str) -> str | None:
    """The tag ``langcodes`` reads ``tag`` as (``ger``/``deu`` -> ``de``, ``iw`` -> ``he``), when that is known."""
    import langcodes

    try:
        std = langcodes.standardize_tag(tag.strip().replace("_", "-"))
    except (ValueError, KeyError):
        return None
    parts = split_tag(std)
    if parts is None:
        return None
    if not _language_ok(parts.language) or (parts.script and not _script_ok(parts.script)):
        return None
    if parts.region and not _region_ok(parts.region):
        parts = LanguageTag(parts.language, parts.script)
    return str(parts)


def _regions_of(language: str) -> list[str]:
    """Regions where ``language`` is the likely language (CLDR likely subtags): ``pt`` -> BR, PT, AO, ..."""
    import langcodes

    out = []
    for region in sorted(_registry().regions):
        if not region.isalpha() or not _region_ok(region):
            continue
        try:
            if langcodes.Language.get(f"und-{region}").maximize().language == language:
                out.append(region)
        except ValueError:
            continue
    return out


def _likely_region(language: str) -> str | None:
    import langcodes

    try:
        return langcodes.Language.get(language).maximize().territory
    except ValueError:
        return None


def close_tags(tag: str, n: int = 5) -> list[str]:
    """Known tags close to ``tag``, best first: the tag it is an alias of (``ger`` -> ``de``), a language
    of that name (``German`` -> ``de``), then tags that differ by a letter or a subtag."""
    out: list[str] = []

    def add(candidate: str | None) -> None:
        if candidate and candidate not in out and candidate.lower() != str(tag).strip().lower():
            out.append(candidate)

    text = str(tag).strip()
    parts = split_tag(text)
    add(_standard_alias(text))
    if parts is None:
        head = re.split(r"[-_\s]", text)[0].lower()
        if len(head) > 3:  # a language name ("German"), not a code
            add(_names().get(text.lower()))
            add(_names().get(head))
        if _language_ok(head):
            add(head)
        else:
            for c in difflib.get_close_matches(head[:3], _common_languages(), n=3, cutoff=0.6):
                add(c)
        return out[:n]
    language = parts.language
    if not _language_ok(language):
        info = _registry().languages.get(language)
        if info and info["preferred"]:
            add(str(LanguageTag(info["preferred"], parts.script, parts.region)))
        languages = difflib.get_close_matches(language, _common_languages(), n=3, cutoff=0.5)
        for c in languages:
            add(str(LanguageTag(c, parts.script if parts.script and _script_ok(parts.script) else None)))
        return out[:n]
    if parts.script and not _script_ok(parts.script):
        scripts = [s for s in _registry().scripts if _script_ok(s)]
        likely = likely_script(language)
        for s in [*([likely] if likely else []), *difflib.get_close_matches(parts.script, scripts, n=3, cutoff=0.5)]:
            add(str(LanguageTag(language, s, parts.region if parts.region and _region_ok(parts.region) else None)))
        add(language)
        return out[:n]
    if parts.region and not _region_ok(parts.region):
        add(str(LanguageTag(language, parts.script)))
        info = _registry().regions.get(parts.region)
        if info and info["preferred"]:
            add(str(LanguageTag(language, parts.script, info["preferred"])))
        regions = _regions_of(language)
        likely = _likely_region(language)
        close = difflib.get_close_matches(parts.region, regions, n=len(regions), cutoff=0.5)
        for r in [*([likely] if likely in regions else []), *close, *regions]:
            add(str(LanguageTag(language, parts.script, r)))
    return out[:n]


# ------------------------------------------------------------------------------------- meanings


def lid_label(tag: str) -> str:
    """The fastText lid.176 label of the language of ``tag``: its base language (``pt-BR`` -> ``pt``),
    lid.176's own label where it differs (``nb`` -> ``no``, ``fil`` -> ``tl``), else the macrolanguage
    of an individual language lid.176 does not know (``swh`` -> ``sw``, ``cmn`` -> ``zh``)."""
    base = base_language(tag)
    if base in LID176_LABELS:
        return base
    if base in _LID_ALIASES:
        return _LID_ALIASES[base]
    info = _registry().languages.get(base)
    if info and info["macro"] in LID176_LABELS:
        return info["macro"]
    return base


@functools.cache
def likely_script(tag: str) -> str | None:
    """The script ``tag`` is written in: its script subtag, else the likely script of its language in
    its region (CLDR likely subtags: ``zh`` -> ``Hans``, ``zh-TW`` -> ``Hant``, ``sr`` -> ``Cyrl``,
    ``sr-ME`` -> ``Latn``); ``None`` when unknown."""
    parts = split_tag(tag)
    if parts is None:
        return None
    if parts.script:
        return parts.script
    import langcodes

    try:
        return langcodes.Language.get(str(parts)).maximize().script
    except ValueError:
        return None


def tag_fallbacks(tag: str) -> tuple[str, ...]:
    """``tag`` then the broader tags a setting keyed by language falls back to, most specific first:
    ``zh-Hant-TW`` -> ``(zh-Hant-TW, zh-Hant, zh-TW, zh)``; ``pt-BR`` -> ``(pt-BR, pt)``."""
    parts = split_tag(tag)
    if parts is None:
        return (tag,)
    chain = [
        str(parts),
        str(LanguageTag(parts.language, parts.script)),
        str(LanguageTag(parts.language, None, parts.region)),
        parts.language,
    ]
    return tuple(dict.fromkeys(chain))


def display_name(tag: str, names: dict[str, str] | None = None) -> str:
    """An English name of ``tag`` for prompts: ``Portuguese (Brazil)``, ``Serbian (Latin)``,
    ``Traditional Chinese``. ``names``: language names to prefer (by tag or base language); the
    registry's name otherwise; the tag itself when nothing is known."""
    names = names or {}
    if tag in names:
        return names[tag]
    if tag in _NAME_OVERRIDES:
        return _NAME_OVERRIDES[tag]
    parts = split_tag(tag)
    if parts is None:
        return tag
    reg = _registry()
    info = reg.languages.get(parts.language)
    base = names.get(parts.language) or (re.sub(r" \((macrolanguage|individual language)\)$", "", info["name"]) if info else None)
    if base is None:
        return tag
    scoped = str(LanguageTag(parts.language, parts.script))
    if parts.region and scoped in _NAME_OVERRIDES:
        base, qualifiers = _NAME_OVERRIDES[scoped], []
    else:
        qualifiers = [_short(reg.scripts[parts.script]["name"])] if parts.script and parts.script in reg.scripts else []
    if parts.region and parts.region in reg.regions:
        qualifiers.append(reg.regions[parts.region]["name"])
    return f"{base} ({', '.join(qualifiers)})" if qualifiers else base


def _short(script_name: str) -> str:
    """``Han (Traditional variant)`` -> ``Traditional``; other names unchanged."""
    m = re.match(r"^Han \((\w+) variant\)$", script_name)
    return m.group(1) if m else script_name


__all__ = [
    "LID176_LABELS",
    "LanguageTag",
    "UnknownLanguageTag",
    "base_language",
    "canonical_case",
    "close_tags",
    "display_name",
    "is_known",
    "lid_label",
    "likely_script",
    "normalize_tag",
    "split_tag",
    "tag_fallbacks",
    "tag_value",
]
