"""Training objectives (corpusalign.training.objectives) against plain reference computations.

Every reference below is written independently of the code under test: Python loops over rows and
positions, float64 and the explicit formulas of the papers (DPO: Rafailov et al. 2023; ORPO: Hong et
al. 2024; supervised contrastive: Khosla et al. 2020). The SFT loss is also checked against
``torch.nn.functional.cross_entropy`` and against the ``loss`` of a tiny Hugging Face
``LlamaForCausalLM`` built in-process. CPU only, fixed seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from corpusalign.training.objectives import (
    IGNORE_INDEX,
    consistency_contrastive,
    consistency_kl,
    dco_loss,
    dpo_loss,
    mean_pool,
    orpo_loss,
    sft_loss,
    token_logps,
)

V = 11


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(seed: int = 0, b: int = 4, t: int = 9, v: int = V) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and labels with a prompt part, an answer and right padding per row."""
    g = _gen(seed)
    logits = torch.randn(b, t, v, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, v, (b, t), generator=g)
    prompt_lens = [2, 3, 1, 4][:b] + [2] * max(0, b - 4)
    pad_lens = [0, 2, 3, 1][:b] + [0] * max(0, b - 4)
    for i in range(b):
        labels[i, : prompt_lens[i]] = IGNORE_INDEX
        if pad_lens[i]:
            labels[i, t - pad_lens[i] :] = IGNORE_INDEX
    return logits, labels


def _ref_log_softmax(row: list[float]) -> list[float]:
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def _ref_token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[int]]:
    lg = logits.double().tolist()
    lab = labels.tolist()
    sums, counts = [], []
    for b in range(len(lab)):
        s, n = 0.0, 0
        for t in range(len(lab[b]) - 1):
            target = lab[b][t + 1]  # logits at t predict the token at t + 1
            if target == IGNORE_INDEX:
                continue
            s += _ref_log_softmax(lg[b][t])[target]
            n += 1
        sums.append(s)
        counts.append(n)
    return sums, counts


def _ref_sym_kl(a: list[float], b: list[float], temperature: float = 1.0) -> float:
    la = _ref_log_softmax([x / temperature for x in a])
    lb = _ref_log_softmax([x / temperature for x in b])
    kl_ab = sum(math.exp(p) * (p - q) for p, q in zip(la, lb))
    kl_ba = sum(math.exp(q) * (q - p) for p, q in zip(la, lb))
    return 0.5 * (kl_ab + kl_ba)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _assert_finite_grad(t: torch.Tensor) -> None:
    assert t.grad is not None
    assert torch.isfinite(t.grad).all()


# --------------------------------------------------------------------------- token_logps / sft_loss


def test_token_logps_matches_loop_reference_with_prompt_and_padding() -> None:
    logits, labels = _batch(0)
    logps, counts = token_logps(logits, labels)
    ref_sums, ref_counts = _ref_token_logps(logits, labels)
    assert counts.dtype == torch.long
    assert counts.tolist() == ref_counts
    assert ref_counts == [7, 4, 5, 4]  # prompt and padding masked, first label never predicted
    assert torch.allclose(logps, torch.tensor(ref_sums, dtype=torch.float64), atol=1e-10)


def test_token_logps_ignores_masked_label_values_and_empty_rows() -> None:
    logits, labels = _batch(1)
    labels[2, :] = IGNORE_INDEX
    logps, counts = token_logps(logits, labels)
    assert counts[2].item() == 0 and logps[2].item() == 0.0
    # Changing the logits at positions whose target is ignored changes nothing.
    logits2 = logits.clone()
    logits2[0, 0] += 5.0  # predicts labels[0, 1], part of the prompt
    logits2[1, -1] += 5.0  # the last position predicts nothing
    assert torch.equal(token_logps(logits2, labels)[0], logps)


def test_sft_loss_token_mean_and_row_means() -> None:
    logits, labels = _batch(2)
    loss, row_nll = sft_loss(logits, labels)
    ref_sums, ref_counts = _ref_token_logps(logits, labels)
    assert loss.dim() == 0
    assert math.isclose(loss.item(), -sum(ref_sums) / sum(ref_counts), rel_tol=1e-12)
    for i in range(len(ref_counts)):
        assert math.isclose(row_nll[i].item(), -ref_sums[i] / ref_counts[i], rel_tol=1e-12)
    # The same as torch's cross_entropy on the shifted, masked tokens.
    lg, tgt = logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1)
    keep = tgt != IGNORE_INDEX
    assert torch.allclose(loss, F.cross_entropy(lg[keep], tgt[keep]), atol=1e-12)


