"""The trainer end to end on CPU: tasks and collation, one update per objective, resuming, LoRA,
evaluation, the CLI, and configuration errors.

A corpus is built once per module from 48 real Tatoeba records (en/de/ja, verification off) and a
tiny Llama (byte-level BPE + ChatML template, random weights, built in-process) is the model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import build_causal
from typer.testing import CliRunner

from corpusalign.cli import app
from corpusalign.config import ConfigError, load_config
from corpusalign.runner import build
from corpusalign.training.config import TrainConfig, load_train_config
from corpusalign.training.data import CorruptCorpusError, ShardDataset
from corpusalign.training.evaluate import _distractors, consistency, evaluate, format_table, load_for_eval
from corpusalign.training.loop import batch_loss, latest_checkpoint, make_sampler, train
from corpusalign.training.models import load_causal_lm, load_tokenizer
from corpusalign.training.task import IGNORE_INDEX, Collator, Examples

LANGS = ("en", "de", "ja")


def _write_corpus(tmp: Path, records: list[dict[str, Any]], fields: tuple[str, ...] = ("text",)) -> Path:
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    cfg = load_config(src="en", tgt=("de", "ja"), fields=fields, verify__enabled=False, shards__max_rows=40)
    return Path(build(cfg, [src], tmp / "corpus", progress=False).output)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tatoeba_rows: list[dict[str, Any]]) -> Path:
    records = [{k: r[k] for k in ("concept_id", *LANGS)} for r in tatoeba_rows[:48] if all(r.get(k) for k in LANGS)]
    return _write_corpus(tmp_path_factory.mktemp("train_loop"), records)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_causal(tmp_path_factory.mktemp("tiny_lm") / "lm", hidden=64, ffn=128, init_std=0.02, vocab_size=800)


def _cfg(model_dir: Path, **kw: Any) -> TrainConfig:
    base = dict(model=str(model_dir), steps=4, concepts_per_batch=2, lr=3e-3, log_every=1, eval_fraction=0.25, device="cpu")
    return load_train_config(**{**base, **kw})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_causal_lm(folder).state_dict()


# ------------------------------------------------------------------------------ tasks, collation
def test_to_anchor_examples_share_the_english_answer_and_reject_another_concept(corpus: Path) -> None:
    ds = ShardDataset(corpus)
    ex = Examples(ds, objective="dpo", seed=3)
    assert ex.task == "to_anchor"
    rows = ex.__getitems__(list(range(len(ds))))
    by_concept: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_concept.setdefault(r["concept_id"], []).append(r)
    anchor_text = {cid: next(r for r in rs if r["lang"] == "en")["prompt"] for cid, rs in by_concept.items()}
    for cid, rs in by_concept.items():
        english = {
            ds.column("text", [i])[0] for i in range(len(ds)) if ds.column("concept_id", [i])[0] == cid and ds.row_lang[i] == 0
        }
        assert {r["chosen"] for r in rs} == english  # every language: the same English answer
        assert len({r["rejected"] for r in rs}) == 1 and rs[0]["rejected"] not in english  # another concept's
        assert rs[0]["rejected"] in {ds.column("text", [i])[0] for i in range(len(ds)) if ds.row_lang[i] == 0}
        for r in rs:
            assert ds.column("text", [r["row"]])[0] in r["prompt"]
    assert len(anchor_text) == ds.num_concepts


def test_collator_counts_only_answer_tokens_and_truncates_the_prompt_first(corpus: Path, model_dir: Path) -> None:
    ds = ShardDataset(corpus)
    tok = load_tokenizer(model_dir)
    ex = Examples(ds, objective="sft").__getitems__([0, 1, 2])
    batch = Collator(tok, langs=ds.langs, max_length=256)(ex)
    for i, e in enumerate(ex):
        counted = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX].tolist()
        assert counted == tok(e["response"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert batch["prompt_mask"][i].sum() + len(counted) == batch["attention_mask"][i].sum()
    short = Collator(tok, langs=ds.langs, max_length=24)(ex)
    assert short["input_ids"].shape[1] <= 24
    for i in range(3):
        n_answer = int((short["labels"][i] != IGNORE_INDEX).sum())
        assert n_answer >= min(12, len(tok(ex[i]["response"], add_special_tokens=False)["input_ids"]) + 1)
    pref = Collator(tok, langs=ds.langs, preference=True)(Examples(ds, objective="orpo").__getitems__([0, 1]))
    assert pref["input_ids"].shape[0] == 4 and pref["group"].shape[0] == 2


def test_fields_task_reads_prompt_and_response(tmp_path: Path, tatoeba_rows: list[dict[str, Any]]) -> None:
    records = [
        {"concept_id": r["concept_id"], **{lg: {"prompt": f"Q: {r[lg]}", "response": r[lg]} for lg in LANGS}}
        for r in tatoeba_rows[:6]
    ]
    corpus = _write_corpus(tmp_path, records, fields=("prompt", "response"))
    ds = ShardDataset(corpus)
    ex = Examples(ds, objective="sft")
    assert ex.task == "fields"
    row = ex[0]
    assert row["prompt"] == f"Q: {row['response']}"
    with pytest.raises(ValueError, match="prompt', 'chosen', 'rejected'"):
        Examples(ds, objective="dpo")  # no chosen/rejected and no text: a clear error


# ------------------------------------------------------------------------------------ objectives
@pytest.mark.parametrize(
    ("objective", "extra"),
    [
        ("sft", {}),
        ("sft", {"consistency": "kl"}),
        ("sft", {"consistency": "contrastive"}),
        ("dpo", {}),
        ("orpo", {}),
        ("dco", {}),
    ],
)
def test_updates_change_the_weights_and_lower_the_loss_on_a_repeated_batch(
    corpus: Path, model_dir: Path, objective: str, extra: dict[str, Any]
) -> None:
    from corpusalign.training.loop import PrecomputedReference

    torch.manual_seed(0)
    cfg = _cfg(model_dir, objective=objective, consistency_weight=1.0, **extra)
    ds = ShardDataset(corpus)
    examples = Examples(ds, objective=objective)
    model = load_causal_lm(model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    collate = Collator(load_tokenizer(model_dir), langs=ds.langs, preference=objective != "sft", anchor=ds.anchor)
    indices = list(range(6))  # two concepts x three languages
    batch = collate(examples.__getitems__(indices))
    ref = None
    if objective in ("dpo", "dco"):
        ref = PrecomputedReference.compute(model, examples, collate, torch.arange(len(ds)).numpy(), torch.device("cpu"), 12)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss, per_row, _stats = batch_loss(model, batch, cfg, ref)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert per_row.shape == (6,)
    assert losses[-1] < losses[0]
    if objective == "dpo":
        assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start: log 2
    if objective == "dco":
        assert _stats["dco_pairs"] == 2 * 6, "every ordered pair of the three languages of each concept"
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed


@pytest.mark.parametrize(
    ("objective", "reference"),
    [("sft", "precompute"), ("dpo", "precompute"), ("dpo", "model"), ("orpo", "precompute"), ("dco", "precompute")],
)
def test_train_runs_and_writes_a_hugging_face_checkpoint(
    corpus: Path, model_dir: Path, tmp_path: Path, objective: str, reference: str
) -> None:
    cfg = _cfg(model_dir, objective=objective, reference=reference)
    result = train(cfg, corpus, tmp_path / "run", progress=False)
    assert result.steps == 4 and result.checkpoint == tmp_path / "run" / "checkpoint-000004"
    after = _weights(result.checkpoint)  # loads with plain transformers: Hugging Face format
    before = _weights(model_dir)
    assert any(not torch.equal(after[k], before[k]) for k in before)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]
    assert set(log[0]["loss_by_lang"]) == set(LANGS) and log[0]["tokens_per_s"] > 0
    assert (tmp_path / "run" / "reference_logps.pt").is_file() == (objective in ("dpo", "dco") and reference == "precompute")
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["rows"] == 4 * 6


def test_training_never_sees_held_out_concepts(corpus: Path, model_dir: Path) -> None:
    cfg = _cfg(model_dir)
    train_ds = ShardDataset(corpus, split="train", eval_fraction=cfg.eval_fraction)
    held = set(ShardDataset(corpus, split="eval", eval_fraction=cfg.eval_fraction).concept_ids)
    assert held and not held & set(train_ds.concept_ids)
    sampler = make_sampler(cfg, train_ds)
    seen = {train_ds.concept_id(int(train_ds.row_concept[i])) for b in sampler for i in b}
    assert seen and not seen & held


@pytest.mark.parametrize("sampler", ["aligned", "no-anchor", "random", "homogeneous"])
def test_samplers_give_the_same_rows_per_batch(corpus: Path, model_dir: Path, sampler: str) -> None:
    cfg = _cfg(model_dir, sampler=sampler, concepts_per_batch=3)
    ds = ShardDataset(corpus, split="train", eval_fraction=cfg.eval_fraction)
    batches = list(make_sampler(cfg, ds))
    langs_per_batch = [{int(ds.row_lang[i]) for i in b} for b in batches]
    if sampler == "no-anchor":  # aligned, without English: three concepts in two languages
        assert batches and {len(b) for b in batches} == {6}
        assert all(s == {ds.langs.index("de"), ds.langs.index("ja")} for s in langs_per_batch)
        return
    assert batches and {len(b) for b in batches} == {9}
    if sampler == "homogeneous":
        assert all(len(s) == 1 for s in langs_per_batch)
    if sampler == "aligned":
        assert all(len({int(ds.row_concept[i]) for i in b}) == 3 for b in batches)


# ------------------------------------------------------------------------------------- resuming
@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_resume_continues_exactly_like_an_uninterrupted_run(
    corpus: Path, model_dir: Path, tmp_path: Path, objective: str
) -> None:
    cfg = _cfg(model_dir, objective=objective, steps=6, warmup_steps=2)
    straight = train(cfg, corpus, tmp_path / "straight", progress=False)
    first = train(cfg, corpus, tmp_path / "resumed", progress=False, stop_after=3)
    assert first.steps == 3 and latest_checkpoint(tmp_path / "resumed") == first.checkpoint
    second = train(cfg, corpus, tmp_path / "resumed", resume=True, progress=False)
    assert second.resumed_from == 3 and second.steps == 6
    a, b = _weights(straight.checkpoint), _weights(second.checkpoint)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    log_a = [json.loads(x)["loss"] for x in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x)["loss"] for x in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert log_a == pytest.approx(log_b, abs=1e-6)


# ------------------------------------------------------------------------------------- speed options
def test_prefetch_hands_out_the_feeds_batches_in_order(corpus: Path, model_dir: Path) -> None:
    from corpusalign.training.loop import Feed, Prefetch

    cfg = _cfg(model_dir)
    ds = ShardDataset(corpus, split="train", eval_fraction=cfg.eval_fraction)
    examples = Examples(ds, objective="sft")
    collate = Collator(load_tokenizer(model_dir), langs=ds.langs)

    def make(idx: list[int]) -> dict[str, torch.Tensor]:
        return collate(examples.__getitems__(idx))

    got = {}
    for depth in (0, 3):
        pre = Prefetch(Feed(make_sampler(cfg, ds), consumed=2), make, torch.device("cpu"), depth)
        got[depth] = [next(pre) for _ in range(7)]  # past the end of an epoch: the feed goes on
        assert pre.consumed == 2 + 7, "handed out, not prepared ahead"
        pre.close()
    for a, b in zip(got[0], got[3], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def broken(idx: list[int]) -> dict[str, torch.Tensor]:
        raise RuntimeError("collation failed")

    pre = Prefetch(Feed(make_sampler(cfg, ds)), broken, torch.device("cpu"), 2)
    with pytest.raises(RuntimeError, match="collation failed"):
        next(pre)
    pre.close()


def test_prefetch_trains_exactly_like_host_work_in_series(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    runs = {d: train(_cfg(model_dir, prefetch=d), corpus, tmp_path / f"p{d}", progress=False) for d in (0, 2)}
    a, b = _weights(runs[0].checkpoint), _weights(runs[2].checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].first_loss == runs[2].first_loss and runs[0].last_loss == runs[2].last_loss


def test_bf16_weights_train_in_bf16(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    result = train(_cfg(model_dir, weights="bf16", lr=1e-2), corpus, tmp_path / "bf16", progress=False)
    assert math.isfinite(result.last_loss) and result.steps == 4
    from safetensors.torch import load_file

    saved = load_file(result.checkpoint / "model.safetensors")
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}, "the weights trained (and saved) in bf16"
    weights = _weights(result.checkpoint)
    before = _weights(model_dir)
    assert any(not torch.equal(weights[k].float(), before[k].float()) for k in before)
    with pytest.raises(ConfigError, match="LoRA"):
        load_train_config(weights="bf16", lora__enabled=True)


def _collated(corpus: Path, model_dir: Path, objective: str = "sft", n: int = 12) -> tuple[dict[str, torch.Tensor], Collator]:
    ds = ShardDataset(corpus)
    collate = Collator(load_tokenizer(model_dir), langs=ds.langs, max_length=256, preference=objective != "sft", anchor="en")
    return collate(Examples(ds, objective=objective, seed=1).__getitems__(list(range(n)))), collate


def test_pack_keeps_every_row_and_restarts_positions(corpus: Path, model_dir: Path) -> None:
    from corpusalign.training.packing import pack

    batch, collate = _collated(corpus, model_dir)
    packed = pack(batch, 256, collate.pad)
    lengths = batch["attention_mask"].sum(1)
    flat_ids, flat_pos = packed["packed_input_ids"].reshape(-1), packed["packed_position_ids"].reshape(-1)
    used = []
    for i, n in enumerate(lengths.tolist()):
        at = packed["unpack"][i, :n]
        assert torch.equal(flat_ids[at], batch["input_ids"][i, :n]), f"row {i}'s tokens"
        assert torch.equal(flat_pos[at], torch.arange(n)), f"row {i}'s positions start at 0"
        assert torch.equal(at, at[0] + torch.arange(n)), "a row stays contiguous"
        assert int(at[0]) // packed["packed_input_ids"].shape[1] == int(at[-1]) // packed["packed_input_ids"].shape[1]
        used += at.tolist()
    assert len(used) == len(set(used)) == int(lengths.sum()), "every token once"
    r, w = packed["packed_input_ids"].shape
    assert w <= 256 and r < batch["input_ids"].shape[0], "short rows share packed rows"
    assert r * w < batch["input_ids"].numel(), "less padding than the padded layout"


@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_packed_forward_gives_the_padded_logits_and_loss(corpus: Path, model_dir: Path, objective: str) -> None:
    from corpusalign.training.packing import check_packing, forward_packed, pack

    batch, collate = _collated(corpus, model_dir, objective)
    packed = pack(batch, 256, collate.pad)
    model = load_causal_lm(model_dir).eval()
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, _ = forward_packed(model, packed)
    real = batch["attention_mask"].bool()
    assert torch.allclose(padded[real], logits[real], atol=1e-4), "block-diagonal attention: no row sees another"
    assert check_packing(model, packed, tolerance=1e-3) < 1e-4
    cfg = load_train_config(objective=objective, reference="model")
    ref = (lambda b: (torch.zeros(b["group"].shape[0]), torch.zeros(b["group"].shape[0]))) if objective == "dpo" else None
    with torch.no_grad():
        a, _, _ = batch_loss(model, batch, cfg, ref)
        b, _, _ = batch_loss(model, packed, cfg, ref)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_check_packing_refuses_a_model_whose_attention_crosses_rows(corpus: Path, model_dir: Path) -> None:
    from corpusalign.training.packing import check_packing, pack

    batch, collate = _collated(corpus, model_dir)
    packed = pack(batch, 256, collate.pad)
    model = load_causal_lm(model_dir).eval()

    class Leaky(torch.nn.Module):  # ignores the restarted positions: plain causal attention over a packed row
        def forward(self, input_ids: torch.Tensor, position_ids: Any = None, attention_mask: Any = None, **kw: Any) -> Any:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            return model(input_ids=input_ids, attention_mask=mask)

    with pytest.raises(ValueError, match="does not keep packed rows apart"):
        check_packing(Leaky(), packed, tolerance=1e-3)


@pytest.mark.parametrize("weights", ["fp32", "bf16"])
def test_packing_check_runs_in_fp32_under_bf16_autocast(
    corpus: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: str
) -> None:
    """bf16 autocast alone moves log-probabilities by up to 0.6 nats between two layouts of the same rows
    (SmolLM2-135M on CPU), which the check took for a leak: with fp32 master weights it compares in fp32."""
    import corpusalign.training.loop as loop

    seen: list[tuple[bool, float]] = []

    def spy(model: Any, batch: dict[str, Any], *, tolerance: float) -> float:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        seen.append((out.logits.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu"), tolerance))
        return 0.0

    monkeypatch.setattr(loop, "check_packing", spy)
    train(_cfg(model_dir, pack=True, steps=1, precision="bf16", weights=weights), corpus, tmp_path / "run", progress=False)
    assert len(seen) == 1, "checked once, on the first batch"
    bf16_seen, tolerance = seen[0]
    if weights == "fp32":
        assert not bf16_seen, "fp32 master weights: the check's forward runs without autocast"
        assert tolerance == loop.PACK_TOLERANCE["no"]
    else:
        assert bf16_seen and tolerance == loop.PACK_TOLERANCE["bf16"]


def test_packed_training_learns_what_padded_training_learns(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    runs = {p: train(_cfg(model_dir, pack=p, steps=3), corpus, tmp_path / f"pack{p}", progress=False) for p in (False, True)}
    assert runs[True].first_loss == pytest.approx(runs[False].first_loss, rel=1e-5)
    assert runs[True].tokens == runs[False].tokens, "the same real tokens"
    a, b = _weights(runs[False].checkpoint), _weights(runs[True].checkpoint)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    eager = train(_cfg(model_dir, steps=2), corpus, tmp_path / "eager", progress=False)
    compiled = train(_cfg(model_dir, steps=2, compile=True), corpus, tmp_path / "compiled", progress=False)
    assert compiled.first_loss == pytest.approx(eager.first_loss, rel=1e-4)
    assert compiled.last_loss == pytest.approx(eager.last_loss, rel=1e-3)
    a, b = _weights(eager.checkpoint), _weights(compiled.checkpoint)  # saved without the compile wrapper
    assert a.keys() == b.keys()


def test_resume_refuses_a_changed_configuration(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    train(_cfg(model_dir), corpus, tmp_path / "run", progress=False, stop_after=1)
    with pytest.raises(ValueError, match="configuration changed.*lr"):
        train(_cfg(model_dir, lr=1e-4), corpus, tmp_path / "run", resume=True, progress=False)


def test_a_corrupt_corpus_is_refused_before_any_training(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    shard = next((bad / "shards").rglob("*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptCorpusError):
        train(_cfg(model_dir), bad, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# -------------------------------------------------------------------------------------- LoRA
def test_lora_trains_only_adapters_and_evaluates_merged(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    cfg = _cfg(model_dir, lora__enabled=True, lora__r=4, lora__alpha=8, lora__target_modules=("q_proj", "v_proj"), lr=1e-2)
    result = train(cfg, corpus, tmp_path / "lora", progress=False)
    assert (result.checkpoint / "adapter_config.json").is_file()
    merged, _tok, saved = load_for_eval(str(tmp_path / "lora"), "cpu")
    assert saved is not None and saved["lora"]["enabled"]
    base = _weights(model_dir)
    state = merged.state_dict()
    changed = {k for k in base if not torch.equal(state[k], base[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)


# ------------------------------------------------------------------------------------ evaluation
def test_distractors_are_distinct_and_never_the_item_itself() -> None:
    d = _distractors(10, 3, seed=1)
    for i, row in enumerate(d):
        assert i not in row and len(set(row.tolist())) == 3
    assert (d == _distractors(10, 3, seed=1)).all()


def test_shared_prefix_scoring_equals_scoring_each_sequence_alone(corpus: Path, model_dir: Path) -> None:
    from corpusalign.training.evaluate import score_choices
    from corpusalign.training.objectives import token_logps

    torch.manual_seed(0)
    model = build_causal(model_dir.parent / "wild", hidden=64, ffn=128, init_std=0.5, vocab_size=800)  # peaky outputs
    net, tok = load_causal_lm(model), load_tokenizer(model)
    ds = ShardDataset(corpus)
    collate = Collator(tok, langs=ds.langs, max_length=64)
    texts = ds.column("text", list(range(5)))  # prompts of different lengths (ja, de, en)
    choices = [[texts[(i + j) % 5] for j in range(3)] for i in range(5)]
    p_ids, c_ids = collate.encode_choices(texts, choices)
    with torch.no_grad():
        shared = score_choices(net, p_ids, c_ids, collate.pad, torch.device("cpu"))
        for i, p in enumerate(p_ids):
            for j, c in enumerate(c_ids[i]):
                ids = torch.tensor([p + c])
                labels = ids.clone()
                labels[0, : len(p)] = IGNORE_INDEX
                alone, n = token_logps(net(input_ids=ids).logits, labels)
                assert int(n) == len(c)
                assert shared[i, j] == pytest.approx(float(alone), abs=1e-3)


def test_evaluation_reports_chance_for_a_random_model_and_more_after_memorising(
    tmp_path: Path, tatoeba_rows: list[dict[str, Any]]
) -> None:
    records = [{k: r[k] for k in ("concept_id", *LANGS)} for r in tatoeba_rows[:8] if all(r.get(k) for k in LANGS)]
    corpus = _write_corpus(tmp_path, records)
    lm = build_causal(tmp_path / "lm", hidden=64, ffn=128, init_std=0.02, vocab_size=800)
    model, tok, _ = load_for_eval(str(lm), "cpu")
    before = evaluate(model, tok, corpus, split="all", num_choices=4, seed=0)
    assert before["concepts"] == len(records) and set(before["acc"]) == set(LANGS) and set(before["retrieval"]) == {"de", "ja"}
    # Train on every concept (eval_fraction=0) until it has memorised the English answers.
    cfg = _cfg(lm, steps=120, lr=3e-3, eval_fraction=0.0, concepts_per_batch=4, log_every=40)
    result = train(cfg, corpus, tmp_path / "run", progress=False)
    model, tok, _ = load_for_eval(str(result.output), "cpu")
    after = evaluate(model, tok, corpus, split="all", num_choices=4, seed=0)
    assert after["acc"]["en"] >= 0.75 > before["acc"]["en"] - 0.01
    assert 0.0 <= after["acc_all_correct"] <= after["acc_consistency"] <= 1.0
    assert "all languages right" in format_table(after)


def test_consistency_counts_agreement_and_agreement_on_the_right_answer_apart() -> None:
    """Agreeing on a wrong candidate is consistent but not right in all languages; the same wrong
    candidate seen at different positions of the concept's candidates still counts as the same."""
    import numpy as np

    cand = np.array([[0, 5, 7], [1, 4, 6], [2, 8, 9], [3, 8, 5]])  # candidate 0 is the concept's own answer
    pick = np.array(
        [
            [0, 0, 0],  # right everywhere
            [1, 1, 1],  # the same wrong answer everywhere
            [0, 1, 0],  # disagree
            [2, 2, 2],  # the same wrong answer everywhere
        ]
    )
    assert consistency(pick, cand) == (0.75, 0.25)
    assert consistency(np.zeros((0, 3), dtype=int), cand[:0]) == (0.0, 0.0)


