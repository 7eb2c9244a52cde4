"""Training objectives for batch-wise aligned training, as pure torch functions.

Every function here takes logits, log-probabilities or hidden states (no model, no tokenizer) and
returns tensors that keep the autograd graph, so a training loop combines them freely.

Conventions

* ``labels`` are aligned with ``input_ids`` as in Hugging Face causal LMs: the logits at position ``t``
  predict token ``t + 1``, so the functions shift internally (``logits[:, :-1]`` against
  ``labels[:, 1:]``); callers pass unshifted ``labels``.
* A label equal to :data:`IGNORE_INDEX` (``-100``) marks a token that does not count (prompt,
  padding).
* Log-softmax is computed in float32 (or float64 when the inputs are float64), also for bf16/fp16
  logits, so the losses come out in float32.

Objectives and their sources

* Supervised fine-tuning (:func:`sft_loss`): token-level negative log-likelihood, averaged over all
  counted tokens of the batch (the "token mean" of Hugging Face ``ForCausalLMLoss``).
* DPO (:func:`dpo_loss`): Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model
  is Secretly a Reward Model" (NeurIPS 2023, arXiv:2305.18290), sigmoid loss
  ``-log sigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r)))`` on summed sequence log-probs, with the
  conservative label smoothing of cDPO (Mitchell 2023) as implemented in TRL.
* ORPO (:func:`orpo_loss`): Hong et al. 2024, "ORPO: Monolithic Preference Optimization without
  Reference Model" (EMNLP 2024, arXiv:2403.07691): ``L = L_SFT + lambda * L_OR`` with
  ``L_OR = -log sigmoid(log odds(y_w|x) - log odds(y_l|x))``, ``odds(p) = p / (1 - p)`` and
  ``log p`` the length-normalised (mean token) log-probability.
* DCO (:func:`dco_loss`): Direct Consistency Optimization, Liu et al. 2026, "Optimizing Language
  Models for Crosslingual Knowledge Consistency" (arXiv:2603.04678, Eq. 10). For parallel prompts
  ``x_i``, ``x_j`` (one concept in languages ``i`` and ``j``) and two answers ``y_w``, ``y_l``, the
  policy's implied reward margin in language ``i``, ``d_i = beta * ((pi(y_w|x_i) - ref(y_w|x_i)) -
  (pi(y_l|x_i) - ref(y_l|x_i)))`` (summed log-probs), is pulled to ``gamma_ij`` times the *reference*
  margin in language ``j``, ``o_j = ref(y_w|x_j) - ref(y_l|x_j)``: ``L_ij = |d_i - gamma_ij * o_j|``.
  Its minimiser is the product of experts ``pi(y|x_i) ~ ref(y|x_i) * ref(y|x_j)^(gamma_ij/beta)``,
  whose answer rankings agree across languages when ``gamma_ij * gamma_ji = beta^2`` (the paper's
  Lemma 1). The loss is symmetric in ``y_w``/``y_l``, so which answer is "chosen" does not matter.
* Cross-lingual consistency (optional terms for batches that hold the same concept in several
  languages): :func:`consistency_kl`, a symmetric KL between the next-token distributions of language
  versions that share the same answer tokens, and :func:`consistency_contrastive`, the supervised
  contrastive loss of Khosla et al. 2020, "Supervised Contrastive Learning" (NeurIPS 2020,
  arXiv:2004.11362, the ``L_out`` form) on pooled hidden states, with the rows of one concept as
  positives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "consistency_contrastive",
    "consistency_kl",
    "dco_loss",
    "dpo_loss",
    "mean_pool",
    "orpo_loss",
    "sft_loss",
    "token_logps",
]

#: Label value of tokens that do not count (prompt, padding), as in Hugging Face and PyTorch.
IGNORE_INDEX = -100

_LN2 = math.log(2.0)


def _compute_dtype(t: Tensor) -> Tensor:
    """``t`` promoted to at least float32 (float64 stays float64)."""
    return t if t.dtype == torch.float64 else t.float()


def _zero_with_grad(t: Tensor) -> Tensor:
    """A 0-dim float32 (or float64) zero that stays connected to ``t``'s graph."""
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.sum(dtype=dtype) * 0.0