def test_sft_loss_row_without_tokens_is_zero_not_nan() -> None:
    logits, labels = _batch(3)
    labels[1, :] = IGNORE_INDEX
    loss, row_nll = sft_loss(logits, labels)
    assert row_nll[1].item() == 0.0
    assert torch.isfinite(row_nll).all() and torch.isfinite(loss)
    labels[:, :] = IGNORE_INDEX
    logits.requires_grad_(True)
    loss, row_nll = sft_loss(logits, labels)
    assert loss.item() == 0.0 and torch.equal(row_nll, torch.zeros(4, dtype=torch.float64))
    loss.backward()
    _assert_finite_grad(logits)


def test_sft_loss_matches_hf_llama_loss() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    g = _gen(4)
    input_ids = torch.randint(0, 64, (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0  # right padding
    attention_mask[2, 7:] = 0
    labels = input_ids.clone()
    labels[attention_mask == 0] = IGNORE_INDEX
    labels[0, :4] = IGNORE_INDEX  # prompts
    labels[1, :3] = IGNORE_INDEX
    labels[2, :5] = IGNORE_INDEX
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    loss, _ = sft_loss(out.logits, labels)
    assert torch.allclose(loss, out.loss.float(), atol=1e-6)
    ref_sums, ref_counts = _ref_token_logps(out.logits, labels)
    assert math.isclose(loss.item(), -sum(ref_sums) / sum(ref_counts), rel_tol=1e-5)


def test_bf16_logits_give_float32() -> None:
    logits, labels = _batch(5)
    bf = logits.to(torch.bfloat16)
    logps, _ = token_logps(bf, labels)
    loss, row_nll = sft_loss(bf, labels)
    assert logps.dtype == loss.dtype == row_nll.dtype == torch.float32
    # Equal to the float64 computation on the bf16-rounded logits, up to float32 rounding.
    ref_sums, _ = _ref_token_logps(bf.double(), labels)
    assert torch.allclose(logps.double(), torch.tensor(ref_sums, dtype=torch.float64), atol=1e-4)
    group = torch.tensor([0, 0, 1, 1])
    assert consistency_kl(bf, labels, group).dtype == torch.float32
    assert mean_pool(bf, labels != IGNORE_INDEX).dtype == torch.float32
    assert consistency_contrastive(bf[:, 0], group).dtype == torch.float32
    lp = torch.tensor([-1.0, -2.0], dtype=torch.bfloat16)
    assert orpo_loss(lp, lp - 1, -lp)[0].dtype == torch.float32
    assert dpo_loss(lp, lp, lp, lp)[0].dtype == torch.float32


def test_token_and_sft_gradients_flow() -> None:
    logits, labels = _batch(6)
    logits = logits.float().requires_grad_(True)
    logps, _ = token_logps(logits, labels)
    loss, row_nll = sft_loss(logits, labels)
    (logps.sum() + loss + row_nll.sum()).backward()
    _assert_finite_grad(logits)
    # Only positions that predict a counted token get a gradient.
    grad_rows = logits.grad.abs().sum(-1) > 0
    counted = torch.zeros_like(grad_rows)
    counted[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    assert torch.equal(grad_rows, counted)


# --------------------------------------------------------------------------- DPO


def _ref_dpo(pc: float, pr: float, rc: float, rr: float, beta: float, ls: float) -> float:
    z = beta * ((pc - pr) - (rc - rr))
    return -(1 - ls) * _log_sigmoid(z) - ls * _log_sigmoid(-z)


@pytest.mark.parametrize("beta,ls", [(0.1, 0.0), (0.5, 0.0), (0.1, 0.2), (2.0, 0.3)])
def test_dpo_loss_matches_formula(beta: float, ls: float) -> None:
    g = _gen(7)
    pc, pr, rc, rr = (torch.randn(6, generator=g, dtype=torch.float64) * 20 - 50 for _ in range(4))
    loss, cr, rj = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=ls)
    assert loss.shape == cr.shape == rj.shape == (6,)
    for i in range(6):
        ref = _ref_dpo(pc[i].item(), pr[i].item(), rc[i].item(), rr[i].item(), beta, ls)
        assert math.isclose(loss[i].item(), ref, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(cr[i].item(), beta * (pc[i].item() - rc[i].item()), rel_tol=1e-12)
        assert math.isclose(rj[i].item(), beta * (pr[i].item() - rr[i].item()), rel_tol=1e-12)


def test_dpo_policy_equal_reference_is_log2_and_grads() -> None:
    g = _gen(8)
    pc = (torch.randn(5, generator=g) * 10 - 30).requires_grad_(True)
    pr = (torch.randn(5, generator=g) * 10 - 30).requires_grad_(True)
    loss, cr, rj = dpo_loss(pc, pr, pc.detach().clone(), pr.detach().clone(), beta=0.3, label_smoothing=0.1)
    assert torch.allclose(loss, torch.full((5,), math.log(2.0)), atol=1e-6)
    assert torch.equal(cr, torch.zeros(5)) and torch.equal(rj, torch.zeros(5))
    assert not cr.requires_grad and not rj.requires_grad
    loss.mean().backward()
    _assert_finite_grad(pc)
    _assert_finite_grad(pr)
    # Gradient raises the chosen and lowers the rejected log-prob (ls < 0.5).
    assert (pc.grad < 0).all() and (pr.grad > 0).all()
    # Huge margins stay finite.
    big = torch.tensor([1e4, -1e4], requires_grad=True)
    loss, _, _ = dpo_loss(big, -big, torch.zeros(2), torch.zeros(2), beta=1.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    _assert_finite_grad(big)


# --------------------------------------------------------------------------- DCO


def _ref_dco(pc, pr, rc, rr, group, anchor, valid, beta: float, ratio: float) -> tuple[float, list[float], int]:
    """Liu et al. 2026, Eq. 10, pair by pair in Python floats: |beta*Delta_i - gamma_ij * o_j|."""
    terms: list[float] = []
    rows: list[list[float]] = [[] for _ in pc]
    for i in range(len(pc)):
        for j in range(len(pc)):
            if i == j or group[i] != group[j] or not (valid[i] and valid[j]):
                continue
            gamma = beta * (ratio if anchor[j] else 1.0) / (ratio if anchor[i] else 1.0)
            d_i = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]))
            o_j = rc[j] - rr[j]
            terms.append(abs(d_i - gamma * o_j))
            rows[i].append(terms[-1])
    per_row = [sum(r) / len(r) if r else math.nan for r in rows]
    return (sum(terms) / len(terms) if terms else 0.0), per_row, len(terms)


@pytest.mark.parametrize("beta,ratio", [(0.1, 1.0), (0.5, 1.0), (0.1, 3.0), (1.0, 0.25)])
def test_dco_loss_matches_the_pairwise_formula_float64(beta: float, ratio: float) -> None:
    g = _gen(11)
    pc, pr, rc, rr = (torch.randn(9, generator=g, dtype=torch.float64) * 15 - 40 for _ in range(4))
    group = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3])  # concept 2: one language only, in no pair
    anchor = torch.tensor([True, False, False, True, False, True, False, False, True])
    valid = torch.tensor([True, True, True, True, True, True, True, False, True])  # row 7: no answer tokens
    loss, per_row, pairs = dco_loss(pc, pr, rc, rr, group, beta=beta, is_anchor=anchor, anchor_ratio=ratio, valid=valid)
    want, want_rows, want_pairs = _ref_dco(
        pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), group.tolist(), anchor.tolist(), valid.tolist(), beta, ratio
    )
    assert loss.dtype == torch.float64 and int(pairs) == want_pairs == 6 + 2 + 2
    assert math.isclose(loss.item(), want, rel_tol=1e-12)
    for got, ref in zip(per_row.tolist(), want_rows, strict=True):
        assert (math.isnan(got) and math.isnan(ref)) or math.isclose(got, ref, rel_tol=1e-12)
    # which answer is "chosen" does not matter (the paper's loss is symmetric in y_w, y_l)
    swapped, _, _ = dco_loss(pr, pc, rr, rc, group, beta=beta, is_anchor=anchor, anchor_ratio=ratio, valid=valid)
    assert math.isclose(swapped.item(), loss.item(), rel_tol=1e-12)


