"""Length-sorted batching for padded model calls, shared by the embedders and the translators."""

from __future__ import annotations

from collections.abc import Sequence


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches, longest first, for padded encoding.

    Every index appears exactly once. A batch holds at most ``batch_size`` items and, when
    ``max_tokens`` is given, ``len(batch) * max(length in batch) <= max_tokens`` (the padded size),
    except that an item longer than the budget gets a batch of its own. Ties keep input order.

    >>> length_batches([3, 10, 5, 1], batch_size=2)
    [[1, 2], [0, 3]]
    >>> length_batches([3, 10, 5, 1], batch_size=8, max_tokens=12)
    [[1], [2, 0], [3]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        if cur:
            longest = max(cur_max, lengths[i])
            full = len(cur) >= batch_size or (max_tokens is not None and (len(cur) + 1) * longest > max_tokens)
            if full:
                batches.append(cur)
                cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, lengths[i])
    if cur:
        batches.append(cur)
    return batches
