"""Evaluation metrics as small pure functions over arrays (percentages, as papers report them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of rows whose label is among the k largest logits. logits (N, C), labels (N,).
    With fewer than k classes every row counts as a hit."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hits.double().mean().item()


def video_level_accuracy(clip_logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The 10-clip test protocol: clip_logits (V, n, C) of n clips per video, labels (V,).

    Video level: logits (not probabilities) averaged over a video's clips, top-1 and top-5.
    Clip level: every clip scored on its own, top-1.
    """
    video_logits = clip_logits.mean(dim=1)                              # V C
    n = clip_logits.shape[1]
    return {"video_top1": topk_accuracy(video_logits, labels, 1),
            "video_top5": topk_accuracy(video_logits, labels, 5),
            "clip_top1": topk_accuracy(clip_logits.flatten(0, 1), labels.repeat_interleave(n), 1)}


def retrieval_recall(query: torch.Tensor, query_labels: torch.Tensor, gallery: torch.Tensor,
                     gallery_labels: torch.Tensor, ks=(1, 5, 10, 20, 50)) -> dict[str, float]:
    """R@k: percentage of queries with a same-class item among their k nearest gallery items.

    query (Q, D), gallery (G, D): each set is centred by its own mean, L2-normalised, and compared by
    cosine similarity (FAME's main_retrieve.py). k larger than the gallery counts the whole gallery.
    """
    query = F.normalize(query - query.mean(dim=0, keepdim=True), dim=1)
    gallery = F.normalize(gallery - gallery.mean(dim=0, keepdim=True), dim=1)
    similarity = query @ gallery.T                                        # Q G
    ranked = similarity.argsort(dim=1, descending=True)                   # Q G, nearest first
    same = gallery_labels[ranked] == query_labels[:, None]                # Q G
    return {f"R@{k}": 100.0 * same[:, :k].any(dim=1).double().mean().item() for k in ks}
