"""Cross-lingual evaluation of a causal LM on the held-out concepts of a corpus.

Three measures, all on concepts the trainer never saw (the ``eval`` split of
:class:`~corpusalign.training.data.ShardDataset`, same ``eval_fraction`` and salt as training):

* **Multiple choice by log-likelihood**, per language. For every held-out concept and language X,
  the model reads the concept's prompt in X (the training task's prompt: ``to_anchor`` asks what the
  text says in English; ``fields`` uses the corpus's ``prompt``) and scores ``num_choices``
  candidate answers: the concept's own answer and the answers of ``num_choices - 1`` other held-out
  concepts, drawn once per concept with the seed, so every language of a concept faces the same
  candidates. A candidate's score is its answer tokens' summed log-probability (``acc``) or that sum
  divided by the answer's length in characters (``acc_norm``, as lm-evaluation-harness does); the
  highest score is the model's choice. Chance is ``1 / num_choices``.
* **The English vs non-English gap**: anchor accuracy minus the mean accuracy of the other
  languages (the quantity batch-wise alignment is meant to shrink).
* **Cross-lingual consistency**: the share of concepts (with every language) for which the model
  picks the same candidate in all languages, right or wrong (``*_consistency``), and the share for
  which it picks the right one in all languages (``*_all_correct``): a model that agrees with
  itself on wrong answers raises the first, not the second.
* **Cross-lingual retrieval** of pooled hidden states: each row's text (``text``, or ``prompt``)
  alone, mean-pooled at the middle layer and centred per language (:func:`retrieval_accuracy`); for
  every language X, the share of X rows whose nearest anchor row (cosine) is the same concept.

:func:`evaluate` returns a JSON-ready dict; :func:`format_table` renders it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from corpusalign.training.config import DEFAULT_TO_ANCHOR_PROMPT
from corpusalign.training.data import ShardDataset
from corpusalign.training.task import Collator, Examples

log = logging.getLogger(__name__)


def _distractors(n: int, k: int, seed: int) -> np.ndarray:
    """For each of ``n`` items, ``k`` other items (distinct, never itself), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = rng.choice(n - 1, size=k, replace=False)
        out[i] = others + (others >= i)  # skip i itself
    return out


