"""bench/probe_char_lid.py: a character n-gram language ID trained on dev texts, and the AUC it reports."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import load_bench_script

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def probe():
    return load_bench_script("probe_char_lid.py")


def test_char_lid_prefers_the_target_language_for_its_own_words(probe) -> None:
    words = {
        "en": ["Danish", "Swedish", "Kenyan Shilling", "Dutch", "Turkish Lira", "Central America", "Polish", "Tuesday"],
        "de": ["Dänisch", "Schwedisch", "Kenia-Schilling", "Niederländisch", "Türkische Lira", "Zentralamerika", "Polnisch"],
        "sw": ["Kidenmaki", "Kiswidi", "Shilingi ya Kenya", "Kiholanzi", "Lira ya Uturuki", "Amerika ya Kati", "Kipolandi"],
    }
    n = max(len(v) for v in words.values())
    concepts = pl.DataFrame(
        {
            "concept_id": [f"c{i}" for i in range(n)],
            **{lang: [v[i] if i < len(v) else None for i in range(n)] for lang, v in words.items()},
            **{lang: [None] * n for lang in ("ja", "fr", "es")},
        }
    )
    vec, model = probe.train_char_lid(concepts)
    pairs = pl.DataFrame({"lang": ["sw", "sw", "de", "de"], "tgt_text": ["Kiitaliano", "Italian", "Italienisch", "Italian"]})
    f = probe.char_lid(pairs, vec, model)
    assert f[0] > 0 > f[1]  # "Ki-" looks Swahili, the English copy does not
    assert f[2] > f[3]  # "-isch" looks German


def test_auc_is_the_share_of_good_bad_pairs_ranked_right(probe) -> None:
    assert probe.auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert probe.auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert probe.auc(np.array([1.0, 4.0]), np.array([2.0, 3.0])) == 0.5
    assert np.isnan(probe.auc(np.array([]), np.array([1.0])))
