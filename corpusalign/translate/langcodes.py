"""Language codes of the translation models: ISO 639-1/639-3 (what corpusalign uses) to model codes.

* NLLB-200 uses FLORES-200 codes (``eng_Latn``, ``deu_Latn``, ``jpn_Jpan``, ``swh_Latn``);
* M2M100 uses ISO 639-1 codes (``__de__`` tokens), ISO 639-3 where there is none (``ast``, ``ceb``);
* multi-target OPUS-MT (Marian) models take a ``>>xxx<<`` target token, mostly ISO 639-3
  (``>>deu<<``, ``>>fra<<``), sometimes a variety with a script (``>>cmn_Hans<<``) or ISO 639-1.

:data:`LANGUAGES` maps an ISO 639-1 code to its FLORES-200 code and its ISO 639-3 (macro)language
code. Codes of three letters are accepted as well: they match FLORES-200 codes by their language
part (``swh`` -> ``swh_Latn``, ``deu`` -> ``deu_Latn``).

Example::

    >>> flores_code("ja")
    'jpn_Jpan'
    >>> marian_target_token("de", [">>deu<<", ">>fra<<"])
    '>>deu<<'
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

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


class UnknownLanguage(ValueError):
    """A language code has no counterpart in the model's vocabulary."""


def iso3(code: str) -> str:
    """The ISO 639-3 code of ``code`` (itself when it already has three letters or is unknown)."""
    return LANGUAGES[code][1] if code in LANGUAGES else code


def flores_code(code: str, available: Collection[str] | None = None) -> str:
    """The FLORES-200 code (NLLB) of an ISO 639-1/639-3 code; raises :class:`UnknownLanguage`.

    With ``available`` (the model's language tokens), the code must be among them; a three-letter
    code matches the first available code with that language part.
    """
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
    """The M2M100 code (ISO 639-1, else the three-letter code) among ``available``."""
    for c in (code, *(k for k, (_, i3) in LANGUAGES.items() if i3 == code)):
        if c in available:
            return c
    raise UnknownLanguage(code)


def marian_target_token(code: str, tokens: Iterable[str]) -> str:
    """The ``>>xxx<<`` target token of a multi-target Marian model for ``code``.

    Tried in order: the ISO 639-3 code (``>>deu<<``), the ISO 639-1 code (``>>de<<``), the
    individual languages of a macrolanguage (``>>cmn<<``), then the first variety with a script
    (``>>cmn_Hans<<``, ``>>deu_Latn<<``).
    """
    available = [t[2:-2] for t in tokens if t.startswith(">>") and t.endswith("<<")]
    names = [iso3(code), code, *_MARIAN_VARIETIES.get(code, ())]
    for name in names:
        if name in available:
            return f">>{name}<<"
    for name in names:
        for a in available:
            if a.startswith(name + "_"):
                return f">>{a}<<"
    raise UnknownLanguage(code)


__all__ = ["LANGUAGES", "UnknownLanguage", "flores_code", "iso3", "m2m100_code", "marian_target_token"]
