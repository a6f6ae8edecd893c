"""Losses of `vos train` against hand-computed values and a plain-loop reference."""

import math

import numpy as np
import pytest
import torch

from vos.train.losses import (entropy_weights, motion_consistency_loss, query_rows, semantic_consistency_loss,
                              strip_cls, top_bottom_keys)


def test_strip_cls_removes_cls_rows_and_columns():
    T, P = 2, 3
    M = T * (1 + P)
    attn = torch.arange(M * M, dtype=torch.float32).view(1, M, M)
    keep = [1, 2, 3, 5, 6, 7]  # tokens [cls0, p0, p1, p2, cls1, p0, p1, p2]
    assert torch.equal(strip_cls(attn, T), attn[:, keep][:, :, keep])


def test_query_rows_are_the_same_positions_in_every_frame():
    assert query_rows(torch.tensor([2, 0]), num_frames=3, patches=4).tolist() == [2, 0, 6, 4, 10, 8]


def test_top_bottom_keys():
    top, bottom = top_bottom_keys(torch.tensor([[0.3, 0.1, 0.5, 0.05, 0.2]]), 2, 3)
    assert top.tolist() == [[2, 0]]
    assert bottom.tolist() == [[3, 1, 4]]


def test_semantic_loss_hand_computed():
    # 2 frames x 2 patches, one query position (0): queries are tokens 0 and 2.
    attn = torch.tensor([[0.4, 0.1, 0.2, 0.3],   # frame0: top 0, bottom 1; frame1: top 3, bottom 2
                         [0.25, 0.25, 0.25, 0.25],
                         [0.1, 0.3, 0.4, 0.2],   # frame0: top 1, bottom 0; frame1: top 2, bottom 3
                         [0.25, 0.25, 0.25, 0.25]])[None]
    angles = torch.tensor([0.0, 90.0, 60.0, 0.0]) * math.pi / 180
    scale = torch.tensor([1.0, 2.0, 3.0, 0.5])[:, None]  # cosine similarity ignores the norm
    tokens = (torch.stack([angles.cos(), angles.sin()], 1) * scale)[None]
    loss = semantic_consistency_loss(attn, tokens, torch.tensor([0]), 2, num_positives=1, num_negatives=1,
                                     positive_margin=0.9, negative_margin=0.1)
    # positives: q0 -> {0: cos 0 = 1, 3: 1}; q2 -> {1: cos 30°, 2: 1}
    pos = [0.0, 0.0, 0.9 - math.cos(math.pi / 6), 0.0]
    # negatives: q0 -> {1: cos 90° = 0, 2: cos 60° = .5}; q2 -> {0: .5, 3: .5}
    neg = [0.0, 0.4, 0.4, 0.4]
    assert loss.item() == pytest.approx(sum(pos) / 4 + sum(neg) / 4, abs=1e-6)


def test_entropy_weights_softmax_of_negative_entropy():
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])[None, None]
    h = torch.tensor([0.0, math.log(2), math.log(4)])
    expected = torch.exp(-h) / torch.exp(-h).sum()  # = [4, 2, 1] / 7
    torch.testing.assert_close(entropy_weights(p)[0, 0], expected)
    torch.testing.assert_close(expected, torch.tensor([4.0, 2.0, 1.0]) / 7)


def test_motion_loss_hand_computed():
    # 2 frames x 2 patches, query position 0: rows 0 (frame 0) and 2 (frame 1); rows are scaled
    # by arbitrary constants because the loss L1-normalises them.
    p0, p1 = [0.5, 0.1, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25]
    p2, p3 = [0.1, 0.1, 0.2, 0.6], [0.1, 0.2, 0.3, 0.4]
    attn = torch.tensor([p0, p1, p2, p3]) * torch.tensor([[2.0], [3.0], [0.5], [1.0]])
    loss = motion_consistency_loss(attn[None], torch.tensor([0]), 2, num_positives=1, num_negatives=1, margin=1.0)

    def sim(p, x):
        return sum(a * math.log(b) for a, b in zip(p, x))

    # frame 0: own-frame keys 0, 1 -> positive 0 (itself), negative 1
    l0 = max(0.0, sim(p0, p1) - sim(p0, p0) + 1)
    # frame 1: own-frame keys 2, 3 -> positive 3, negative 2 (itself)
    l1 = max(0.0, sim(p2, p2) - sim(p2, p3) + 1)
    assert l0 == pytest.approx(0.83432, abs=1e-4) and l1 == pytest.approx(1.09285, abs=1e-4)
    # one query per frame: its entropy weight is 1
    assert loss.item() == pytest.approx((l0 + l1) / 2, abs=1e-5)