# ---------------------------------------------------------------------------------- config, CLI
def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objective="ppo")
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(concept_per_batch=2)
    with pytest.raises(ConfigError, match="to_anchor_prompt"):
        TrainConfig(to_anchor_prompt="no placeholder")
    with pytest.raises(ConfigError, match="needs sampler aligned or no-anchor"):
        TrainConfig(objective="dco", sampler="random")
    with pytest.raises(ConfigError, match="dco_anchor_ratio"):
        TrainConfig(objective="dco", dco_anchor_ratio=0)


def test_parameter_files_in_pipelines_load() -> None:
    files = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("train-*.yaml"))
    assert len(files) >= 2
    for path in files:
        assert load_train_config(path).model == "smollm2"


def test_cli_train_then_eval(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        app,
        [
            "train",
            "--shards",
            str(corpus),
            "--output",
            str(out),
            "--model",
            str(model_dir),
            "-k",
            "2",
            "--steps",
            "2",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "trained 2 steps" in res.output and "checkpoint-000002" in res.output
    res = runner.invoke(app, ["eval", "--model", str(out), "--shards", str(corpus), "--json", str(tmp_path / "e.json"), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["eval_fraction"] == 0.1 and result["split"] == "eval" and "gap" in res.output


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample (CLDR names, Tatoeba, UDHR; en/de/ja/sw) built as the README's first command
    builds it, verification off to keep the test fast."""
    from importlib.resources import files

    sample = sorted(Path(str(files("corpusalign") / "data" / "sample")).glob("*.jsonl"))
    cfg = load_config(src="en", tgt=("de", "ja", "sw"), verify__enabled=False)
    return Path(build(cfg, sample, tmp_path_factory.mktemp("sample") / "corpus", progress=False).output)


@pytest.mark.parametrize(
    ("args", "langs"),
    [
        (["--objective", "dco"], {"en", "de", "ja", "sw"}),
        (["--objective", "dco", "--sampler", "no-anchor"], {"de", "ja", "sw"}),
        (["--sampler", "no-anchor"], {"de", "ja", "sw"}),
        (["--langs", "en"], {"en"}),  # the anchor-only baseline
    ],
)
def test_cli_trains_dco_and_the_anchor_ablations_on_the_bundled_sample(
    sample_corpus: Path, model_dir: Path, tmp_path: Path, args: list[str], langs: set[str]
) -> None:
    out = tmp_path / "run"
    params = tmp_path / "train.yaml"
    params.write_text("log_every: 1\n")
    cmd = ["train", "--shards", str(sample_corpus), "-o", str(out), "--model", str(model_dir), "-k", "2", "--steps", "2"]
    res = CliRunner().invoke(app, [*cmd, "--device", "cpu", "-p", str(params), *args])
    assert res.exit_code == 0, res.output
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(math.isfinite(e["loss"]) for e in log)
    assert set().union(*(e["loss_by_lang"] for e in log)) <= langs
    if "dco" in args:
        assert all(e["dco_pairs"] > 0 for e in log), "aligned batches give DCO its pairs of language versions"
        assert (out / "reference_logps.pt").is_file()


def test_cli_reports_problems_without_a_traceback(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--shards", str(corpus), "--model", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "cannot train" in res.output and "Traceback" not in res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    assert "is not available" in text and "--translator" not in text  # the trainer's own advice
    res = runner.invoke(app, ["train", "--shards", str(corpus), "--objective", "ppo"])
    assert res.exit_code == 2 and "configuration error" in res.output
    res = runner.invoke(app, ["train", "--shards", str(corpus), "-k", "1000", "--model", "x", "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2


def test_training_doc_names_only_real_options_and_keys() -> None:
    """Every `--option` in docs/training.md exists on build, train or eval; every `key: value` is a config field."""
    import re
    from dataclasses import fields

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    runner = CliRunner()
    helps = "".join(runner.invoke(app, [cmd, "--help"], terminal_width=200).output for cmd in ("build", "train", "eval"))
    options = set(re.findall(r"--[a-z][a-z-]+", helps))
    cli_lines = "\n".join(line for line in doc.splitlines() if "bench/" not in line)  # benchmark scripts have their own
    for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", cli_lines)) - {"--no-deps"}:
        assert opt in options, f"docs/training.md names {opt}, which train/eval do not have"
    keys = {f.name for f in fields(TrainConfig)} | {f"lora.{f}" for f in ("enabled", "r", "alpha", "dropout", "target_modules")}
    for key in re.findall(r"`([a-z_.]+): [^`]+`", doc):
        assert key in keys, f"docs/training.md names the key {key!r}, which TrainConfig does not have"
