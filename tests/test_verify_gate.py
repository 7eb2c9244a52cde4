"""The verification gate: serialisation, design matrix, probabilities, and decide()'s reasons."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import polars as pl
import pytest

from corpusalign.verify.features import FEATURE_COLUMNS
from corpusalign.verify.gate import (
    DEFAULT_GATES,
    DEFAULT_IMPUTE,
    DESIGN_COLUMNS,
    REASONS,
    LanguageGate,
    decide,
    design_matrix,
    len_z,
    predict_proba,
)

GATE = LanguageGate(weights={"cos": 10.0}, bias=-8.0, threshold=0.5, len_log_ratio_mean=0.0, len_log_ratio_std=0.2)

GOOD = {
    "cos": 0.95,
    "margin": 1.05,
    "nn_pair": True,
    "len_log_ratio": 0.0,
    "num_agree": 1.0,
    "placeholder_ok": True,
    "copy_sim": 0.05,
    "script_ok": 1.0,
    "lid_expected": 0.95,
}


def _rows(*changes: dict) -> pl.DataFrame:
    return pl.DataFrame([{**GOOD, **c} for c in changes])


def test_round_trip_and_validation() -> None:
    gate = LanguageGate(
        weights={"cos": 1.5, "margin": 2.0},
        bias=-1.0,
        threshold=0.4,
        len_log_ratio_mean=0.1,
        len_log_ratio_std=0.2,
        precision=0.97,
        recall=0.95,
        len_log_ratio_slope=-0.1,
        rules={"copy_sim_max": 0.8},
        impute={"margin": 1.0},
        n_train=100,
    )
    d = gate.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert LanguageGate.from_dict(d) == gate
    with pytest.raises(ValueError, match="unknown gate keys"):
        LanguageGate.from_dict({**d, "treshold": 0.5})
    with pytest.raises(ValueError, match="unknown gate weights"):
        LanguageGate.from_dict({**d, "weights": {"cosine": 1.0}})
    with pytest.raises(KeyError):
        LanguageGate.from_dict({"weights": {}, "bias": 0.0})
    with pytest.raises(ValueError):
        LanguageGate(weights={}, bias=0.0, threshold=1.5, len_log_ratio_mean=0.0, len_log_ratio_std=0.2)


def test_design_matrix_derives_and_imputes() -> None:
    feats = _rows({"len_log_ratio": -0.4}, {"len_log_ratio": 0.4, "margin": None, "nn_pair": None, "lid_expected": None})
    x = design_matrix(feats, GATE)
    col = {c: x[:, i] for i, c in enumerate(DESIGN_COLUMNS)}
    assert x.shape == (2, len(DESIGN_COLUMNS))
    assert col["len_z_below"].tolist() == pytest.approx([2.0, 0.0])
    assert col["len_z_above"].tolist() == pytest.approx([0.0, 2.0])
    assert col["margin"][1] == GATE.imputed("margin")
    assert col["nn_pair"].tolist() == [1.0, 0.5]
    assert col["lid_expected"][1] == GATE.imputed("lid_expected")
    assert np.isfinite(x).all()
    # without the extra columns (src_chars, end_punct_ok, sent_diff, prefix_gain, source_gap) neutral values are used
    assert col["end_punct_ok"].tolist() == [1.0, 1.0] and col["sent_extra"].tolist() == [0.0, 0.0]
    assert col["prefix_gain"].tolist() == [GATE.imputed("prefix_gain")] * 2
    assert col["source_gap"].tolist() == [GATE.imputed("source_gap")] * 2


def test_prefix_gain_and_source_gap_inputs() -> None:
    gate = LanguageGate(
        weights={"prefix_gain": -20.0, "source_gap": -20.0},
        bias=0.0,
        threshold=0.5,
        len_log_ratio_mean=0.0,
        len_log_ratio_std=0.2,
        impute={"prefix_gain": -0.04, "source_gap": -0.15},
    )
    feats = _rows(
        {"prefix_gain": -0.05, "source_gap": -0.2},  # a faithful pair
        {"prefix_gain": 0.06, "source_gap": -0.2},  # its prefix matches the source better: extra content
        {"prefix_gain": -0.05, "source_gap": 0.05},  # another source fits the target better
        {"prefix_gain": None, "source_gap": None},  # short target, pool of one: the gate's typical values
    )
    col = {c: design_matrix(feats, gate)[:, i] for i, c in enumerate(DESIGN_COLUMNS)}
    assert col["prefix_gain"].tolist() == pytest.approx([-0.05, 0.06, -0.05, -0.04])
    assert col["source_gap"].tolist() == pytest.approx([-0.2, -0.2, 0.05, -0.15])
    p = predict_proba(feats, gate)
    assert p[0] > 0.5 and p[3] > 0.5 and p[1] < p[0] and p[2] < p[0]
    # a gate written before these inputs existed (no weights, no imputed values) still loads and ignores them
    old = {k: v for k, v in gate.to_dict().items() if k != "impute"}
    old["weights"] = {"cos": 10.0}
    loaded = LanguageGate.from_dict(old)
    assert loaded.imputed("prefix_gain") == DEFAULT_IMPUTE["prefix_gain"] and loaded.weights.get("source_gap") is None
    assert predict_proba(feats, loaded).tolist() == pytest.approx([predict_proba(feats[:1], loaded)[0]] * 4)


def test_length_z_depends_on_source_length() -> None:
    gate = LanguageGate(
        weights={}, bias=0.0, threshold=0.5, len_log_ratio_mean=0.0, len_log_ratio_std=0.1, len_log_ratio_var_chars=0.4
    )
    feats = pl.DataFrame({"len_log_ratio": [-0.5, -0.5], "src_chars": [10, 1000]})
    z = len_z(feats, gate)
    assert abs(z[0]) < abs(z[1])  # short texts vary more: the same ratio is less surprising


def test_predict_proba_follows_the_weights() -> None:
    p = predict_proba(_rows({"cos": 0.95}, {"cos": 0.5}), GATE)
    assert p[0] > 0.5 > p[1]
    assert predict_proba(pl.DataFrame(schema={c: pl.Float32 for c in FEATURE_COLUMNS}), GATE).shape == (0,)


@pytest.mark.parametrize(
    ("change", "lid", "reason"),
    [
        ({}, None, None),
        ({"copy_sim": 1.0}, None, "untranslated"),
        ({"script_ok": 0.0}, None, "wrong_language"),
        ({"lid_expected": 0.0}, "fr", "wrong_language"),
        ({"placeholder_ok": False}, None, "placeholder_mismatch"),
        ({"num_agree": 0.0}, None, "number_mismatch"),
        ({"len_log_ratio": -1.2}, None, "truncated"),
        ({"nn_pair": False, "margin": 0.9}, None, "misaligned"),
        ({"cos": 0.5}, None, "low_similarity"),
        ({"cos": 0.5, "margin": 0.98}, None, "misaligned"),  # low probability, with a soft sign of misalignment
        ({"cos": 0.5, "len_log_ratio": -0.5}, None, "truncated"),
    ],
)
def test_decide_gives_each_reason(change: dict, lid: str | None, reason: str | None) -> None:
    reasons, details = decide(_rows(change), GATE, [lid], "de")
    assert reasons == [reason]
    assert (details[0] is None) == (reason is None)
    assert reason is None or reason in REASONS


def test_decide_order_most_specific_first_and_uses_verify_p() -> None:
    feats = _rows({"copy_sim": 1.0, "num_agree": 0.0, "placeholder_ok": False})
    assert decide(feats, GATE, None, "de")[0] == ["untranslated"]
    # a stored probability wins over recomputing it
    low = _rows({}).with_columns(pl.lit(0.1, dtype=pl.Float32).alias("verify_p"))
    assert decide(low, GATE, None, "de")[0] == ["low_similarity"]
    with pytest.raises(ValueError):
        decide(_rows({}), GATE, ["de", "de"], "de")


def test_language_id_needs_another_top_guess() -> None:
    # P(expected) 0 but the top guess is the expected language itself (or unknown): no hard rule
    assert decide(_rows({"lid_expected": 0.0}), GATE, ["de"], "de")[0] == [None]
    assert decide(_rows({"lid_expected": 0.0}), GATE, None, "de")[0] == [None]


def test_language_id_hard_rule_needs_a_confident_other_guess() -> None:
    """A hesitant top guess (fastText's ``fr`` at 0.19 for a Swahili sentence) does not decide alone:
    the probability does; a confident one (or one of unknown confidence) still drops the row."""
    ruled_out = _rows({"lid_expected": 0.0}, {"lid_expected": 0.0}, {"lid_expected": 0.0})
    reasons, _ = decide(ruled_out, GATE, ["fr", "fr", "fr"], "de", [0.19, 0.97, None])
    assert reasons == [None, "wrong_language", "wrong_language"]
    with pytest.raises(ValueError, match="lid_score"):
        decide(ruled_out, GATE, ["fr", "fr", "fr"], "de", [0.9])
    stricter = LanguageGate.from_dict({**GATE.to_dict(), "rules": {"lid_other_min": 0.1}})
    assert decide(ruled_out[:1], stricter, ["fr"], "de", [0.19])[0] == ["wrong_language"]


def test_shipped_gates() -> None:
    assert {"de", "ja", "sw", "*"} <= set(DEFAULT_GATES)
    for gate in DEFAULT_GATES.values():
        assert 0.0 < gate.threshold < 1.0
        assert gate.precision is not None and gate.recall is not None
    doc = json.loads(resources.files("corpusalign.verify").joinpath("gates_e5_small.json").read_text(encoding="utf-8"))
    prov = doc["provenance"]
    assert {"command", "data", "date", "embedder"} <= set(prov)
    assert "calibrate" in prov["command"]
    # the shipped German gate keeps a plain good pair and rejects a copy of the source
    good = _rows({"cos": 0.93, "margin": 1.06, "src_chars": 30, "end_punct_ok": True, "sent_diff": 0, "lid_expected": 0.99})
    copy = _rows({"cos": 1.0, "margin": 1.1, "copy_sim": 1.0, "lid_expected": 0.0})
    assert decide(good, DEFAULT_GATES["de"], ["de"], "de")[0] == [None]
    assert decide(copy, DEFAULT_GATES["de"], ["en"], "de")[0] == ["untranslated"]


def _domain_gate() -> LanguageGate:
    """A gate whose short strings have their own threshold, no length rule and their own length model."""
    from corpusalign.verify.gate import DomainGate

    short = DomainGate(
        weights={"cos": 2.0},
        bias=-1.0,
        threshold=0.2,
        rules={"len_z_max": 1e9, "neutral_copy_ok": 1.0},
        length={"len_log_ratio_mean": -0.5, "len_log_ratio_std": 0.5, "len_log_ratio_slope": 0.0, "len_log_ratio_var_chars": 0.0},
    )
    return LanguageGate(**{**GATE.__dict__, "domains": {"short": short}})


def test_domain_gate_round_trip_and_validation() -> None:
    from corpusalign.verify.gate import DomainGate

    gate = _domain_gate()
    d = json.loads(json.dumps(gate.to_dict()))
    assert LanguageGate.from_dict(d) == gate
    assert "domains" not in GATE.to_dict()  # a gate without domains reads as it did before they existed
    with pytest.raises(ValueError, match="unknown gate domains"):
        LanguageGate.from_dict({**d, "domains": {"tweets": {}}})
    with pytest.raises(ValueError, match="unknown domain rules"):
        DomainGate(rules={"len_max": 1.0})
    with pytest.raises(ValueError, match="unknown domain gate keys"):
        DomainGate.from_dict({"treshold": 0.1})
    with pytest.raises(ValueError, match="length model"):
        DomainGate(length={"len_log_ratio_mean": 0.0})


def test_a_domain_has_its_own_threshold_rules_and_length_model() -> None:
    gate = _domain_gate()
    # the same scores, once for a one-word source (short string) and once for a 12-word sentence
    rows = _rows(
        {"cos": 0.75, "src_words": 1, "len_log_ratio": -1.2},
        {"cos": 0.75, "src_words": 12, "len_log_ratio": -1.2},
        {"cos": 0.75, "src_words": 12, "len_log_ratio": 0.0},
    )
    p = predict_proba(rows, gate)
    assert p[0] != pytest.approx(p[1])  # the short string's weight and bias offsets apply to it alone
    z = len_z(rows, gate)
    assert z[0] == pytest.approx((-1.2 + 0.5) / 0.5) and z[1] == pytest.approx(-1.2 / 0.2)
    reasons, _ = decide(rows, gate, None, "de")
    # the sentence is truncated (z -6 against the language's model); the short string is not judged by length
    assert reasons[1] == "truncated" and reasons[0] != "truncated"
    # thresholds: at cos 0.7 the sentence has p = sigmoid(7 - 8) = 0.27 < 0.5; the short string
    # p = sigmoid(7 + 1.4 - 8 - 1) = 0.35, over its own threshold of 0.2
    same = _rows({"cos": 0.7, "src_words": 1}, {"cos": 0.7, "src_words": 12})
    assert decide(same, gate, None, "de")[0] == [None, "low_similarity"]


def test_language_neutral_copies_are_left_to_the_probability() -> None:
    gate = _domain_gate()
    copy = _rows(
        {"copy_sim": 1.0, "cos": 0.99, "src_words": 1, "neutral": 1.0},
        {"copy_sim": 1.0, "cos": 0.99, "src_words": 1, "neutral": 0.0},
    )
    reasons, _ = decide(copy, gate, None, "de")
    assert reasons == [None, "untranslated"]  # "April" -> "April" passes; "Delete the files" copied does not
    # without neutral_copy_ok (a gate of an earlier release) every copy is a hard untranslated
    assert decide(copy, GATE, None, "de")[0] == ["untranslated", "untranslated"]
