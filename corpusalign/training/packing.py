"""Sequence packing: the rows of a batch laid end to end in rows of at most ``max_length`` tokens.

Short rows (CLDR names, UI strings, Tatoeba sentences) padded to the longest row of their batch
spend most of a forward pass on padding. Packed, the same tokens take a few full rows. Rows go to
packed rows first-fit by decreasing length, and every row of the batch stays in the batch (every
language version of a concept still meets the others in one step).

Each packed row restarts its position ids at 0, and with no attention mask ``transformers`` attends
within each run of consecutive position ids only (block-diagonal causal attention; the tail padding
is a run of its own). So a row sees exactly the tokens it sees unpacked. :func:`unpack` gathers the
packed outputs back into the padded layout, so every objective computes the same loss from the same
logits: packing changes how much is computed, not what is learnt. :func:`check_packing` compares
the two layouts on a real batch, for models whose attention would ignore the boundaries.
"""

from __future__ import annotations

from typing import Any

PACKED_KEYS = ("packed_input_ids", "packed_position_ids", "unpack")


def pack(batch: dict[str, Any], max_length: int, pad_id: int) -> dict[str, Any]:
    """``batch`` (a :class:`~corpusalign.training.task.Collator` batch) plus its packed layout.

    Adds ``packed_input_ids`` and ``packed_position_ids`` ``[R, L]`` and ``unpack`` ``[B, W]``: the
    flat index into ``R * L`` of each padded position (0 for padding, which no loss reads).
    """
    import torch

    ids, mask = batch["input_ids"], batch["attention_mask"]
    lengths = mask.sum(1).tolist()
    capacity = max(max_length, max(lengths, default=1))
    bins: list[list[int]] = []  # rows of each packed row
    fill: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = next((r for r, f in enumerate(fill) if f + lengths[i] <= capacity), None)
        if r is None:
            bins.append([])
            fill.append(0)
            r = len(bins) - 1
        bins[r].append(i)
        fill[r] += lengths[i]
    width = max(max(fill, default=1), 1)
    packed = torch.full((len(bins), width), pad_id, dtype=ids.dtype)
    positions = torch.zeros((len(bins), width), dtype=torch.long)
    index = torch.zeros(ids.shape, dtype=torch.long)
    for r, rows in enumerate(bins):
        offset = 0
        for i in rows:
            n = lengths[i]
            packed[r, offset : offset + n] = ids[i, :n]
            positions[r, offset : offset + n] = torch.arange(n)
            index[i, :n] = r * width + offset + torch.arange(n)
            offset += n
        positions[r, offset:] = torch.arange(width - offset)  # the padding tail: a run of its own
    return {**batch, "packed_input_ids": packed, "packed_position_ids": positions, "unpack": index}


def unpack(packed: Any, index: Any) -> Any:
    """``[R, L, ...]`` outputs of a packed forward pass -> ``[B, W, ...]`` in the padded layout."""
    flat = packed.reshape(-1, *packed.shape[2:])
    return flat[index]


def forward_packed(model: Any, batch: dict[str, Any], *, hidden: bool = False) -> tuple[Any, Any]:
    """(logits, last hidden state or None) of ``batch``'s rows in the padded layout, computed packed."""
    out = model(
        input_ids=batch["packed_input_ids"],
        position_ids=batch["packed_position_ids"],
        use_cache=False,
        output_hidden_states=hidden,
    )
    logits = unpack(out.logits, batch["unpack"])
    return logits, unpack(out.hidden_states[-1], batch["unpack"]) if hidden else None


def check_packing(model: Any, batch: dict[str, Any], *, tolerance: float) -> float:
    """Largest difference of next-token log-probabilities, packed vs padded, over ``batch``'s real
    tokens; raises ``ValueError`` above ``tolerance`` (the model's attention crossed row boundaries)."""
    import torch

    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        packed, _ = forward_packed(model, batch)
        real = batch["attention_mask"].bool()
        a = torch.log_softmax(padded.float(), -1)[real]
        b = torch.log_softmax(packed.float(), -1)[real]
        worst = float((a - b).abs().max()) if real.any() else 0.0
    if worst > tolerance:
        raise ValueError(
            f"pack: this model's outputs change when rows are packed (log-probabilities differ by up to {worst:.3g}, "
            f"tolerance {tolerance}): its attention does not keep packed rows apart. Train with pack: false."
        )
    return worst
