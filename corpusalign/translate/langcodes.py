"""Language codes of the translation models: BCP-47 tags (what corpusalign uses) to model codes.

* NLLB-200 uses FLORES-200 codes (``eng_Latn``, ``deu_Latn``, ``jpn_Jpan``, ``swh_Latn``);
* M2M100 uses ISO 639-1 codes (``__de__`` tokens), ISO 639-3 where there is none (``ast``, ``ceb``);
* multi-target OPUS-MT (Marian) models take a ``>>xxx<<`` target token, mostly ISO 639-3
  (``>>deu<<``, ``>>fra<<``), sometimes a variety with a script (``>>cmn_Hans<<``), a region
  (``>>pt_br<<``) or ISO 639-1.

:data:`LANGUAGES` maps an ISO 639-1 code to its FLORES-200 code and its ISO 639-3 (macro)language
code. Codes of three letters are accepted as well: they match FLORES-200 codes by their language
part (``swh`` -> ``swh_Latn``, ``deu`` -> ``deu_Latn``).

Tags with a script or a region (:mod:`corpusalign.langtags`):

==========  ==========================  ========  ==============================================
tag         NLLB (FLORES-200)           M2M100    Marian target token, first one the model has
==========  ==========================  ========  ==============================================
pt-BR       por_Latn                    pt        >>pt_BR<< / >>pt_br<<, >>por<<, >>pt<<
zh-Hant     zho_Hant                    zh        >>zho_Hant<<, >>cmn_Hant<<, >>zho<<, >>cmn<<
zh-TW       zho_Hant (likely script)    zh        as zh-Hant, then >>zh_TW<<
sr-Latn     none: refused (see below)   sr        >>srp_Latn<<, >>srp<<, >>sr<<
sr-Cyrl     srp_Cyrl                    sr        >>srp_Cyrl<<, >>srp<<, >>sr<<
sr          srp_Cyrl                    sr        >>srp<<, >>sr<<, >>srp_Cyrl<<
==========  ==========================  ========  ==============================================

A region picks no FLORES-200 code of its own (FLORES-200 has one code per language and script);
a script does: ``<language>_<Script>`` must be a FLORES-200 code, or, with the model's tokens, one
of them. FLORES-200 has Serbian in Cyrillic only (``srp_Cyrl``), so NLLB refuses ``sr-Latn``
rather than write Cyrillic for a Latin-script build (verification would drop every row); build
``sr`` and transliterate, or use a model that has Latin Serbian. M2M100 has no script or region
tokens: it gets the base language and writes what it writes (``sr``: mostly Cyrillic; ``zh``:
mostly Simplified), and verification's script check drops rows in the wrong script.

Example::

    >>> flores_code("ja"), flores_code("zh-Hant"), flores_code("pt-BR")
    ('jpn_Jpan', 'zho_Hant', 'por_Latn')
    >>> marian_target_token("de", [">>deu<<", ">>fra<<"])
    '>>deu<<'
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from corpusalign.langtags import likely_script, split_tag

#: ISO 639-1 code -> (FLORES-200 code, ISO 639-3 code of the (macro)language)
LANGUAGES: dict[str, tuple[str, str]] = {
    "af": ("afr_Latn", "afr"), "am": ("amh_Ethi", "amh"), "ar": ("arb_Arab", "ara"), "az": ("azj_Latn", "aze"),
    "be": ("bel_Cyrl", "bel"), "bg": ("bul_Cyrl", "bul"), "bn": ("ben_Beng", "ben"), "bs": ("bos_Latn", "bos"),
    "ca": ("cat_Latn", "cat"), "cs": ("ces_Latn", "ces"), "cy": ("cym_Latn", "cym"), "da": ("dan_Latn", "dan"),
    "de": ("deu_Latn", "deu"), "el": ("ell_Grek", "ell"), "en": ("eng_Latn", "eng"), "eo": ("epo_Latn", "epo"),
    "es": ("spa_Latn", "spa"), "et": ("est_Latn", "est"), "eu": ("eus_Latn", "eus"), "fa": ("pes_Arab", "fas"),
    "fi": ("fin_Latn", "fin"), "fr": ("fra_Latn", "fra"), "ga": ("gle_Latn", "gle"), "gd": ("gla_Latn", "gla"),
    "gl": ("glg_Latn", "glg"), "gu": ("guj_Gujr", "guj"), "ha": ("hau_Latn", "hau"), "he": ("heb_Hebr", "heb"),
    "hi": ("hin_Deva", "hin"), "hr": ("hrv_Latn", "hrv"), "ht": ("hat_Latn", "hat"), "hu": ("hun_Latn", "hun"),
    "hy": ("hye_Armn", "hye"), "id": ("ind_Latn", "ind"), "ig": ("ibo_Latn", "ibo"), "is": ("isl_Latn", "isl"),
    "it": ("ita_Latn", "ita"), "ja": ("jpn_Jpan", "jpn"), "jv": ("jav_Latn", "jav"), "ka": ("kat_Geor", "kat"),
    "kk": ("kaz_Cyrl", "kaz"), "km": ("khm_Khmr", "khm"), "kn": ("kan_Knda", "kan"), "ko": ("kor_Hang", "kor"),
    "ky": ("kir_Cyrl", "kir"), "lb": ("ltz_Latn", "ltz"), "lo": ("lao_Laoo", "lao"), "lt": ("lit_Latn", "lit"),
    "lv": ("lvs_Latn", "lav"), "mg": ("plt_Latn", "mlg"), "mk": ("mkd_Cyrl", "mkd"), "ml": ("mal_Mlym", "mal"),
    "mn": ("khk_Cyrl", "mon"), "mr": ("mar_Deva", "mar"), "ms": ("zsm_Latn", "msa"), "mt": ("mlt_Latn", "mlt"),
    "my": ("mya_Mymr", "mya"), "nb": ("nob_Latn", "nob"), "ne": ("npi_Deva", "nep"), "nl": ("nld_Latn", "nld"),
    "nn": ("nno_Latn", "nno"), "no": ("nob_Latn", "nor"), "ny": ("nya_Latn", "nya"), "pa": ("pan_Guru", "pan"),
    "pl": ("pol_Latn", "pol"), "ps": ("pbt_Arab", "pus"), "pt": ("por_Latn", "por"), "ro": ("ron_Latn", "ron"),
    "ru": ("rus_Cyrl", "rus"), "si": ("sin_Sinh", "sin"), "sk": ("slk_Latn", "slk"), "sl": ("slv_Latn", "slv"),
    "so": ("som_Latn", "som"), "sq": ("als_Latn", "sqi"), "sr": ("srp_Cyrl", "srp"), "sv": ("swe_Latn", "swe"),
    "sw": ("swh_Latn", "swa"), "ta": ("tam_Taml", "tam"), "te": ("tel_Telu", "tel"), "tg": ("tgk_Cyrl", "tgk"),
    "th": ("tha_Thai", "tha"), "tl": ("tgl_Latn", "tgl"), "tr": ("tur_Latn", "tur"), "uk": ("ukr_Cyrl", "ukr"),
    "ur": ("urd_Arab", "urd"), "uz": ("uzn_Latn", "uzb"), "vi": ("vie_Latn", "vie"), "xh": ("xho_Latn", "xho"),
    "yi": ("ydd_Hebr", "yid"), "yo": ("yor_Latn", "yor"), "zh": ("zho_Hans", "zho"), "zu": ("zul_Latn", "zul"),
}  # fmt: skip

#: Individual languages that multi-target OPUS-MT models use for a macrolanguage (``>>cmn_Hans<<``).
_MARIAN_VARIETIES: dict[str, tuple[str, ...]] = {
    "zh": ("cmn", "zho"), "ar": ("arb", "ara"), "fa": ("pes", "fas"), "ms": ("zsm", "msa"), "sw": ("swh", "swa"),
    "no": ("nob", "nor"), "sq": ("als", "sqi"), "uz": ("uzn", "uzb"), "lv": ("lvs", "lav"), "et": ("ekk", "est"),
}  # fmt: skip


#: FLORES-200 codes of the languages it has in more than one script (every other language: one script).
FLORES_SCRIPT_VARIANTS = frozenset(
    "ace_Arab ace_Latn arb_Arab arb_Latn bjn_Arab bjn_Latn kas_Arab kas_Deva knc_Arab knc_Latn min_Arab min_Latn "
    "taq_Latn taq_Tfng zho_Hans zho_Hant".split()
)


class UnknownLanguage(ValueError):
    """A language code has no counterpart in the model's vocabulary."""