def _shifted(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    if logits.dim() != 3 or labels.dim() != 2 or logits.shape[:2] != labels.shape:
        raise ValueError(f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return logits[:, :-1], labels[:, 1:]


def _token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position NLL [B, T-1] (0 where ignored) and the counted-token mask [B, T-1]."""
    lg, tgt = _shifted(logits, labels)
    b, t1, v = lg.shape
    mask = tgt != IGNORE_INDEX
    nll = F.cross_entropy(
        _compute_dtype(lg).reshape(b * t1, v),
        tgt.reshape(b * t1).long(),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(b, t1)
    return nll, mask


def token_logps(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Summed log-probability of the label tokens per row, and the number of counted tokens per row.

    ``logits`` [B, T, V], ``labels`` [B, T] (unshifted, :data:`IGNORE_INDEX` for tokens that do not
    count). Returns ``(logps [B] float32, counts [B] long)``; a row without counted tokens gets 0 and 0.
    Divide ``logps`` by ``counts.clamp_min(1)`` for the mean token log-prob that ORPO uses.
    """
    nll, mask = _token_nll(logits, labels)
    return -nll.sum(dim=-1), mask.sum(dim=-1).long()


def sft_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Supervised fine-tuning loss (causal LM negative log-likelihood).

    Returns ``(loss, row_nll)``: ``loss`` is the total NLL over the batch divided by the total number of
    counted tokens (token mean, the same as Hugging Face's ``loss`` for ``labels``), 0 with a grad
    path when no token counts; ``row_nll`` [B] is each row's mean NLL (0 for a row without counted
    tokens).
    """
    nll, mask = _token_nll(logits, labels)
    row_sum = nll.sum(dim=-1)
    row_count = mask.sum(dim=-1)
    loss = row_sum.sum() / row_count.sum().clamp_min(1)
    row_nll = row_sum / row_count.clamp_min(1)
    return loss, row_nll


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """DPO sigmoid loss (Rafailov et al. 2023) on summed sequence log-probs, each [B].

    ``margin = (pc - pr) - (rc - rr)``; loss per row
    ``-(1 - ls) * logsigmoid(beta * margin) - ls * logsigmoid(-beta * margin)``.
    Returns ``(loss [B], chosen_rewards [B], rejected_rewards [B])``, the rewards
    ``beta * (policy - reference)`` detached. Take ``loss.mean()`` for the batch.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    pc, pr = _compute_dtype(policy_chosen_logps), _compute_dtype(policy_rejected_logps)
    rc, rr = _compute_dtype(ref_chosen_logps), _compute_dtype(ref_rejected_logps)
    logits = beta * ((pc - pr) - (rc - rr))
    loss = -(1.0 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    chosen_rewards = (beta * (pc - rc)).detach()
    rejected_rewards = (beta * (pr - rr)).detach()
    return loss, chosen_rewards, rejected_rewards


def dco_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    group: Tensor,
    *,
    beta: float = 0.1,
    is_anchor: Tensor | None = None,
    anchor_ratio: float = 1.0,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Direct Consistency Optimization over every ordered pair of language versions in the batch.

    Rows ``i`` and ``j`` with the same ``group`` (one concept) and ``i != j`` form a pair; each gives
    ``|d_i - gamma_ij * o_j|`` (see the module docstring), the bilingual loss of Liu et al. 2026 (Eq.
    10) with every pair of languages a batch holds (the authors draw one random pair per example; this
    is its expectation over the pairs). ``gamma_ij = beta`` between two non-anchor languages; with
    ``is_anchor`` (bool ``[B]``) and ``anchor_ratio = r``, a language learns from the anchor with
    ``gamma = beta * r`` and the anchor from it with ``beta / r``, so ``gamma_ij * gamma_ji = beta^2``
    always holds (the paper's direction hyperparameters; ``r > 1`` moves the other languages towards
    the anchor more than the anchor towards them). ``valid`` (bool ``[B]``) leaves rows without
    counted answer tokens out of every pair.

    Inputs are summed answer log-probabilities ``[B]``. Returns ``(loss, per_row, pairs)``: the mean
    over all pairs (0 with the graph kept when there is none), each row's mean over its pairs (NaN
    for a row in no pair) and the number of pairs.
    """
    if anchor_ratio <= 0:
        raise ValueError("anchor_ratio must be > 0")
    dtype = torch.float64 if policy_chosen.dtype == torch.float64 else torch.float32
    pc, pr, rc, rr = (t.to(dtype) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected))
    d = beta * ((pc - rc) - (pr - rr))  # [B] the policy's implied reward margin
    o = (rc - rr).detach()  # [B] the reference margin (a constant)
    n = d.shape[0]
    pair = group[:, None] == group[None, :]
    pair &= ~torch.eye(n, dtype=torch.bool, device=d.device)
    if valid is not None:
        pair &= valid[:, None] & valid[None, :]
    gamma = torch.full((n, n), beta, dtype=dtype, device=d.device)
    if is_anchor is not None:
        gamma = gamma * torch.where(is_anchor[None, :], anchor_ratio, 1.0).to(dtype)  # j is the anchor
        gamma = gamma / torch.where(is_anchor[:, None], anchor_ratio, 1.0).to(dtype)  # i is the anchor
    terms = (d[:, None] - gamma * o[None, :]).abs()
    terms = torch.where(pair, terms, torch.zeros((), dtype=dtype, device=d.device))
    pairs = pair.sum()
    per_pair_count = pair.sum(dim=1)
    per_row = torch.where(per_pair_count > 0, terms.sum(dim=1) / per_pair_count.clamp(min=1), torch.nan)
    loss = terms.sum() / pairs if pairs > 0 else _zero_with_grad(d)
    return loss, per_row, pairs


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, stable at both ends (Maechler 2012)."""
    # Each branch sees only inputs it is stable on, so the unused branch of torch.where cannot put a
    # NaN/inf into the gradient.
    near0 = x > -_LN2
    x_near = torch.where(near0, x, torch.full_like(x, -_LN2))
    x_far = torch.where(near0, torch.full_like(x, -_LN2), x)
    return torch.where(near0, torch.log(-torch.expm1(x_near)), torch.log1p(-torch.exp(x_far)))


def _log_odds(logp: Tensor) -> Tensor:
    # logp = 0 (p = 1) would give infinite odds: keep logp a hair below 0.
    eps = 1e-6 if logp.dtype != torch.float64 else 1e-12
    logp = logp.clamp(max=-eps)
    return logp - _log1mexp(logp)


def orpo_loss(
    chosen_logps_mean: Tensor,
    rejected_logps_mean: Tensor,
    chosen_nll_mean: Tensor,
    *,
    lam: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """ORPO loss (Hong et al. 2024), per row.

    Inputs [B]: the mean token log-prob of the chosen and the rejected response, and the mean NLL of the
    chosen response (``sft_loss(...)[1]`` on the chosen rows). With
    ``log_odds(lp) = lp - log(1 - exp(lp))`` (computed stably; ``lp`` is clamped just below 0),
    ``lor = log_odds(chosen) - log_odds(rejected)`` and the loss is
    ``chosen_nll_mean + lam * (-logsigmoid(lor))``. Returns ``(loss [B], lor [B] detached)``.
    """
    c = _compute_dtype(chosen_logps_mean)
    r = _compute_dtype(rejected_logps_mean)
    nll = _compute_dtype(chosen_nll_mean)
    lor = _log_odds(c) - _log_odds(r)
    loss = nll - lam * F.logsigmoid(lor)
    return loss, lor.detach()


def consistency_kl(logits: Tensor, labels: Tensor, group: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Cross-lingual consistency: symmetric KL between language versions that share the answer.

    ``group`` [B] (long): rows with the same id are language versions of one concept. For every pair
    of rows ``i < j`` of one group whose counted target tokens (``labels[:, 1:]`` where not
    :data:`IGNORE_INDEX`) are the same non-empty sequence, the next-token distributions (logits divided
    by ``temperature``) at the k-th counted position of ``i`` and of ``j`` are compared for every ``k``
    (answers may start at different positions), with ``0.5 * (KL(p_i || p_j) + KL(p_j || p_i))``
    averaged over the positions. Returns the mean over those pairs, a 0-dim float32 tensor; 0 (with a
    grad path) when the batch has no such pair.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    lg, tgt = _shifted(logits, labels)
    if group.shape != (lg.shape[0],):
        raise ValueError(f"group must have shape [{lg.shape[0]}], got {tuple(group.shape)}")
    mask = tgt != IGNORE_INDEX
    # One host sync: decide the pairs in Python.
    tgt_rows = tgt.tolist()
    mask_rows = mask.tolist()
    answers = [tuple(tok for tok, m in zip(toks, ms) if m) for toks, ms in zip(tgt_rows, mask_rows)]
    groups = group.tolist()
    pairs: list[tuple[int, int]] = []
    for i in range(len(groups)):
        if not answers[i]:
            continue
        for j in range(i + 1, len(groups)):
            if groups[j] == groups[i] and answers[j] == answers[i]:
                pairs.append((i, j))
    if not pairs:
        return _zero_with_grad(logits)
    cache: dict[int, Tensor] = {}

    def row_logp(i: int) -> Tensor:
        if i not in cache:
            cache[i] = F.log_softmax(_compute_dtype(lg[i][mask[i]]) / temperature, dim=-1)  # [N_i, V]
        return cache[i]

    terms = []
    for i, j in pairs:
        lp_i, lp_j = row_logp(i), row_logp(j)
        # KL(p||q) + KL(q||p) = sum_v (p - q) (log p - log q)
        sym = 0.5 * ((lp_i.exp() - lp_j.exp()) * (lp_i - lp_j)).sum(dim=-1)
        terms.append(sym.mean())
    return torch.stack(terms).mean()


def consistency_contrastive(pooled: Tensor, group: Tensor, *, temperature: float = 0.05) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) with the rows of one group as positives.

    ``pooled`` [B, H] is L2-normalised; ``s_ik`` is the cosine similarity. For each anchor ``i`` with at
    least one positive ``p`` (another row with the same ``group`` id) the loss is
    ``-mean_p log(exp(s_ip / T) / sum_{k != i} exp(s_ik / T))``; the result is the mean over those
    anchors, a 0-dim float32 tensor, 0 (with a grad path) when no row has a positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if pooled.dim() != 2 or group.shape != (pooled.shape[0],):
        raise ValueError(f"expected pooled [B, H] and group [B], got {tuple(pooled.shape)} and {tuple(group.shape)}")
    b = pooled.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=pooled.device)
    pos = (group.unsqueeze(0) == group.unsqueeze(1)) & ~eye
    anchors = pos.any(dim=1)
    if not bool(anchors.any()):
        return _zero_with_grad(pooled)
    z = F.normalize(_compute_dtype(pooled), dim=-1)
    sim = (z[anchors] @ z.T) / temperature  # [A, B]
    self_mask = eye[anchors]
    log_den = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    log_prob = (sim - log_den).masked_fill(~pos[anchors], 0.0)
    per_anchor = -log_prob.sum(dim=1) / pos[anchors].sum(dim=1)
    return per_anchor.mean()


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Masked mean over the sequence: ``hidden`` [B, T, H], ``mask`` [B, T] (bool or 0/1) -> [B, H].

    Computed in at least float32; a row with an empty mask gives zeros.
    """
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden [B, T, H] and mask [B, T], got {tuple(hidden.shape)} and {tuple(mask.shape)}")
    h = _compute_dtype(hidden)
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