def evaluate(
    model: Any,
    tokenizer: Any,
    shards: str | Path,
    *,
    langs: list[str] | None = None,
    objective: str = "sft",
    task: str = "auto",
    prompt_template: str = DEFAULT_TO_ANCHOR_PROMPT,
    chat_template: bool = True,
    split: str = "eval",
    eval_fraction: float = 0.1,
    num_choices: int = 4,
    max_concepts: int | None = None,
    max_length: int = 256,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` (a loaded causal LM) on the held-out concepts; see the module docstring."""
    import torch

    from corpusalign.progress import Progress

    t0 = time.perf_counter()
    ds = ShardDataset(shards, langs=langs, split=split, eval_fraction=eval_fraction)  # type: ignore[arg-type]
    examples = Examples(ds, objective=objective, task=task, prompt_template=prompt_template, seed=seed)
    answer_field = "response" if objective == "sft" else "chosen"
    full = [c for c in range(ds.num_concepts) if ds.concept_offsets[c + 1] - ds.concept_offsets[c] == len(ds.langs)]
    if max_concepts is not None:
        full = full[:max_concepts]
    if len(full) < num_choices:
        raise ValueError(
            f"{len(full)} held-out concepts with every language {list(ds.langs)}; need at least num_choices={num_choices} "
            "(raise eval_fraction, or evaluate split='all')"
        )
    concepts = np.asarray(full, dtype=np.int64)
    distract = _distractors(len(concepts), num_choices - 1, seed)
    collate = Collator(tokenizer, langs=ds.langs, max_length=max_length, chat_template=chat_template)
    device = next(model.parameters()).device
    model.eval()

    # Rows of each evaluated concept, in language order: rows[c_pos, lang_pos].
    rows = np.stack([np.sort(np.arange(ds.concept_offsets[c], ds.concept_offsets[c + 1])) for c in concepts])
    order = np.argsort(ds.row_lang[rows], axis=1)
    rows = np.take_along_axis(rows, order, axis=1)
    ex_rows = examples.__getitems__(rows.ravel().tolist())
    ex = np.asarray(ex_rows, dtype=object).reshape(rows.shape)

    # Every (concept, language) prompt with its candidates; candidate 0 is always the right answer.
    cand = np.concatenate([np.arange(len(concepts))[:, None], distract], axis=1)  # [C, num_choices] positions
    prompts, answers = [], []
    for ci in range(len(concepts)):
        for li in range(len(ds.langs)):
            prompts.append(ex[ci, li]["prompt"])
            answers.append([ex[cj, li][answer_field] for cj in cand[ci]])
    sums = np.zeros((len(prompts), num_choices))
    per_pass = max(1, batch_size // num_choices)  # prompts per forward pass
    bars = Progress(enabled=progress)
    with torch.no_grad(), bars.task("eval: multiple choice", "questions", total=len(prompts)) as bar:
        for lo in range(0, len(prompts), per_pass):
            part = slice(lo, lo + per_pass)
            p_ids, c_ids = collate.encode_choices(prompts[part], answers[part])
            sums[part] = score_choices(model, p_ids, c_ids, collate.pad, device)
            bar.advance(len(p_ids))
    chars = np.asarray([[max(len(a or ""), 1) for a in row] for row in answers], dtype=np.float64)
    shape = (len(concepts), len(ds.langs), num_choices)
    pick_sum = sums.reshape(shape).argmax(-1)
    pick_norm = (sums / chars).reshape(shape).argmax(-1)

    result: dict[str, Any] = {
        "shards": str(shards),
        "split": split,
        "eval_fraction": eval_fraction,
        "langs": list(ds.langs),
        "anchor": ds.anchor,
        "task": examples.task,
        "concepts": len(concepts),
        "num_choices": num_choices,
        "chance": 1.0 / num_choices,
        "seed": seed,
    }
    for name, pick in (("acc", pick_sum), ("acc_norm", pick_norm)):
        acc = {lg: float((pick[:, li] == 0).mean()) for li, lg in enumerate(ds.langs)}
        result[name] = acc
        result[f"{name}_gap"] = _gap(acc, ds.anchor)
        result[f"{name}_consistency"], result[f"{name}_all_correct"] = consistency(pick, cand)

    # Retrieval of mean-pooled hidden states of the raw texts.
    text_field = "text" if "text" in ds.fields else "prompt"
    texts = ds.column(text_field, rows.ravel().tolist())
    a = ds.langs.index(ds.anchor) if ds.anchor in ds.langs else None
    result.update(
        retrieval_accuracy(
            model, tokenizer, texts, len(ds.langs), ds.langs, a, batch_size=batch_size, max_length=max_length, progress=bars
        )
    )
    result["seconds"] = time.perf_counter() - t0
    return result


def retrieval_accuracy(
    model: Any,
    tokenizer: Any,
    texts: list[str | None],
    n_langs: int,
    langs: tuple[str, ...] | list[str],
    anchor: int | None,
    *,
    layer: int | None = None,
    batch_size: int = 32,
    max_length: int = 256,
    progress: Any = None,
) -> dict[str, Any]:
    """Cross-lingual retrieval accuracy of mean-pooled hidden states.

    ``texts`` holds ``n_langs`` texts per concept, concept after concept, in ``langs`` order. Each text
    is run alone (no prompt); its hidden states at ``layer`` (default: the middle layer) are
    mean-pooled, centred per language (the language's mean vector subtracted: raw LM states share a
    few large directions that make every cosine alike; Libovický et al., 2020) and L2-normalised. For
    every language but the anchor: the share of its texts whose most similar anchor text is the same
    concept. Measured on SmolLM2-135M-Instruct over 60 Tatoeba concepts: middle layer and centring
    0.18 (de) / 0.22 (ja), last layer raw 0.05 / 0.03 (chance 0.017).
    """
    import torch

    from corpusalign.progress import Progress
    from corpusalign.training.objectives import mean_pool

    device = next(model.parameters()).device
    n_layers = int(model.config.num_hidden_layers)
    layer = n_layers // 2 if layer is None else layer
    pooled = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    bars = progress or Progress(enabled=False)
    with torch.no_grad(), bars.task("eval: retrieval", "texts", total=len(texts)) as bar:
        for lo in range(0, len(texts), batch_size):
            enc = tokenizer(
                [t or "" for t in texts[lo : lo + batch_size]],
                add_special_tokens=False,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            mask = enc["attention_mask"].to(device)
            out = model(input_ids=enc["input_ids"].to(device), attention_mask=mask, output_hidden_states=True)
            pooled[lo : lo + len(mask)] = mean_pool(out.hidden_states[layer], mask).float().cpu().numpy()
            bar.advance(len(mask))
    pooled = pooled.reshape(len(texts) // n_langs, n_langs, -1)
    pooled -= pooled.mean(axis=0, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True).clip(min=1e-12)
    retrieval: dict[str, float] = {}
    if anchor is not None:
        for li, lg in enumerate(langs):
            if li != anchor:
                sim = pooled[:, li] @ pooled[:, anchor].T
                retrieval[lg] = float((sim.argmax(1) == np.arange(len(pooled))).mean())
    return {
        "retrieval": retrieval,
        "retrieval_mean": float(np.mean(list(retrieval.values()))) if retrieval else None,
        "retrieval_layer": layer,
    }


def score_choices(model: Any, prompts: list[list[int]], choices: list[list[list[int]]], pad: int, device: Any) -> np.ndarray:
    """Summed log-probability of every choice's tokens after its prompt: ``[P, C]``.

    Each prompt is read once: its key/value cache is repeated for its ``C`` choices, which continue
    it at the right positions (right padding between prompt and choice is masked out). Equal, up to
    float rounding, to scoring every ``prompt + choice`` sequence on its own, at about
    ``(prompt + C * choice) / (C * (prompt + choice))`` of the cost.
    """
    import torch

    n_p, n_c = len(prompts), len(choices[0])
    lengths = torch.tensor([len(p) for p in prompts])
    ids, mask = _right_pad(prompts, pad, torch)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True)
    last = out.logits[torch.arange(n_p, device=device), (lengths - 1).to(device)]  # predicts each choice's 1st token
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    cache.batch_repeat_interleave(n_c)
    c_ids, c_mask = _right_pad([c for row in choices for c in row], pad, torch)
    positions = lengths.repeat_interleave(n_c)[:, None] + torch.arange(c_ids.shape[1])[None]
    kwargs = {"cache" if "cache" in _forward_params(model) else "past_key_values": cache}
    out2 = model(
        input_ids=c_ids.to(device),
        attention_mask=torch.cat([mask.repeat_interleave(n_c, 0), c_mask], 1).to(device),
        position_ids=positions.to(device),
        **kwargs,
    )
    pred = torch.cat([last.repeat_interleave(n_c, 0)[:, None], out2.logits[:, :-1]], 1).float().log_softmax(-1)
    c_ids, c_mask = c_ids.to(device), c_mask.to(device)
    logps = pred.gather(-1, c_ids[..., None])[..., 0] * c_mask
    return logps.sum(1).view(n_p, n_c).cpu().numpy()


def _forward_params(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _right_pad(seqs: list[list[int]], pad: int, torch: Any) -> tuple[Any, Any]:
    width = max(max((len(s) for s in seqs), default=1), 1)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _gap(acc: dict[str, float], anchor: str | None) -> float | None:
    others = [v for lg, v in acc.items() if lg != anchor]
    if anchor not in acc or not others:
        return None
    return acc[anchor] - float(np.mean(others))


def consistency(pick: np.ndarray, cand: np.ndarray) -> tuple[float, float]:
    """(share of concepts whose every language picks the same candidate, share whose every language
    picks the right one). ``pick`` ``[concepts, langs]``: the index of each language's choice among
    the concept's candidates ``cand`` ``[concepts, choices]`` (candidate 0 is the right answer)."""
    if not len(pick):
        return 0.0, 0.0
    chosen = np.take_along_axis(cand, pick, axis=1)  # the candidate each language picked
    return float((chosen == chosen[:, :1]).all(axis=1).mean()), float((pick == 0).all(axis=1).mean())


def format_table(result: dict[str, Any], metric: str = "acc_norm") -> str:
    """A plain-text table of one evaluation: accuracy and retrieval per language, gap, consistency."""
    langs = result["langs"]
    lines = [
        f"{result['concepts']} concepts ({result['split']} split), {result['num_choices']} choices "
        f"(chance {result['chance']:.2f}), task {result['task']}",
        f"{'lang':<6}{'acc':>8}{'acc_norm':>10}{'retrieval':>11}",
    ]
    for lg in langs:
        r = result["retrieval"].get(lg)
        lines.append(f"{lg:<6}{result['acc'][lg]:>8.3f}{result['acc_norm'][lg]:>10.3f}{'' if r is None else f'{r:.3f}':>11}")
    gap = result.get(f"{metric}_gap")
    lines.append(f"gap ({result['anchor']} - others, {metric}): {'n/a' if gap is None else f'{gap:+.3f}'}")
    both = result.get(f"{metric}_all_correct")
    lines.append(
        f"consistency ({metric}): {result[f'{metric}_consistency']:.3f}"
        + ("" if both is None else f" (all languages right: {both:.3f})")
    )
    return "\n".join(lines)


def load_for_eval(name: str, device: str = "auto") -> tuple[Any, Any, dict[str, Any] | None]:
    """(model, tokenizer, training config or None) for ``name``: a ``corpusalign train`` output
    directory (its newest checkpoint), a checkpoint, a LoRA adapter checkpoint (merged into its base),
    or any model :func:`~corpusalign.training.models.resolve_model` finds."""
    import json

    from corpusalign.training.loop import STATE, latest_checkpoint
    from corpusalign.training.models import load_causal_lm, load_tokenizer, resolve_model
    from corpusalign.translate._hf import resolve_device

    path = Path(name).expanduser()
    saved: dict[str, Any] | None = None
    if path.is_dir() and not (path / STATE).is_file() and not (path / "config.json").is_file():
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            path = ckpt
    if path.is_dir() and (path / STATE).is_file():
        saved = json.loads((path / STATE).read_text(encoding="utf-8")).get("config")
    if path.is_dir() and (path / "adapter_config.json").is_file():
        from corpusalign.extras import require

        peft = require("peft", extra="lora", purpose="loading a LoRA checkpoint")
        if saved is None:
            raise ValueError(f"{path} is a LoRA adapter without a corpusalign trainer state: its base model is unknown")
        base = load_causal_lm(resolve_model(saved["model"]))
        model = peft.PeftModel.from_pretrained(base, path).merge_and_unload()
        folder = path
    else:
        folder = path if path.is_dir() and (path / "config.json").is_file() else resolve_model(name)
        model = load_causal_lm(folder)
    tokenizer = load_tokenizer(folder)
    return model.to(resolve_device(device)), tokenizer, saved


def evaluate_model(
    model: str | Path,
    shards: str | Path,
    *,
    langs: list[str] | None = None,
    num_choices: int = 4,
    max_concepts: int | None = None,
    eval_fraction: float | None = None,
    split: str = "eval",
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Load ``model`` (:func:`load_for_eval`) and :func:`evaluate` it on ``shards``: what ``corpusalign eval`` runs.

    A model saved by ``corpusalign train`` is evaluated on its training run's task, prompt, languages
    and held-out split (``eval_fraction``) unless ``langs`` / ``eval_fraction`` say otherwise; any
    other model on the defaults. Returns :func:`evaluate`'s dict with ``model`` added.
    """
    from corpusalign.training.models import require_train_extra

    require_train_extra()
    net, tokenizer, saved = load_for_eval(str(model), device)
    saved = saved or {}
    result = evaluate(
        net,
        tokenizer,
        shards,
        langs=list(langs) if langs else (list(saved["langs"]) if saved.get("langs") else None),
        objective=saved.get("objective", "sft"),
        task=saved.get("task", "auto"),
        prompt_template=saved.get("to_anchor_prompt", DEFAULT_TO_ANCHOR_PROMPT),
        chat_template=saved.get("chat_template", True),
        split=split,
        eval_fraction=eval_fraction if eval_fraction is not None else saved.get("eval_fraction", 0.1),
        num_choices=num_choices,
        max_concepts=max_concepts,
        max_length=saved.get("max_length", 256),
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    result["model"] = str(model)
    return result