def iso3(code: str) -> str:
    """The ISO 639-3 code of ``code``'s language (itself when it already has three letters or is unknown)."""
    code = _base(code)
    return LANGUAGES[code][1] if code in LANGUAGES else code


def _base(code: str) -> str:
    """The language subtag of a tag (``pt-BR`` -> ``pt``); other strings unchanged."""
    parts = split_tag(code)
    return parts.language if parts and (parts.script or parts.region) else code


def _script(code: str) -> str | None:
    """The script a tag asks for: its script subtag, or the likely script of its region when that differs
    from the language's own (``zh-TW`` -> ``Hant``); ``None`` for a bare language or a region of the usual script."""
    parts = split_tag(code)
    if parts is None or not (parts.script or parts.region):
        return None
    script = likely_script(code)
    return script if parts.script or script != likely_script(parts.language) else None


def flores_code(code: str, available: Collection[str] | None = None) -> str:
    """The FLORES-200 code (NLLB) of a language tag; raises :class:`UnknownLanguage`.

    With ``available`` (the model's language tokens), the code must be among them; a three-letter
    code matches the first available code with that language part. A region is dropped (``pt-BR`` ->
    ``por_Latn``); a script must exist for the language (``zh-Hant`` -> ``zho_Hant``; ``sr-Latn`` has
    none in FLORES-200).
    """
    tag, script = code, _script(code)
    code = _base(code)
    if script == likely_script(code):  # zh-Hans, sr-Cyrl, ko-Kore: the language's own code
        script = None
    if script is not None:
        lang3 = LANGUAGES[code][0].split("_")[0] if code in LANGUAGES else code
        wanted = f"{lang3}_{script}"
        known = available if available is not None else FLORES_SCRIPT_VARIANTS | {c for c, _ in LANGUAGES.values()}
        if wanted in known:
            return wanted
        raise UnknownLanguage(tag)
    candidates: list[str] = []
    if code in LANGUAGES:
        candidates.append(LANGUAGES[code][0])
    if available is not None:
        keys = {code, iso3(code)} | ({LANGUAGES[code][0].split("_")[0]} if code in LANGUAGES else set())
        candidates += sorted(c for c in available if c.split("_")[0] in keys)
        for c in candidates:
            if c in available:
                return c
        raise UnknownLanguage(code)
    if candidates:
        return candidates[0]
    raise UnknownLanguage(code)


