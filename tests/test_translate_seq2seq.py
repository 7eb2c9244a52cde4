"""The seq2seq translator on tiny random NLLB, M2M100 and Marian models built in-process (offline).

The models translate nothing (random weights); the tests check what the translator does around them:
language codes, batching, the token budget, availability checks, recorded parameters, and a whole
build in which verification rejects the garbage and a second build is served from the cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from tiny_models import build_m2m100, build_marian, build_nllb, tatoeba_records  # noqa: E402

from corpusalign.batching import length_batches  # noqa: E402
from corpusalign.config import load_config  # noqa: E402
from corpusalign.translate.base import Failed, TranslatorUnavailable  # noqa: E402
from corpusalign.translate.seq2seq import Seq2SeqTranslator, detect_family  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GREEDY = {"num_beams": 1, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-seq2seq")
    return {
        "nllb": build_nllb(root / "nllb"),
        "m2m100": build_m2m100(root / "m2m100"),
        "marian": build_marian(root / "opus-mt-en-mul", targets=("deu", "fra")),
        "marian_pair": build_marian(root / "opus-mt-en-de"),
    }


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """16 real English sentences of very different lengths."""
    rows = tatoeba_records(300)
    by_len = sorted({r["en"] for r in rows}, key=len)
    picked = by_len[:: len(by_len) // 16][:16]
    return picked[::2] + picked[::-1][::2]  # short and long mixed, not in length order


def _mt(model: Path, tgt: tuple[str, ...] = ("de",), **kw: Any) -> Seq2SeqTranslator:
    kw.setdefault("translate__generation", GREEDY)
    return Seq2SeqTranslator(
        load_config(src="en", tgt=list(tgt), translate__translator="seq2seq", translate__model=str(model), **kw)
    )


def _spy(mt: Seq2SeqTranslator) -> list[dict[str, Any]]:
    """Record the inputs and keyword arguments of every ``generate`` call."""
    mt.setup()
    assert mt._model is not None
    calls: list[dict[str, Any]] = []
    real = mt._model.generate

    def generate(**kw: Any) -> Any:
        calls.append(kw)
        return real(**kw)

    mt._model.generate = generate  # type: ignore[method-assign]
    return calls


# ---------------------------------------------------------------------------------------- language codes


def test_families_are_detected_from_config_and_tokenizer(models: dict[str, Path]) -> None:
    assert detect_family(models["nllb"]) == "nllb"
    assert detect_family(models["m2m100"]) == "m2m100"
    assert detect_family(models["marian"]) == "marian"


def test_nllb_sets_flores_source_code_and_forces_the_target_code(models: dict[str, Path]) -> None:
    mt = _mt(models["nllb"], tgt=("de", "ja", "sw"))
    calls = _spy(mt)
    tok = mt._tokenizer
    for lang, flores in (("de", "deu_Latn"), ("ja", "jpn_Jpan"), ("sw", "swh_Latn")):
        out = mt.translate(["The cat sleeps on the sofa."], "en", lang)
        assert isinstance(out[0], str) and out[0]
        assert calls[-1]["forced_bos_token_id"] == tok.convert_tokens_to_ids(flores)
        assert calls[-1]["input_ids"][0, 0].item() == tok.convert_tokens_to_ids("eng_Latn")  # src_lang prefix
    assert tok.src_lang == "eng_Latn"
    assert calls[-1]["num_beams"] == 1 and calls[-1]["max_new_tokens"] == 8


def test_m2m100_uses_iso_codes_through_the_tokenizer_language_ids(models: dict[str, Path]) -> None:
    mt = _mt(models["m2m100"], tgt=("de", "ja"))
    calls = _spy(mt)
    tok = mt._tokenizer
    out = mt.translate(["Good morning.", "Where is the station?"], "en", "ja")
    assert all(isinstance(o, str) and "__" not in o for o in out)  # language tokens never leak into the text
    assert calls[-1]["forced_bos_token_id"] == tok.get_lang_id("ja")
    assert calls[-1]["input_ids"][0, 0].item() == tok.get_lang_id("en") and tok.src_lang == "en"


def test_language_tags_get_the_codes_of_their_language_and_script(models: dict[str, Path]) -> None:
    """pt-BR and zh-Hant: NLLB forces por_Latn and zho_Hant, M2M100 (no regions or scripts) pt and zh."""
    mt = _mt(models["nllb"], tgt=("pt-BR", "zh-Hant"))
    calls = _spy(mt)
    for lang, flores in (("pt-BR", "por_Latn"), ("zh-Hant", "zho_Hant")):
        mt.translate(["The cat sleeps on the sofa."], "en", lang)
        assert calls[-1]["forced_bos_token_id"] == mt._tokenizer.convert_tokens_to_ids(flores)
    mt = _mt(models["m2m100"], tgt=("pt-BR", "zh-Hant"))
    calls = _spy(mt)
    for lang, code in (("pt-BR", "pt"), ("zh-Hant", "zh")):
        mt.translate(["Good morning."], "en", lang)
        assert calls[-1]["forced_bos_token_id"] == mt._tokenizer.get_lang_id(code)


def test_multi_target_marian_gets_the_target_token_prefix(models: dict[str, Path]) -> None:
    mt = _mt(models["marian"], tgt=("de", "fr"))
    calls = _spy(mt)
    tok = mt._tokenizer
    mt.translate(["Good morning."], "en", "de")
    assert calls[-1]["input_ids"][0, 0].item() == tok.convert_tokens_to_ids(">>deu<<")
    assert "forced_bos_token_id" not in calls[-1]
    mt.translate(["Good morning."], "en", "fr")
    assert calls[-1]["input_ids"][0, 0].item() == tok.convert_tokens_to_ids(">>fra<<")


def test_single_pair_marian_gets_no_prefix_and_refuses_another_pair(models: dict[str, Path]) -> None:
    mt = _mt(models["marian_pair"])
    calls = _spy(mt)
    mt.translate(["Good morning."], "en", "de")
    ids = calls[-1]["input_ids"][0].tolist()
    assert not any(t.startswith(">>") for t in mt._tokenizer.convert_ids_to_tokens(ids))
    with pytest.raises(TranslatorUnavailable, match=r"opus-mt-en-de.*en->de.*not en->fr"):
        _mt(models["marian_pair"], tgt=("fr",)).check()


@pytest.mark.parametrize(("family", "lang"), [("nllb", "sr-Latn"), ("m2m100", "qu"), ("marian", "ja")])
def test_unknown_language_fails_at_check_naming_code_and_model(models: dict[str, Path], family: str, lang: str) -> None:
    mt = _mt(models[family], tgt=("de", lang))
    with pytest.raises(TranslatorUnavailable) as exc:
        mt.check()
    assert repr(lang) in str(exc.value) and str(models[family]) in str(exc.value)
    assert mt._model is None  # nothing was loaded


# ---------------------------------------------------------------------------------------- batching


@pytest.mark.parametrize("family", ["nllb", "m2m100", "marian"])
def test_length_sorted_batches_restore_the_input_order(models: dict[str, Path], sentences: list[str], family: str) -> None:
    mt = _mt(models[family], translate__batch_size=4)
    batched = mt.translate(sentences, "en", "de")
    assert mt.calls == 4
    one_by_one = [mt.translate([s], "en", "de")[0] for s in sentences]
    assert batched == one_by_one
    assert len(set(batched)) >= 4  # the random model's outputs do depend on the input, so order matters


def test_max_tokens_per_batch_bounds_every_model_call(models: dict[str, Path], sentences: list[str]) -> None:
    budget = 60
    mt = _mt(models["nllb"], translate__batch_size=32, translate__max_tokens_per_batch=budget)
    calls = _spy(mt)
    mt.translate(sentences, "en", "de")
    lengths = [len(ids) for ids in mt._tokenizer(sentences)["input_ids"]]
    assert len(calls) == mt.calls == len(length_batches(lengths, 32, budget)) > 1
    for kw in calls:
        rows, cols = kw["input_ids"].shape
        assert rows * cols <= budget or rows == 1
    assert sum(kw["input_ids"].shape[0] for kw in calls) == len(sentences)


def test_dtype_and_device_follow_the_config(models: dict[str, Path]) -> None:
    mt = _mt(models["m2m100"], translate__device="cpu", translate__dtype="bfloat16")
    (out,) = mt.translate(["Good morning."], "en", "de")
    assert isinstance(out, str)
    assert mt._model is not None and next(mt._model.parameters()).dtype == torch.bfloat16
    assert str(mt.device) == "cpu"


def test_empty_output_is_a_failed_translation(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    mt = _mt(models["nllb"])
    mt.setup()
    eos, de = mt._tokenizer.eos_token_id, mt._tokenizer.convert_tokens_to_ids("deu_Latn")
    monkeypatch.setattr(mt._model, "generate", lambda **kw: torch.tensor([[eos, de, eos]] * kw["input_ids"].shape[0]))
    assert mt.translate(["Hello.", "Bye."], "en", "de") == [Failed("empty output")] * 2


# ---------------------------------------------------------------------------------------- availability, params


def test_missing_model_is_unavailable_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mt = Seq2SeqTranslator(
        load_config(src="en", tgt=["de"], translate__translator="seq2seq", translate__model="org/no-such-model")
    )
    with pytest.raises(TranslatorUnavailable) as exc:
        mt.check()
    msg = str(exc.value)
    for needle in (
        "'org/no-such-model'",
        "huggingface-cli download org/no-such-model",
        "HF_HOME",
        "--model",
        "--translator openai",
        "tm",
    ):
        assert needle in msg
    with pytest.raises(TranslatorUnavailable, match="no such directory"):
        _mt(tmp_path / "nowhere").check()


def test_default_model_is_nllb_and_params_are_the_decoding_settings(models: dict[str, Path]) -> None:
    cfg = load_config(src="en", tgt=["de"], translate__translator="seq2seq")
    assert Seq2SeqTranslator(cfg).model == "facebook/nllb-200-distilled-600M"
    mt = _mt(models["nllb"], translate__generation={"num_beams": 2, "max_new_tokens": 5})
    assert mt.params == {"num_beams": 2, "max_new_tokens": 5, "protect": True}
    assert json.loads(mt.params_json() or "") == mt.params


# ---------------------------------------------------------------------------------------- a whole build


def test_build_translates_rejects_the_garbage_and_rebuilds_from_the_cache(
    tmp_path: Path, models: dict[str, Path], run_build, read_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [r for r in tatoeba_records(200) if len(r["en"]) >= 25][:30]
    corpus = tmp_path / "en.jsonl"
    corpus.write_text("".join(json.dumps({"concept_id": r["concept_id"], "en": r["en"]}) + "\n" for r in rows), encoding="utf-8")
    model = str(models["nllb"])
    kw = {
        "src": "en",
        "tgt": ["de"],
        "translate__translator": "seq2seq",
        "translate__model": model,
        "translate__cache_path": str(tmp_path / "c.sqlite"),
        "translate__generation": {"num_beams": 1, "max_new_tokens": 24},
        "verify__enabled": True,
    }
    calls: list[int] = []
    real_generate = Seq2SeqTranslator.translate_batch

    def counting(self: Seq2SeqTranslator, texts: Any, src: str, tgt: str) -> Any:
        calls.append(len(texts))
        return real_generate(self, texts, src, tgt)

    monkeypatch.setattr(Seq2SeqTranslator, "translate_batch", counting)

    first = read_output(run_build(corpus, tmp_path / "out", **kw))
    first.check_accounting(input_records=30)
    assert first.manifest["translation"] == {
        "requested": 30, "filled": 30, "not_found": 0, "cache_hits": 0, "cache_misses": 30, "failed": 0,
    }  # fmt: skip
    assert sum(calls) == 30
    de = pl.concat([first.shards, first.rejected], how="diagonal_relaxed").filter(pl.col("lang") == "de")
    assert de.height == 30
    assert set(de["origin"]) == {"machine"} and set(de["translator"]) == {"seq2seq"} and set(de["model"]) == {model}
    assert {json.loads(p)["num_beams"] for p in de["translator_params"]} == {1}
    # random output is garbage: verification rejects it instead of shipping it
    rejected_de = first.rejected.filter(pl.col("lang") == "de")
    assert rejected_de.height == 30 and first.shards.filter(pl.col("lang") == "de").height == 0
    reasons = set(rejected_de["drop_reason"])
    assert reasons <= {"wrong_language", "untranslated", "misaligned", "low_similarity", "truncated", "number_mismatch"}
    assert "wrong_language" in reasons
    assert set(first.rejected.filter(pl.col("lang") == "en")["drop_reason"]) == {"too_few_languages"}

    # the same build again, from scratch: every translation comes from the cache, the model is not called
    calls.clear()
    second = read_output(run_build(corpus, tmp_path / "out2", **kw))
    second.check_accounting(input_records=30)
    tr = second.manifest["translation"]
    assert tr["cache_hits"] == tr["requested"] == 30 and tr["cache_misses"] == 0
    assert calls == []


# ---------------------------------------------------------------------------------------- pure helpers


def test_language_code_tables() -> None:
    from corpusalign.translate.langcodes import LANGUAGES, UnknownLanguage, flores_code, m2m100_code, marian_target_token

    assert len(LANGUAGES) >= 50
    assert [flores_code(c) for c in ("en", "de", "ja", "sw", "zh")] == [
        "eng_Latn",
        "deu_Latn",
        "jpn_Jpan",
        "swh_Latn",
        "zho_Hans",
    ]
    assert flores_code("swh", {"swh_Latn", "eng_Latn"}) == "swh_Latn" and flores_code("deu", {"deu_Latn"}) == "deu_Latn"
    with pytest.raises(UnknownLanguage):
        flores_code("de", {"eng_Latn"})
    assert m2m100_code("deu", {"de", "en"}) == "de" and m2m100_code("ast", {"ast"}) == "ast"
    assert marian_target_token("de", [">>deu<<", ">>fra<<"]) == ">>deu<<"
    assert marian_target_token("zh", [">>cmn_Hans<<", ">>cmn_Hant<<"]) == ">>cmn_Hans<<"
    assert marian_target_token("pt", [">>pt<<", ">>es<<"]) == ">>pt<<"
    with pytest.raises(UnknownLanguage):
        marian_target_token("ja", [">>deu<<"])


def test_run_batches_splits_a_batch_that_runs_out_of_memory() -> None:
    from corpusalign.translate._hf import run_batches

    seen: list[list[int]] = []

    def run(idx: list[int]) -> list[int]:
        seen.append(idx)
        if len(idx) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return [i * 10 for i in idx]

    assert run_batches([5, 1, 9, 3, 7, 2], batch_size=8, max_tokens=1000, run=run) == [0, 10, 20, 30, 40, 50]
    assert [len(b) for b in seen] == [6, 3, 1, 2, 3, 1, 2]  # halved until it fits


def test_cli_build_with_the_seq2seq_translator(tmp_path: Path, models: dict[str, Path]) -> None:
    """`corpusalign build --translator seq2seq --model DIR` end to end, cache path from a pipeline file."""
    from typer.testing import CliRunner

    from corpusalign.cli import app

    rows = [r for r in tatoeba_records(50) if len(r["en"]) >= 25][:8]
    corpus = tmp_path / "en.jsonl"
    corpus.write_text("".join(json.dumps({"concept_id": r["concept_id"], "en": r["en"]}) + "\n" for r in rows), encoding="utf-8")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"verify:\n  enabled: false\ntranslate:\n  cache_path: {tmp_path / 'c.sqlite'}\n  generation:\n    num_beams: 1\n"
        "    max_new_tokens: 12\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["build", "--src", "en", "--tgt", "de", "-i", str(corpus), "-o", str(out), "-p", str(pipeline)]
    res = CliRunner().invoke(app, [*args, "--translator", "seq2seq", "--model", str(models["nllb"])])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "translated: 8 of 8 missing rows" in text and "failed 0" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["translators"]["seq2seq"]["model"] == str(models["nllb"])
    assert manifest["translators"]["seq2seq"]["params"]["num_beams"] == 1
    res = CliRunner().invoke(app, [*args, "--translator", "seq2seq", "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "nope" in " ".join(res.output.split())
