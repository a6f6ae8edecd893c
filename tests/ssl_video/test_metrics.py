"""Video-level accuracy and retrieval recall against hand-computed values."""

import numpy as np
import pytest
import torch

from ssl_video.metrics import retrieval_recall, topk_accuracy, video_level_accuracy


def test_video_level_averages_logits_not_votes():
    # video 0 (label 0): two clips say class 1 weakly, one says class 0 strongly -> mean picks 0
    # video 1 (label 2): every clip says 2
    clip_logits = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [5.0, 0.0, 0.0]],
                                [[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [1.0, 0.0, 3.0]]])
    res = video_level_accuracy(clip_logits, torch.tensor([0, 2]))
    assert res["video_top1"] == 100.0
    assert res["clip_top1"] == pytest.approx(100.0 * 4 / 6)
    assert res["video_top5"] == 100.0  # 3 classes < 5: every video is a top-5 hit


def test_topk_accuracy_hand_values():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    labels = torch.tensor([2, 0, 0, 1])
    assert topk_accuracy(logits, labels, 1) == 25.0   # only row 1
    assert topk_accuracy(logits, labels, 2) == 50.0   # rows 0, 1 (row 3 tie 0.3/0.3: index 0 first)


def test_retrieval_recall_matches_brute_force():
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(7, 5)) + 2.0, rng.normal(size=(11, 5)) - 1.0
    ql, gl = rng.integers(0, 3, 7), rng.integers(0, 3, 11)
    qc = q - q.mean(0)
    gc = g - g.mean(0)
    sim = (qc / np.linalg.norm(qc, axis=1, keepdims=True)) @ (gc / np.linalg.norm(gc, axis=1, keepdims=True)).T
    expected = {}
    for k in (1, 3, 20):
        hits = [gl[np.argsort(-sim[i])[:k]].tolist().count(ql[i]) > 0 for i in range(7)]
        expected[f"R@{k}"] = 100.0 * np.mean(hits)
    got = retrieval_recall(torch.tensor(q), torch.tensor(ql), torch.tensor(g), torch.tensor(gl), ks=(1, 3, 20))
    assert got == pytest.approx(expected)
    assert got["R@20"] == 100.0 * np.mean([l in gl for l in ql])  # k > gallery: whole gallery


def test_retrieval_centring_removes_a_shared_offset():
    # queries and gallery differ by a large constant offset; after centring, each query's nearest
    # gallery item is its own counterpart
    base = torch.eye(4) * 3 + torch.randn(4, 4, generator=torch.Generator().manual_seed(0)) * 0.1
    labels = torch.arange(4)
    res = retrieval_recall(base + 100.0, labels, base - 50.0, labels, ks=(1,))
    assert res["R@1"] == 100.0
