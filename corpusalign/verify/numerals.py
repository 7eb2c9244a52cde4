"""Spelled-out numbers (``two``, ``vierundzwanzig``, ``二十四``, ``July``) read as digit strings.

Translations often write a number in words on one side and in digits on the other
("two boyfriends" / "恋人が2人"). :func:`spelled_numbers` finds such numbers so that
:func:`corpusalign.verify.scores.number_agreement` can accept them. The lexicon is one union over
languages (en, de, fr, es, it, pt, nl, sw cardinals and ordinals, month names, Chinese/Japanese
numerals), so a word that is a number in one language and a plain word in another ("sei", "elf",
"May") is read as a number; ``number_agreement`` therefore only counts a spelled number when the
other text has the same number, which makes such false readings harmless.

Example::

    >>> sorted(spelled_numbers("Twenty-four cats and fifteen hundred cows since July"))
    ['1500', '24', '7']
    >>> sorted(spelled_numbers("二十四人と三匹"))
    ['24', '3']
"""

from __future__ import annotations

import re
import unicodedata

_UNITS = {
    # en
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "a": 1,
    "an": 1,
    "once": 1,
    "single": 1,
    "twice": 2,
    "both": 2,
    "thrice": 3,
    "dozen": 12,
    # de
    "null": 0,
    "ein": 1,
    "eine": 1,
    "einen": 1,
    "einem": 1,
    "einer": 1,
    "eins": 1,
    "zweimal": 2,
    "zwei": 2,
    "drei": 3,
    "vier": 4,
    "fünf": 5,
    "sechs": 6,
    "sieben": 7,
    "acht": 8,
    "neun": 9,
    "zehn": 10,
    "elf": 11,
    "zwölf": 12,
    "dreizehn": 13,
    "vierzehn": 14,
    "fünfzehn": 15,
    "sechzehn": 16,
    "siebzehn": 17,
    "achtzehn": 18,
    "neunzehn": 19,
    "erste": 1,
    "ersten": 1,
    "erster": 1,
    "zweite": 2,
    "zweiten": 2,
    "dritte": 3,
    "dritten": 3,
    "vierte": 4,
    "vierten": 4,
    "fünfte": 5,
    "fünften": 5,
    "sechste": 6,
    "sechsten": 6,
    "siebte": 7,
    "siebten": 7,
    "achte": 8,
    "achten": 8,
    "neunte": 9,
    "neunten": 9,
    "zehnte": 10,
    "zehnten": 10,
    # fr
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "treize": 13,
    "quatorze": 14,
    "quinze": 15,
    "seize": 16,
    "premier": 1,
    "première": 1,
    "deuxième": 2,
    "troisième": 3,
    # es / pt / it
    "uno": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "siete": 7,
    "ocho": 8,
    "nueve": 9,
    "diez": 10,
    "doce": 12,
    "quince": 15,
    "primero": 1,
    "primera": 1,
    "segundo": 2,
    "tercero": 3,
    "dois": 2,
    "duas": 2,
    "três": 3,
    "quatro": 4,
    "sete": 7,
    "oito": 8,
    "nove": 9,
    "dez": 10,
    "due": 2,
    "tre": 3,
    "sei": 6,
    "sette": 7,
    "otto": 8,
    "dieci": 10,
    "primo": 1,
    # nl
    "een": 1,
    "twee": 2,
    "vijf": 5,
    "zes": 6,
    "zeven": 7,
    "negen": 9,
    "tien": 10,
    # sw
    "moja": 1,
    "mbili": 2,
    "tatu": 3,
    "nne": 4,
    "tano": 5,
    "sita": 6,
    "saba": 7,
    "nane": 8,
    "tisa": 9,
    "kumi": 10,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "twentieth": 20,
    "thirtieth": 30,
    "fortieth": 40,
    "fiftieth": 50,
    "zwanzig": 20,
    "dreißig": 30,
    "dreissig": 30,
    "vierzig": 40,
    "fünfzig": 50,
    "sechzig": 60,
    "siebzig": 70,
    "achtzig": 80,
    "neunzig": 90,
    "vingt": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
    "veinte": 20,
    "treinta": 30,
    "cuarenta": 40,
    "cincuenta": 50,
    "vinte": 20,
    "trinta": 30,
    "venti": 20,
    "trenta": 30,
    "ishirini": 20,
    "thelathini": 30,
    "arobaini": 40,
    "hamsini": 50,
}
_SCALES = {
    "hundred": 100,
    "hundredth": 100,
    "thousand": 1000,
    "million": 10**6,
    "hundert": 100,
    "tausend": 1000,
    "cent": 100,
    "cien": 100,
    "cento": 100,
    "mille": 1000,
    "mil": 1000,
    "mia": 100,
    "elfu": 1000,
}
_MONTHS = {
    name: i + 1
    for names in (
        "january february march april may june july august september october november december",
        "januar februar märz april mai juni juli august september oktober november dezember",
        "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    )
    for i, name in enumerate(names.split())
}
_DE_UNIT = "ein|zwei|drei|vier|fünf|sechs|sieben|acht|neun"
_DE_COMPOUND = re.compile(
    rf"^({_DE_UNIT})und(zwanzig|dreißig|dreissig|vierzig|fünfzig|sechzig|siebzig|achtzig|neunzig)(ste[nrm]?)?$"
)
_DE_UNITS = {w: i + 1 for i, w in enumerate(_DE_UNIT.split("|"))}
_WORD = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"[〇零一二三四五六七八九十百千万]+")
_DIGITS_THEN_CJK_SCALE = re.compile(r"(\d+)([十百千万億])")  # "１００万" (NFKC-normalised first)
_CJK_MULTIPLIERS = {"十": 10, "百": 100, "千": 1000, "万": 10**4, "億": 10**8}
_CJK_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CJK_SCALES = {"十": 10, "百": 100, "千": 1000, "万": 10000}
#: Clock words: English names of a time of day, with every hour a translation may write for them
#: ("midnight" is 午前０時 or 夜中の１２時).
_CLOCK_WORDS = {"midnight": ("0", "12", "24"), "noon": ("12",), "mitternacht": ("0", "12", "24"), "mittag": ("12",)}
#: "half past": Japanese 二時半 is 2:30 (半 after 時, an hour, is thirty minutes).
_HALF_HOUR = re.compile(r"時半")
#: A regnal or ordinal Roman numeral after a capitalised name: "Elizabeth II", "Louis XIV", "Pope John XXIII".
_REGNAL = re.compile(r"\b[A-Z][a-z]+ ((?=[IVXL])L?X{0,3}(?:IX|IV|V?I{0,3}))\b")
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50}