def _reference_semantic(attn, z, qpos, T, kp, kn, mp, mn):
    B, N, _ = attn.shape
    P = N // T
    pos_terms, neg_terms = [], []
    for b in range(B):
        for t in range(T):
            for p in qpos:
                q = t * P + p
                for t2 in range(T):
                    keys = list(range(t2 * P, (t2 + 1) * P))
                    order = sorted(keys, key=lambda k: -attn[b, q, k])
                    zq = z[b, q] / np.linalg.norm(z[b, q])
                    for k in order[:kp]:
                        pos_terms.append(max(0, mp - zq @ (z[b, k] / np.linalg.norm(z[b, k]))))
                    for k in order[::-1][:kn]:
                        neg_terms.append(max(0, zq @ (z[b, k] / np.linalg.norm(z[b, k])) - mn))
    return np.mean(pos_terms) + np.mean(neg_terms)


def _reference_motion(attn, qpos, T, kp, kn, margin):
    B, N, _ = attn.shape
    P = N // T
    dist = attn / attn.sum(-1, keepdims=True)
    totals = []
    for b in range(B):
        for t in range(T):
            costs, negent = [], []
            for p in qpos:
                q = t * P + p
                own = list(range(t * P, (t + 1) * P))
                order = sorted(own, key=lambda k: -dist[b, q, k])
                sim = {k: float(dist[b, q] @ np.log(dist[b, k])) for k in own}
                pairs = [max(0, sim[n] - sim[s] + margin) for n in order[::-1][:kn] for s in order[:kp]]
                costs.append(np.mean(pairs))
                negent.append(float(dist[b, q] @ np.log(dist[b, q])))
            w = np.exp(negent) / np.exp(negent).sum()
            totals.append(float(w @ np.array(costs)))
    return np.mean(totals)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_losses_match_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    B, T, P, C = 2, 3, 6, 5
    attn = torch.randn(B, T * P, T * P, generator=g, dtype=torch.float64).mul(2).softmax(-1)
    z = torch.randn(B, T * P, C, generator=g, dtype=torch.float64)
    qpos = torch.tensor([4, 1, 3])
    sem = semantic_consistency_loss(attn, z, qpos, T, 2, 3, 0.9, 0.1)
    mot = motion_consistency_loss(attn, qpos, T, 2, 3, 1.0)
    a, zz = attn.numpy(), z.numpy()
    assert sem.item() == pytest.approx(_reference_semantic(a, zz, qpos.tolist(), T, 2, 3, 0.9, 0.1), rel=1e-9)
    assert mot.item() == pytest.approx(_reference_motion(a, qpos.tolist(), T, 2, 3, 1.0), rel=1e-9)


def test_gradients_flow_through_tokens_and_attention_only_where_expected():
    g = torch.Generator().manual_seed(0)
    T, P = 2, 4
    logits = torch.randn(1, T * P, T * P, generator=g, requires_grad=True)
    z = torch.randn(1, T * P, 3, generator=g, requires_grad=True)
    qpos = torch.tensor([1])
    semantic_consistency_loss(logits.softmax(-1), z, qpos, T, 1, 2, 0.9, 0.1).backward()
    assert logits.grad is None or logits.grad.abs().sum() == 0  # ranking only: no gradient to attention
    assert z.grad.abs().sum() > 0
    motion_consistency_loss(logits.softmax(-1), qpos, T, 1, 2, 1.0).backward()
    rows = logits.grad.abs().sum(-1)[0]
    assert rows[1] == 0 and rows[5] == 0  # query distributions are detached
    assert rows.sum() > 0  # the picked keys' distributions get gradient
