"""bench/probe_gate_capacity.py: thresholds placed per (language, domain) cell, and the kept shares it reports."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_bench_script


@pytest.fixture(scope="module")
def probe():
    return load_bench_script("probe_gate_capacity.py")


def test_each_cell_keeps_the_recall_share_of_its_good_pairs_and_hard_rules_still_drop(probe) -> None:
    rng = np.random.default_rng(0)
    n = 400
    langs = np.array(["de", "sw"] * (n // 2))
    doms = np.array(["short"] * (n // 4) + ["sentence"] * (n // 4) + ["short"] * (n // 4) + ["paragraph"] * (n // 4))
    y = rng.random(n) < 0.5
    p = np.where(y, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.7, n))
    hard = np.zeros(n, dtype=bool)
    hard[:5] = True
    keep = probe.decide(p, y, langs, doms, hard)
    assert not keep[hard].any()
    for lang in ("de", "sw"):
        for dom in ("short", "sentence", "paragraph"):
            cell = (langs == lang) & (doms == dom) & y
            if cell.any():
                assert keep[cell].sum() >= np.ceil(probe.RECALL * cell.sum()) - hard[cell].sum()
    # no more than needed: the threshold is the lowest kept good pair's probability in each cell
    free = probe.decide(p, y, langs, doms, None)
    assert free[y].mean() == pytest.approx(probe.RECALL, abs=0.02)


def test_scores_are_shares_kept_per_kind_and_f1(probe) -> None:
    keep = np.array([True, True, False, True, False])
    y = np.array([True, True, True, False, False])
    kinds = np.array(["good", "good", "good", "truncated", "truncated"])
    langs = np.array(["sw", "de", "de", "sw", "de"])
    s = probe.scores(keep, y, kinds, langs)
    assert s["truncated"] == 0.5 and "misaligned" not in s
    assert s["f1"] == pytest.approx(2 * 2 / (3 + 3))
    assert s["f1_sw"] == pytest.approx(2 * 1 / (2 + 1))


def test_means_table_averages_each_model_over_the_seeds(probe) -> None:
    row = {k: 0.0 for k in ("misaligned", "untranslated", "wrong_language", "truncated", "number_changed", "extra_content")}
    seeds = [
        {"trees": {**row, "extra_content": 0.1, "f1": 0.95, "f1_sw": 0.8}},
        {"trees": {**row, "extra_content": 0.2, "f1": 0.97, "f1_sw": 0.9}},
    ]
    table = probe.means_table(seeds).splitlines()
    assert table[0].startswith("| model | misaligned |") and table[0].endswith("| f1 | f1_sw |")
    assert table[2] == "| trees | 0.0% | 0.0% | 0.0% | 0.0% | 0.0% | 15.0% | 0.960 | 0.850 |"
