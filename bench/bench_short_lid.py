"""Language ID on short strings: fastText lid.176 (what corpusalign uses) against lingua, on real data.

Short strings (at most 6 words) in en/de/ja/sw from ``../shared/data/parallel``: the CLDR names
(languages, territories, currencies, months, weekdays) and the Debian UI strings. For each language,
the share of strings whose top guess is the right language, the share where the right language gets
at least 0.1, and the time per string. lingua is measured with all its languages loaded (what a
user with unknown input would run); install it with ``pip install lingua-language-detector``.

    python bench/bench_short_lid.py

This is the evidence behind not adopting lingua as a second opinion (docs/verification.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "parallel"
FILES = ("cldr_en_de_ja_sw.names.jsonl", "gettext_en_de_ja.ui.jsonl")
LANGS = ("en", "de", "ja", "sw")


def short_strings() -> dict[str, list[str]]:
    from corpusalign.verify.scores import SHORT_MAX_WORDS, word_count

    out: dict[str, list[str]] = {lang: [] for lang in LANGS}
    for name in FILES:
        with open(SHARED / name, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if word_count(rec.get("en") or "") > SHORT_MAX_WORDS:
                    continue
                for lang in LANGS:
                    if rec.get(lang):
                        out[lang].append(rec[lang].strip())
    return out


def main() -> int:
    from corpusalign.verify.features import lid_predictions

    data = short_strings()
    rows = []
    for lang, texts in data.items():
        started = time.perf_counter()
        top, _, expected = lid_predictions(texts, lang)
        took = time.perf_counter() - started
        rows.append(
            ("lid.176", lang, len(texts), np.mean([t == lang for t in top]), float((expected >= 0.1).mean()), took / len(texts))
        )
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        print("lingua-language-detector is not installed: only lid.176 measured")
    else:
        started = time.perf_counter()
        detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
        print(f"lingua: all languages loaded in {time.perf_counter() - started:.1f} s")
        for lang, texts in data.items():
            from lingua import Language

            want = Language.from_iso_code_639_1(getattr(IsoCode639_1, lang.upper()))
            started = time.perf_counter()
            top = detector.detect_languages_in_parallel_of(texts)
            conf = np.array(detector.compute_language_confidence_in_parallel(texts, want))
            took = time.perf_counter() - started
            rows.append(
                ("lingua", lang, len(texts), np.mean([t == want for t in top]), float((conf >= 0.1).mean()), took / len(texts))
            )
    print(f"\n{'model':<10}{'lang':<6}{'strings':>8}{'top-1 right':>13}{'P(right) >= 0.1':>17}{'ms/string':>11}")
    for model, lang, n, top1, p01, sec in rows:
        print(f"{model:<10}{lang:<6}{n:>8}{top1:>13.1%}{p01:>17.1%}{sec * 1000:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