def test_dco_is_zero_at_the_product_of_experts_and_pulls_towards_it() -> None:
    """Two languages: the minimiser's margin is ref margin_i + (gamma/beta) * ref margin_j (Eq. 9)."""
    beta = 0.2
    rc, rr = torch.tensor([-10.0, -30.0], dtype=torch.float64), torch.tensor([-12.0, -25.0], dtype=torch.float64)
    o = rc - rr  # en prefers y_w by 2 nats, ja prefers y_l by 5
    target = o + o.flip(0)  # each language's margin plus the other's
    pr = rr.clone()
    pc = (rc + (target - o)).requires_grad_(True)  # policy margin = target
    group = torch.tensor([0, 0])
    loss, _, _ = dco_loss(pc, pr, rc, rr, group, beta=beta)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert ((pc - pr) > 0).tolist() == [False, False], "both languages now rank the answers alike"
    start = rc.clone().requires_grad_(True)  # policy == reference: inconsistent rankings, positive loss
    loss, _, _ = dco_loss(start, rr, rc, rr, group, beta=beta)
    loss.backward()
    assert loss.item() > 0
    _assert_finite_grad(start)
    assert start.grad[0] > 0 and start.grad[1] < 0, "en's y_w goes down (ja prefers y_l), ja's goes up"