def m2m100_code(code: str, available: Collection[str]) -> str:
    """The M2M100 code (ISO 639-1, else the three-letter code) among ``available``; a tag's script and
    region are dropped (``pt-BR`` -> ``pt``, ``zh-Hant`` -> ``zh``): M2M100 has no tokens for them."""
    code = _base(code)
    for c in (code, *(k for k, (_, i3) in LANGUAGES.items() if i3 == code)):
        if c in available:
            return c
    raise UnknownLanguage(code)


def marian_target_token(code: str, tokens: Iterable[str]) -> str:
    """The ``>>xxx<<`` target token of a multi-target Marian model for ``code``.

    Tried in order: the ISO 639-3 code (``>>deu<<``), the ISO 639-1 code (``>>de<<``), the
    individual languages of a macrolanguage (``>>cmn<<``), then the first variety with a script
    (``>>cmn_Hans<<``, ``>>deu_Latn<<``; the language's usual script first). A tag with a script or
    region first tries the varieties that name it (``zh-Hant``: ``>>zho_Hant<<``, ``>>cmn_Hant<<``; ``pt-BR``: ``>>pt_BR<<``,
    ``>>pt_br<<``), then the tokens of its language; a variety in another script is never taken
    (``zh-Hant`` does not get ``>>cmn_Hans<<``).
    """
    available = [t[2:-2] for t in tokens if t.startswith(">>") and t.endswith("<<")]
    parts = split_tag(code)
    script = _script(code)
    region = parts.region if parts else None
    base = _base(code)
    names = [iso3(base), base, *_MARIAN_VARIETIES.get(base, ())]
    wanted = [f"{n}_{script}" for n in names] if script else []
    wanted += [f"{n}_{region}" for n in names] + [f"{n}_{region.lower()}" for n in names] if region else []
    for name in wanted:
        if name in available:
            return f">>{name}<<"
    for name in names:
        if name in available:
            return f">>{name}<<"
    usual = script or likely_script(base)  # a bare sr prefers >>srp_Cyrl<<, a bare zh >>cmn_Hans<<
    for name in names:
        for a in available:
            if a.startswith(name + "_") and a.split("_")[1] == usual:
                return f">>{a}<<"
    for name in names if script is None else ():
        for a in available:
            if a.startswith(name + "_"):
                return f">>{a}<<"
    raise UnknownLanguage(code)


__all__ = ["FLORES_SCRIPT_VARIANTS", "LANGUAGES", "UnknownLanguage", "flores_code", "iso3", "m2m100_code", "marian_target_token"]
