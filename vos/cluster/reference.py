"""The clustering algorithm as a reader meets it: plain torch, any device, float64 decisions.

This is the specification that :mod:`vos.cluster.fast` (the CPU fast path) computes, and the oracle
of its tests. It needs no numpy or scipy, so it runs where the attention is:
:func:`vos.cluster.cluster_streaming` runs it for attention on a GPU. Every function takes and
returns torch tensors on one device.

Notation: an attention map is a row of K probabilities (over the key patches); ``d(a, b)`` is the
symmetric KL divergence with probabilities clamped to ``PROB_EPS`` inside the logs; two rows are
*close* when ``d <= tau`` (inclusive), and every row is close to itself.

1. first hierarchy, per window of ``window`` frames (M = window * N rows):
   a. neighbourhood averaging: every row becomes the normalised mean of the rows close to it;
   b. greedy grouping of the averaged rows: the first row not yet grouped opens a group, which
      takes every ungrouped row close to it (the opener included); the group's centroid is the
      normalised mean of its members;
2. next hierarchies: the greedy grouping of all window centroids, repeated on its own centroids
   until their number stops changing;
3. assignment: every original row goes to its nearest centroid (the lowest index on ties); unused
   centroids are dropped and the ids renumbered 0..C-1 in centroid order.
"""

from __future__ import annotations

from typing import Callable

import torch

# Probabilities are clamped to this before the log, so that maps with disjoint supports have a
# finite distance (at most about 2 * ln(1e10) ~ 46 instead of inf, and never inf - inf = nan).
PROB_EPS = 1e-10
# Rounds of the next hierarchies at most: a round that changes anything removes a centroid.
MAX_MERGE_ROUNDS = 10_000


def normalise(rows: torch.Tensor) -> torch.Tensor:
    """Rows divided by their sums (M K)."""
    return rows / rows.sum(dim=-1, keepdim=True)


def symmetric_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d[i, j] = sum_k (a_ik - b_jk) (log a_ik - log b_jk), logs of values clamped to PROB_EPS.

    a: Na K, b: Nb K -> Na Nb, written as entropies and cross terms (two matrix products).
    """
    log_a, log_b = a.clamp_min(PROB_EPS).log(), b.clamp_min(PROB_EPS).log()
    neg_entropy_a = (a * log_a).sum(-1)  # Na
    neg_entropy_b = (b * log_b).sum(-1)  # Nb
    return neg_entropy_a[:, None] + neg_entropy_b[None, :] - a @ log_b.T - log_a @ b.T


def close(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Na Nb bool: d(a_i, b_j) <= tau."""
    return symmetric_kl(a, b) <= tau


def neighbourhood_average(rows: torch.Tensor, tau: float) -> torch.Tensor:
    """M K -> M K: row i becomes the normalised mean of the rows close to it (itself included)."""
    neighbours = close(rows, rows, tau)
    neighbours.fill_diagonal_(True)  # rounding may put d(x, x) a hair above a tiny tau
    return normalise(neighbours.to(rows.dtype) @ rows)  # a sum normalised is the mean normalised


def greedy_group(rows: torch.Tensor, tau: float) -> torch.Tensor:
    """M K -> G K centroids of the greedy grouping, in the order their groups were opened."""
    ungrouped = torch.ones(rows.shape[0], dtype=torch.bool, device=rows.device)
    centroids = []
    while ungrouped.any():
        opener = int(ungrouped.nonzero()[0])  # the first row not yet grouped
        members = ungrouped & close(rows[opener:opener + 1], rows, tau)[0]
        members[opener] = True
        centroids.append(normalise(rows[members].mean(dim=0)))
        ungrouped &= ~members
    return torch.stack(centroids)


def merge_until_stable(centroids: torch.Tensor, tau: float) -> torch.Tensor:
    """Greedy grouping of the centroids, repeated until a round merges nothing."""
    for _ in range(MAX_MERGE_ROUNDS):
        merged = greedy_group(centroids, tau)
        if merged.shape[0] == centroids.shape[0]:
            return centroids
        centroids = merged
    return centroids


def cluster_windows(window_attention: Callable[[int, int], torch.Tensor], num_frames: int, tau: float = 1.0,
                    window: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the attention of a video fetched per window: ``window_attention(t0, t1)`` gives the
    (t1 - t0, N, K) maps of frames t0..t1-1 on any device, called twice per window (clustering,
    then assignment). Returns labels (T N int64, ids 0..C-1) and centroids (C K float64), on the
    attention's device."""
    spans = [(t0, min(t0 + window, num_frames)) for t0 in range(0, num_frames, window)]

    def rows_of(t0: int, t1: int) -> torch.Tensor:
        attention = window_attention(t0, t1)  # w N K
        return normalise(attention.reshape(-1, attention.shape[-1]).double())  # (w N) K

    window_centroids = [greedy_group(neighbourhood_average(rows_of(*span), tau), tau) for span in spans]
    centroids = merge_until_stable(torch.cat(window_centroids), tau)  # C K

    nearest = [symmetric_kl(rows_of(t0, t1), centroids).argmin(dim=1).view(t1 - t0, -1) for t0, t1 in spans]
    used, labels = torch.unique(torch.cat(nearest), sorted=True, return_inverse=True)  # T N
    return labels, centroids[used]


def hierarchical_cluster(attention: torch.Tensor, tau: float = 1.0, window: int = 3) -> torch.Tensor:
    """attention: T N K (any float dtype, any device) -> labels T N int64 (ids 0..C-1)."""
    return cluster_windows(lambda t0, t1: attention[t0:t1], attention.shape[0], tau, window)[0]
