"""Corpus rows -> training examples -> padded tensors.

:class:`Examples` turns the rows of a :class:`~corpusalign.training.data.ShardDataset` into examples:

* task ``fields``: the corpus already holds instruction data. SFT reads ``prompt``/``response``;
  DPO and ORPO read ``prompt``/``chosen``/``rejected``. Every language version of a concept is the
  same example in that language (DCO, like DPO, reads ``prompt``/``chosen``/``rejected``).
* task ``to_anchor``: the corpus holds plain parallel ``text`` (the bundled sample, UDHR, Tatoeba).
  The prompt asks, in one wording for every language, what the row's text says in the anchor
  language (English); the answer (``response`` / ``chosen``) is the concept's anchor text, so all
  language versions of a concept share one answer. ``rejected`` is the anchor text of another
  concept, drawn once with the seed (a derangement: never the concept itself).
* ``auto`` (default): ``fields`` when the corpus has the fields the objective needs, else ``to_anchor``.

An example whose answer is missing (a ``None`` field, or a concept without an anchor row under
``missing="partial"``) keeps its place in the batch with no counted tokens, so batch composition
never changes silently; :attr:`Examples.unusable` counts them.

:class:`Collator` tokenises a list of examples: ``prompt`` rendered with the tokenizer's chat
template (one user turn, generation prompt added) when it has one, then the answer and the eos token.
Labels are -100 on prompt and padding, so only answer tokens count. Sequences longer than
``max_length`` lose prompt tokens first, from the left (the answer keeps at least half the budget).
Preference batches stack the chosen sequences of all rows, then their rejected sequences (``2B``
rows, one forward pass). Per row it also returns ``group`` (concept number: rows with the same
number are language versions of one concept), ``lang`` (position in the language list) and
``prompt_mask`` (real prompt tokens, for pooling prompt representations) and ``row`` (dataset row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from corpusalign.training.config import DEFAULT_TO_ANCHOR_PROMPT
from corpusalign.training.data import ShardDataset

IGNORE_INDEX = -100

_PREFERENCE = ("prompt", "chosen", "rejected")
NEEDS = {"sft": ("prompt", "response"), "dpo": _PREFERENCE, "orpo": _PREFERENCE, "dco": _PREFERENCE}


def resolve_task(task: str, objective: str, fields: Sequence[str]) -> str:
    """``fields`` or ``to_anchor`` for a corpus with ``fields``; ValueError when neither fits."""
    has_fields = all(f in fields for f in NEEDS[objective])
    if task == "fields" or (task == "auto" and has_fields):
        if not has_fields:
            raise ValueError(
                f"task 'fields' with objective {objective!r} needs the fields {list(NEEDS[objective])}; "
                f"the corpus has {list(fields)}"
            )
        return "fields"
    if "text" not in fields:
        raise ValueError(
            f"objective {objective!r} needs the fields {list(NEEDS[objective])} (task 'fields') or 'text' (task 'to_anchor'); "
            f"the corpus has {list(fields)}"
        )
    return "to_anchor"


class Examples:
    """The rows of ``ds`` as examples (dicts), indexed like the dataset's rows.

    ``ex.__getitems__(indices)`` is what a ``DataLoader`` with a batch sampler over ``ds`` calls.
    """

    def __init__(
        self,
        ds: ShardDataset,
        *,
        objective: str = "sft",
        task: str = "auto",
        prompt_template: str = DEFAULT_TO_ANCHOR_PROMPT,
        seed: int = 0,
    ) -> None:
        self.ds = ds
        self.objective = objective
        self.preference = objective in ("dpo", "orpo", "dco")
        self.task = resolve_task(task, objective, ds.fields)
        self.prompt_template = prompt_template
        self.unusable = 0
        if self.task == "to_anchor":
            if ds.anchor is None or ds.anchor not in ds.langs:
                raise ValueError(
                    f"task 'to_anchor' needs the anchor language {ds.anchor!r} among the dataset's languages {list(ds.langs)}"
                )
            anchor_code = ds.langs.index(ds.anchor)
            rows = np.flatnonzero(ds.row_lang == anchor_code)
            #: Per concept: row index of its anchor row, or -1.
            self.anchor_row = np.full(ds.num_concepts, -1, dtype=np.int64)
            self.anchor_row[ds.row_concept[rows]] = rows
            have = np.flatnonzero(self.anchor_row >= 0)
            #: Per concept: the concept whose anchor text is its rejected answer (-1: none).
            self.negative = np.full(ds.num_concepts, -1, dtype=np.int64)
            if len(have) >= 2:
                perm = np.random.default_rng(seed).permutation(len(have))
                self.negative[have[perm]] = have[np.roll(perm, 1)]  # a cycle: never a fixed point

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        ds = self.ds
        idx = np.asarray(indices, dtype=np.int64)
        concepts = ds.row_concept[idx]
        meta = ds.table.select(["concept_id", "lang"]).take(idx).to_pylist()
        if self.task == "fields":
            cols = {f: ds.column(f, idx) for f in NEEDS[self.objective]}
        else:
            texts = ds.column("text", idx)
            cols = {"prompt": [None if t is None else self.prompt_template.format_map({"text": t}) for t in texts]}
            answer = _texts_at(ds, self.anchor_row[concepts])
            cols["chosen" if self.preference else "response"] = answer
            if self.preference:
                neg = self.negative[concepts]
                cols["rejected"] = _texts_at(ds, np.where(neg >= 0, self.anchor_row[np.maximum(neg, 0)], -1))
        out = []
        for i, m in enumerate(meta):
            ex = {"row": int(idx[i]), "concept_id": m["concept_id"], "lang": m["lang"], "concept": int(concepts[i])}
            ex.update({name: values[i] for name, values in cols.items()})
            if any(ex[f] is None for f in NEEDS[self.objective]):
                self.unusable += 1
            out.append(ex)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]


def _texts_at(ds: ShardDataset, rows: np.ndarray) -> list[str | None]:
    """``text`` of dataset rows ``rows`` (None where the row is -1)."""
    ok = rows >= 0
    out: list[str | None] = [None] * len(rows)
    if ok.any():
        for pos, text in zip(np.flatnonzero(ok), ds.column("text", rows[ok]), strict=True):
            out[int(pos)] = text
    return out


class Collator:
    """Examples -> ``input_ids``, ``attention_mask``, ``labels``, ``prompt_mask``, ``group``, ``lang``."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        langs: Sequence[str],
        max_length: int = 256,
        preference: bool = False,
        chat_template: bool = True,
        anchor: str | None = None,
    ) -> None:
        if max_length < 8:
            raise ValueError("max_length must be >= 8")
        self.tok = tokenizer
        self.lang_id = {lg: i for i, lg in enumerate(langs)}
        self.anchor = anchor
        self.max_length = max_length
        self.preference = preference
        self.chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos

    def render_prompt(self, prompt: str) -> str:
        """The prompt as the model sees it: one chat user turn plus the generation prompt, or plain."""
        if self.chat:
            messages = [{"role": "user", "content": prompt}]
            return str(self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return prompt + "\n"

    def encode(self, prompts: Sequence[str | None], answers: Sequence[str | None]) -> list[tuple[list[int], int]]:
        """Token ids and prompt length of each ``prompt + answer + eos``, truncated to ``max_length``."""
        p_ids = self.tok([self.render_prompt(p or "") for p in prompts], add_special_tokens=False)["input_ids"]
        a_ids = self.tok([a or "" for a in answers], add_special_tokens=False)["input_ids"]
        out = []
        for p, a, answer in zip(p_ids, a_ids, answers, strict=True):
            a = [*a, self.eos] if answer is not None else []
            keep_a = min(len(a), max(self.max_length - len(p), self.max_length // 2))
            keep_p = min(len(p), self.max_length - keep_a)
            p = p[len(p) - keep_p :]
            out.append((p + a[:keep_a], len(p)))
        return out

    def encode_choices(
        self, prompts: Sequence[str | None], choices: Sequence[Sequence[str | None]]
    ) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Prompt ids and, per prompt, each choice's ``answer + eos`` ids (for multiple-choice scoring).

        The prompt loses tokens from the left so that prompt plus its longest choice fits ``max_length``.
        """
        n = len(choices[0]) if choices else 0
        flat = [c or "" for row in choices for c in row]
        c_ids = [[*ids, self.eos] for ids in self.tok(flat, add_special_tokens=False)["input_ids"]] if flat else []
        c_ids = [ids[: self.max_length // 2] for ids in c_ids]
        p_ids = self.tok([self.render_prompt(p or "") for p in prompts], add_special_tokens=False)["input_ids"]
        out_p, out_c = [], []
        for i, p in enumerate(p_ids):
            row = c_ids[i * n : (i + 1) * n]
            keep = max(1, self.max_length - max(len(c) for c in row))
            out_p.append(p[len(p) - keep :] if len(p) > keep else p)
            out_c.append(row)
        return out_p, out_c

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        prompts = [e["prompt"] for e in examples]
        if self.preference:
            seqs = self.encode(prompts, [e["chosen"] for e in examples])
            rejected = self.encode(prompts, [e["rejected"] if e["chosen"] is not None else None for e in examples])
            seqs = seqs + rejected
        else:
            seqs = self.encode(prompts, [e["response"] for e in examples])
        n, width = len(seqs), max((len(s) for s, _ in seqs), default=1)
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        prompt_mask = torch.zeros((n, width), dtype=torch.bool)
        for i, (s, plen) in enumerate(seqs):
            t = torch.tensor(s, dtype=torch.long)
            ids[i, : len(s)] = t
            mask[i, : len(s)] = 1
            labels[i, plen : len(s)] = t[plen:]
            prompt_mask[i, :plen] = True
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "prompt_mask": prompt_mask,
            "row": torch.tensor([e["row"] for e in examples], dtype=torch.long),
            "group": torch.tensor([e["concept"] for e in examples], dtype=torch.long),
            "lang": torch.tensor([self.lang_id[e["lang"]] for e in examples], dtype=torch.long),
            "is_anchor": torch.tensor([e["lang"] == self.anchor for e in examples], dtype=torch.bool),
        }