def test_dco_without_pairs_is_zero_with_the_graph_kept() -> None:
    x = torch.randn(3, requires_grad=True)
    loss, per_row, pairs = dco_loss(x, x * 0.5, x.detach(), x.detach(), torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0 and int(pairs) == 0 and torch.isnan(per_row).all()
    loss.backward()
    assert x.grad is not None
    with pytest.raises(ValueError):
        dco_loss(x, x, x, x, torch.tensor([0, 0, 0]), anchor_ratio=0.0)


def test_dpo_rejects_bad_label_smoothing() -> None:
    x = torch.zeros(2)
    with pytest.raises(ValueError):
        dpo_loss(x, x, x, x, label_smoothing=0.5)


# --------------------------------------------------------------------------- ORPO


def _ref_log_odds(lp: float) -> float:
    p = math.exp(lp)
    return math.log(p / (1.0 - p))


def _ref_orpo(c: float, r: float, nll: float, lam: float) -> tuple[float, float]:
    lor = _ref_log_odds(c) - _ref_log_odds(r)
    return nll - lam * _log_sigmoid(lor), lor


@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_loss_matches_formula_float64(lam: float) -> None:
    c = torch.tensor([-0.05, -0.4, -1.3, -2.5, -7.0], dtype=torch.float64)
    r = torch.tensor([-0.9, -0.3, -3.0, -0.6, -7.5], dtype=torch.float64)
    nll = -c
    loss, lor = orpo_loss(c, r, nll, lam=lam)
    assert loss.dtype == torch.float64 and not lor.requires_grad
    for i in range(5):
        ref_loss, ref_lor = _ref_orpo(c[i].item(), r[i].item(), nll[i].item(), lam)
        assert math.isclose(loss[i].item(), ref_loss, rel_tol=1e-10)
        assert math.isclose(lor[i].item(), ref_lor, rel_tol=1e-10, abs_tol=1e-12)


def test_orpo_stable_near_zero_and_very_negative() -> None:
    c = torch.tensor([0.0, -1e-9, -1e-5, -0.69, -0.7, -50.0, -1e4], requires_grad=True)
    r = torch.tensor([-1e-7, -200.0, -2.0, -0.7, -0.69, 0.0, -1e-3], requires_grad=True)
    nll = (-c).detach().requires_grad_(True)
    loss, lor = orpo_loss(c, r, nll, lam=0.5)
    assert torch.isfinite(loss).all() and torch.isfinite(lor).all()
    loss.sum().backward()
    for t in (c, r, nll):
        _assert_finite_grad(t)
    # Where float32 can represent the inputs, the log odds agree with a float64 reference.
    for i in (2, 3, 4):
        ref = _ref_log_odds(c[i].item()) - _ref_log_odds(r[i].item())
        assert math.isclose(lor[i].item(), ref, rel_tol=1e-4, abs_tol=1e-4)
    # Very negative mean log-prob: odds ~ p, log odds ~ logp.
    assert math.isclose(lor[6].item(), -1e4 - _ref_log_odds(-1e-3), rel_tol=1e-6)
    # A better chosen response (higher odds) gives a lower odds-ratio term.
    base = torch.tensor([-1.0])
    hi, _ = orpo_loss(base, base, torch.zeros(1))
    lo, _ = orpo_loss(base + 0.5, base, torch.zeros(1))
    assert lo.item() < hi.item() and math.isclose(hi.item(), 0.1 * math.log(2.0), rel_tol=1e-6)


# --------------------------------------------------------------------------- consistency_kl


def _kl_batch(seed: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows 0-2: group 0 (row 0 and 1 share the answer at different positions, row 2 differs);
    rows 3-4: group 1, same answer as rows 0/1; row 5: group 1, no counted tokens."""
    g = _gen(seed)
    t = 10
    logits = torch.randn(6, t, V, generator=g, dtype=torch.float64)
    labels = torch.full((6, t), IGNORE_INDEX)
    ans = torch.tensor([3, 7, 1, 4])
    labels[0, 3:7] = ans  # counted positions 2..5 in the shifted view
    labels[1, 5:9] = ans
    labels[2, 4:8] = torch.tensor([3, 7, 1, 5])
    labels[3, 2:6] = ans
    labels[4, 6:10] = ans
    return logits, labels


def _ref_kl(logits: torch.Tensor, labels: torch.Tensor, group: list[int], temperature: float = 1.0) -> float:
    lg = logits.double().tolist()
    lab = labels.tolist()
    rows = []
    for b in range(len(lab)):
        pos = [t for t in range(len(lab[b]) - 1) if lab[b][t + 1] != IGNORE_INDEX]
        rows.append((pos, [lab[b][t + 1] for t in pos]))
    vals = []
    for i in range(len(lab)):
        for j in range(i + 1, len(lab)):
            if group[i] != group[j] or not rows[i][1] or rows[i][1] != rows[j][1]:
                continue
            per_pos = [_ref_sym_kl(lg[i][a], lg[j][b], temperature) for a, b in zip(rows[i][0], rows[j][0])]
            vals.append(sum(per_pos) / len(per_pos))
    return sum(vals) / len(vals) if vals else 0.0


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_consistency_kl_matches_loop_reference(temperature: float) -> None:
    logits, labels = _kl_batch()
    group = [0, 0, 0, 1, 1, 1]
    out = consistency_kl(logits, labels, torch.tensor(group), temperature=temperature)
    ref = _ref_kl(logits, labels, group, temperature)
    assert out.dim() == 0 and ref > 0
    assert math.isclose(out.item(), ref, rel_tol=1e-10)
    # Only pairs (0, 1) and (3, 4) count: row 2's answer differs, row 5 has none, and 0/1 vs 3/4
    # share the answer but not the group.
    pair01 = _ref_kl(logits[[0, 1]], labels[[0, 1]], [0, 0], temperature)
    pair34 = _ref_kl(logits[[3, 4]], labels[[3, 4]], [1, 1], temperature)
    assert math.isclose(out.item(), 0.5 * (pair01 + pair34), rel_tol=1e-10)


def test_consistency_kl_zero_for_identical_distributions_at_shifted_positions() -> None:
    logits, labels = _kl_batch()
    # Copy row 0's answer-position logits into row 1 at its own (later) answer positions.
    logits[1, 4:8] = logits[0, 2:6]
    pair = consistency_kl(logits[[0, 1]], labels[[0, 1]], torch.tensor([5, 5]))
    assert abs(pair.item()) < 1e-12
    # Other positions (prompt, padding) do not matter.
    logits[1, :4] += 3.0
    logits[0, 7:] -= 3.0
    assert abs(consistency_kl(logits[[0, 1]], labels[[0, 1]], torch.tensor([5, 5])).item()) < 1e-12


def test_consistency_kl_symmetric_positive_and_ignores_non_pairs() -> None:
    logits, labels = _kl_batch()
    grp = torch.tensor([0, 0])
    ab = consistency_kl(logits[[0, 1]], labels[[0, 1]], grp)
    ba = consistency_kl(logits[[1, 0]], labels[[1, 0]], grp)
    assert ab.item() > 0 and math.isclose(ab.item(), ba.item(), rel_tol=1e-12)
    # Different answers in one group, or same answers in different groups: no pair -> 0 with grad path.
    lg = logits[[0, 2, 3]].clone().requires_grad_(True)
    for group in ([0, 0, 1], [0, 1, 2]):
        out = consistency_kl(lg, labels[[0, 2, 3]], torch.tensor(group))
        assert out.dim() == 0 and out.item() == 0.0
        out.backward()
        _assert_finite_grad(lg)
        lg.grad = None


def test_consistency_kl_gradients() -> None:
    logits, labels = _kl_batch()
    logits = logits.float().requires_grad_(True)
    out = consistency_kl(logits, labels, torch.tensor([0, 0, 0, 1, 1, 1]))
    out.backward()
    _assert_finite_grad(logits)
    assert logits.grad[0].abs().sum() > 0 and logits.grad[2].abs().sum() == 0 and logits.grad[5].abs().sum() == 0
    with pytest.raises(ValueError):
        consistency_kl(logits, labels, torch.tensor([0, 0, 0, 1, 1, 1]), temperature=0.0)


# --------------------------------------------------------------------------- contrastive / pooling


def _ref_supcon(pooled: torch.Tensor, group: list[int], temperature: float) -> float:
    x = pooled.double().tolist()
    z = [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in x]
    n = len(z)
    s = [[sum(a * b for a, b in zip(z[i], z[k])) / temperature for k in range(n)] for i in range(n)]
    losses = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and group[p] == group[i]]
        if not positives:
            continue
        den = sum(math.exp(s[i][k]) for k in range(n) if k != i)
        losses.append(-sum(math.log(math.exp(s[i][p]) / den) for p in positives) / len(positives))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_consistency_contrastive_matches_loop_reference(temperature: float) -> None:
    g = _gen(10)
    pooled = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3
    group = [0, 0, 0, 1, 1, 2, 3]  # rows 5 and 6 have no positive but stay in the denominators
    out = consistency_contrastive(pooled, torch.tensor(group), temperature=temperature)
    assert out.dim() == 0
    assert math.isclose(out.item(), _ref_supcon(pooled, group, temperature), rel_tol=1e-9)


def test_consistency_contrastive_lower_when_positives_closer_and_grads() -> None:
    g = _gen(11)
    centers = torch.randn(3, 8, generator=g)
    noise = torch.randn(9, 8, generator=g)
    group = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    far = centers[group] + 2.0 * noise
    near = centers[group] + 0.1 * noise
    assert consistency_contrastive(near, group).item() < consistency_contrastive(far, group).item()
    pooled = far.clone().requires_grad_(True)
    consistency_contrastive(pooled, group, temperature=0.1).backward()
    _assert_finite_grad(pooled)
    # No positives at all: 0 with grad path.
    single = torch.randn(3, 4, generator=g, requires_grad=True)
    out = consistency_contrastive(single, torch.tensor([0, 1, 2]))
    assert out.dim() == 0 and out.item() == 0.0
    out.backward()
    _assert_finite_grad(single)
    one = torch.randn(1, 4, generator=g, requires_grad=True)
    out = consistency_contrastive(one, torch.tensor([0]))
    out.backward()
    assert out.item() == 0.0
    _assert_finite_grad(one)


def test_mean_pool_matches_loop_and_grads() -> None:
    g = _gen(12)
    hidden = torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    out = mean_pool(hidden, mask)
    h = hidden.detach().tolist()
    m = mask.tolist()
    for b in range(3):
        n = sum(m[b])
        for k in range(4):
            ref = sum(h[b][t][k] for t in range(5) if m[b][t]) / n if n else 0.0
            assert math.isclose(out[b, k].item(), ref, rel_tol=1e-12, abs_tol=1e-15)
    assert torch.equal(mean_pool(hidden, mask.bool()), out)
    out.sum().backward()
    _assert_finite_grad(hidden)
    assert hidden.grad[0, 3:].abs().sum() == 0 and hidden.grad[2].abs().sum() == 0