def _word_value(word: str) -> tuple[str, int] | None:
    """('unit'|'tens'|'scale'|'month', value) of one lower-case word, or None."""
    if word in _UNITS:
        return "unit", _UNITS[word]
    if word in _TENS:
        return "tens", _TENS[word]
    if word in _SCALES:
        return "scale", _SCALES[word]
    if word in _MONTHS:
        return "month", _MONTHS[word]
    m = _DE_COMPOUND.match(word)
    if m:
        return "unit", _DE_UNITS[m.group(1)] + _TENS[m.group(2)]
    for scale in ("tausend", "hundert"):  # "zweitausend", "zehntausend", "dreihundert"
        if word.endswith(scale) and len(word) > len(scale):
            head = _word_value(word[: -len(scale)])
            if head is not None and head[0] in ("unit", "tens"):
                return "unit", head[1] * _SCALES[scale]
    return None


def _latin_numbers(text: str) -> set[str]:
    found: set[str] = set()
    total, current, last = 0, 0, ""  # last: kind of the previous number word, "" outside a number

    def flush() -> None:
        nonlocal total, current, last
        if last:
            found.add(str(total + current))
        total, current, last = 0, 0, ""

    for part in _WORD.findall(text.lower().replace("-", " ")):
        word = _word_value(part)
        if word is None:
            flush()
            continue
        kind, value = word
        if kind == "month":
            flush()
            found.add(str(value))
        elif kind == "scale":
            current = max(current, 1) * value
            if value >= 1000:
                total, current = total + current, 0
            last = kind
        else:
            if not ((last == "tens" and kind == "unit" and value < 10) or last == "scale"):
                flush()
            current += value
            last = kind
    flush()
    return found


def _cjk_value(run: str) -> int:
    total, section, digit = 0, 0, None
    for ch in run:
        if ch in _CJK_DIGITS:
            digit = _CJK_DIGITS[ch] if digit is None else digit * 10 + _CJK_DIGITS[ch]
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * _CJK_SCALES[ch]
            digit = None
    return total + section + (digit or 0)


def multiply_cjk_scales(text: str) -> str:
    """``text`` with ASCII digits before a Chinese/Japanese scale multiplied out: ``"1万円"`` -> ``"10000円"``."""
    return _DIGITS_THEN_CJK_SCALE.sub(
        lambda m: str(int(m.group(1)) * _CJK_MULTIPLIERS[m.group(2)]) if m.group(1).isascii() else m.group(0), text
    )


def _roman_value(numeral: str) -> int:
    values = [_ROMAN[ch] for ch in numeral]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def spelled_numbers(text: str) -> set[str]:
    """Numbers written as words or Chinese/Japanese numerals in ``text``, as digit strings.

    Months count as 1-12; clock words as their hours ("noon" 12, "midnight" 0, 12 or 24); 時半 adds 30
    (half past the hour); a Roman numeral of two or more letters after a capitalised name ("Elizabeth
    II") its value. A lone 万 (as in 万全, "thorough") is not a number.
    """
    if not text:
        return set()
    found = _latin_numbers(text)
    found.update(str(_cjk_value(run)) for run in _CJK.findall(text) if run != "万")
    for word in _WORD.findall(text.lower()):
        found.update(_CLOCK_WORDS.get(word, ()))
    if _HALF_HOUR.search(text):
        found.add("30")
    found.update(str(_roman_value(m)) for m in _REGNAL.findall(text) if len(m) >= 2)
    for digits, scale in _DIGITS_THEN_CJK_SCALE.findall(unicodedata.normalize("NFKC", text)):
        if digits.isascii():
            found.add(str(int(digits) * _CJK_MULTIPLIERS[scale]))
    return found
