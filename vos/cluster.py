"""Hierarchical clustering of per-patch attention maps into object clusters.

Every query patch of every frame has an attention map: a distribution over K key patches (the
patches of the key frames). Patches whose maps are close in symmetric KL divergence belong to the
same object. The clustering runs in three stages (see ``docs/cluster.md``):

1. first hierarchy, inside temporal windows of ``window`` frames: neighbourhood averaging of the
   rows (each row becomes the mean of the rows within ``tau`` of it), then greedy grouping of the
   averaged rows; each group's mean is a centroid;
2. next hierarchies: greedy grouping of all window centroids of the video, repeated on the
   resulting centroids until their number stops changing;
3. assignment: every patch goes to its nearest centroid; unused centroids are dropped and ids are
   renumbered 0..C-1 in centroid order.

Numerics: every distance is computed in float64. The clustering is a chain of hard ``d <= tau``
decisions, and the matrix-product form of the distance subtracts cross-entropies of magnitude up
to ``2 * ln(1 / PROB_EPS) ~ 46`` to obtain values near ``tau ~ 1``; in float32 that cancellation
leaves errors of 1e-5..1e-4 at K = 3000, enough to flip borderline pairs between BLAS builds.
float64 leaves ~1e-13 at about 2x the cost of the matrix products (see ``docs/cluster.md``).
"""

from __future__ import annotations

import numbers
from typing import Callable, NamedTuple

import torch

from vos.errors import VosError

# Probabilities are clamped to this before the log, so that maps with disjoint supports have a
# finite distance (at most about 2 * ln(1e10) ~ 46 instead of inf, and never inf - inf = nan).
PROB_EPS = 1e-10
# Rows per chunk of the neighbourhood averaging: bounds the chunk x rows distance matrix.
NEIGHBOUR_CHUNK_ROWS = 10_000
# Upper bound on the rounds of the next hierarchies (each round that changes anything removes at
# least one centroid, so this only matters for more than 10,000 window centroids).
MAX_MERGE_ROUNDS = 10_000
# Rows whose distances the greedy grouping computes per matrix product (see _greedy_group).
GREEDY_BLOCK_ROWS = 64

# window_attention(t0, t1) -> attention of frames t0..t1-1, shape (t1 - t0, N, K)
WindowAttention = Callable[[int, int], torch.Tensor]


class ClusterResult(NamedTuple):
    """Output of :func:`cluster_streaming`."""

    labels: torch.Tensor  # T N, int64 cluster ids 0..C-1
    centroids: torch.Tensor  # C K, float64, L1-normalised; row c is the centroid of id c


class _Distributions(NamedTuple):
    """Rows of distributions with the terms every distance to them needs, computed once."""

    p: torch.Tensor  # M K
    log_p: torch.Tensor  # M K, log of p clamped to PROB_EPS
    neg_entropy: torch.Tensor  # M, sum_k p log p


def _distributions(p: torch.Tensor) -> _Distributions:
    log_p = p.clamp_min(PROB_EPS).log()
    return _Distributions(p, log_p, (p * log_p).sum(-1))


def _pairwise_kl(a: _Distributions, b: _Distributions | None = None) -> torch.Tensor:
    """Na Nb symmetric KL ``sum a log a + sum b log b - a . log b - b . log a`` by matrix products.

    ``b=None`` means ``b = a``: one product instead of two, and an exactly symmetric result.
    """
    if b is None:
        cross = a.p @ a.log_p.T  # Na Na: cross[i, j] = sum_k a_ik log a_jk = -CE(a_i, a_j)
        return (a.neg_entropy[:, None] + a.neg_entropy[None, :]) - (cross + cross.T)
    neg_cross_sum = a.p @ b.log_p.T + (b.p @ a.log_p.T).T  # Na Nb
    return (a.neg_entropy[:, None] + b.neg_entropy[None, :]) - neg_cross_sum


def symmetric_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL divergence ``KL(a_i||b_j) + KL(b_j||a_i)`` between all rows of ``a`` and ``b``.

    ``a``: Na K and ``b``: Nb K hold distributions in their rows (not re-normalised here).
    Returns Na Nb in the promoted floating dtype of the inputs. Uses cross-entropy minus entropy
    with matrix products, ``d = sum a log a + sum b log b - a . log b - b . log a``, with
    probabilities clamped to ``PROB_EPS`` inside the logs. ``symmetric_kl(x, x)`` (the same tensor
    object) needs one matrix product instead of two and is exactly symmetric.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise VosError(f"symmetric_kl: expected two (rows, K) matrices with the same K, "
                       f"got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    dist_a = _distributions(a.to(dtype))
    return _pairwise_kl(dist_a, None if b is a else _distributions(b.to(dtype)))


def _l1_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(-1, keepdim=True)


def _neighbourhood_average(rows: torch.Tensor, tau: float, chunk_rows: int) -> torch.Tensor:
    """rows: M K -> M K, row i replaced by the L1-normalised mean of the rows j with d(i, j) <= tau.

    Distances are taken between the original rows, ``chunk_rows`` query rows at a time.
    The mean of distributions is already L1-normalised up to rounding; normalising the sum gives
    the same distribution.
    """
    num_rows = rows.shape[0]
    dist = _distributions(rows)
    averaged = torch.empty_like(rows)
    for r0 in range(0, num_rows, chunk_rows):
        r1 = min(r0 + chunk_rows, num_rows)
        # the whole window in one chunk: the self form needs one matrix product instead of two
        chunk = None if r1 - r0 == num_rows else _Distributions(*(x[r0:r1] for x in dist))
        close = (_pairwise_kl(dist) if chunk is None else _pairwise_kl(chunk, dist)) <= tau  # (r1-r0) M
        local = torch.arange(r1 - r0)
        # a row is its own neighbour even if rounding makes d(x, x) a hair above tau
        close[local, local + r0] = True
        averaged[r0:r1] = _l1_normalise(close.to(rows.dtype) @ rows)
    return averaged


def _greedy_group(rows: torch.Tensor, tau: float) -> torch.Tensor:
    """rows: M K -> centroids G K, one per greedy group, in order of each group's first row.

    Visiting rows in order, an unassigned row starts a group and absorbs every unassigned row
    within ``tau`` of it (itself included). A centroid is the L1-normalised mean of its members.

    Only a group's first row needs distances, so instead of the full M M matrix the distances
    of the next ``GREEDY_BLOCK_ROWS`` unassigned rows to all unassigned rows are computed in one
    product (B R), then the block is walked row by row. With few large groups (the usual case)
    this costs a few percent of the full matrix; with only singletons about half of it.
    """
    dist = _distributions(rows)
    group = torch.full((rows.shape[0],), -1, dtype=torch.int64)
    num_groups = 0
    unassigned = torch.arange(rows.shape[0])  # R, in visiting order
    while unassigned.numel():
        starters = unassigned[:GREEDY_BLOCK_ROWS]  # B: the next rows to visit
        close = _pairwise_kl(_Distributions(*(x[starters] for x in dist)),
                             _Distributions(*(x[unassigned] for x in dist))) <= tau  # B R
        local = torch.arange(starters.numel())
        close[local, local] = True  # a row always joins its own group, whatever rounding gives d(x, x)
        free = torch.ones(unassigned.numel(), dtype=torch.bool)  # R
        for b in range(starters.numel()):
            if free[b]:
                members = close[b] & free
                group[unassigned[members]] = num_groups
                num_groups += 1
                free &= ~members
        unassigned = unassigned[free]
    sums = rows.new_zeros(num_groups, rows.shape[1]).index_add_(0, group, rows)
    return _l1_normalise(sums)


def _merge_until_stable(centroids: torch.Tensor, tau: float) -> torch.Tensor:
    """centroids: C K -> C' K, greedy grouping repeated until the number of centroids stops changing."""
    for _ in range(MAX_MERGE_ROUNDS):
        merged = _greedy_group(centroids, tau)
        if merged.shape[0] == centroids.shape[0]:
            break  # every group was a singleton: merged == centroids, further rounds change nothing
        centroids = merged
    return centroids


def _window_rows(window_attention: WindowAttention, t0: int, t1: int,
                 patches_keys: tuple[int, int] | None) -> torch.Tensor:
    """Fetch and check the attention of frames t0..t1-1 -> ((t1-t0)*N, K) float64 L1-normalised rows."""
    attention = window_attention(t0, t1)
    where = f"attention of frames {t0}..{t1 - 1}"
    if not isinstance(attention, torch.Tensor) or not attention.is_floating_point():
        kind = attention.dtype if isinstance(attention, torch.Tensor) else type(attention).__name__
        raise VosError(f"{where}: expected a float tensor, got {kind}; pass attention probabilities")
    if attention.ndim != 3 or attention.shape[0] != t1 - t0:
        raise VosError(f"{where}: expected shape ({t1 - t0}, patches, keys), got {tuple(attention.shape)}")
    num_patches, num_keys = attention.shape[1:]
    if num_patches == 0 or num_keys == 0:
        raise VosError(f"{where}: has {num_patches} patches and {num_keys} keys per patch; both must be "
                       f"at least 1 (K = 0 means no key frame: use more frames or a smaller key-frame ratio)")
    if patches_keys is not None and (num_patches, num_keys) != patches_keys:
        raise VosError(f"{where}: has (patches, keys) = {(num_patches, num_keys)} but earlier frames have "
                       f"{patches_keys}; every frame needs the same patches and keys")
    attention = attention.to(torch.float64)
    for bad, what in ((~torch.isfinite(attention), "a non-finite value (nan/inf)"),
                      (attention < 0, "a negative value")):
        if bad.any():
            t, n, _ = torch.nonzero(bad)[0].tolist()
            raise VosError(f"{where}: patch {n} of frame {t0 + t} has {what}; attention maps must be "
                           f"finite and non-negative")
    sums = attention.sum(-1)  # w N
    if (sums <= 0).any():
        t, n = torch.nonzero(sums <= 0)[0].tolist()
        raise VosError(f"{where}: patch {n} of frame {t0 + t} has an all-zero attention map, which "
                       f"cannot be normalised to a distribution")
    return (attention / sums[..., None]).reshape(-1, num_keys)


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise VosError(f"{name} must be an integer >= 1, got {value!r}")


@torch.no_grad()  # clustering is not differentiable; never build a graph over the attention
def cluster_streaming(window_attention: WindowAttention, num_frames: int, tau: float = 1.0,
                      window: int = 3, *, chunk_rows: int = NEIGHBOUR_CHUNK_ROWS) -> ClusterResult:
    """Cluster the attention maps of a video fetched one temporal window at a time.

    ``window_attention(t0, t1)`` returns the (t1-t0, N, K) attention of frames t0..t1-1 (rows
    non-negative, L1-normalised here). It is called for the windows (0, w), (w, 2w), ..., (.., T)
    in order (the last window may be shorter), once for the first hierarchy and once more for the
    assignment: 2 * ceil(T / window) calls, which a caller can count to show progress. Only one
    window's attention and the centroids are held at a time, so memory grows with T only through
    the (T, N) labels.

    ``tau``: distance threshold (``d <= tau`` joins); ``window``: frames per first-hierarchy
    window; ``chunk_rows``: rows per chunk of the neighbourhood averaging (bounds its memory).
    Returns labels (T N int64, ids 0..C-1) and centroids (C K float64; centroid c of id c).
    """
    _check_positive_int(num_frames, "num_frames (number of frames)")
    _check_positive_int(window, "window (frames per clustering window)")
    _check_positive_int(chunk_rows, "chunk_rows")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (0 < tau < float("inf")):
        raise VosError(f"tau (clustering distance threshold) must be a finite number > 0, got {tau!r}")
    tau = float(tau)
    spans = [(t0, min(t0 + window, num_frames)) for t0 in range(0, num_frames, window)]

    # first hierarchy: averaging + greedy grouping inside each window
    window_centroids = []
    patches_keys = None
    for t0, t1 in spans:
        rows = _window_rows(window_attention, t0, t1, patches_keys)  # (w*N) K
        patches_keys = (rows.shape[0] // (t1 - t0), rows.shape[1])
        window_centroids.append(_greedy_group(_neighbourhood_average(rows, tau, chunk_rows), tau))

    # next hierarchies: over all window centroids of the video
    centroids = _merge_until_stable(torch.cat(window_centroids), tau)  # C K

    # assignment of the original rows; argmin breaks ties towards the lowest centroid index
    labels = torch.empty(num_frames, patches_keys[0], dtype=torch.int64)  # T N
    for t0, t1 in spans:
        rows = _window_rows(window_attention, t0, t1, patches_keys)
        labels[t0:t1] = symmetric_kl(rows, centroids).argmin(dim=1).view(t1 - t0, -1)

    # drop centroids without patches; sorted unique ids renumber them in centroid order
    used, labels = torch.unique(labels, sorted=True, return_inverse=True)
    return ClusterResult(labels=labels, centroids=centroids[used])


def hierarchical_cluster(attention: torch.Tensor, tau: float = 1.0, window: int = 3) -> torch.Tensor:
    """Cluster attention maps ``attention`` (T N K, float) into labels (T N int64, ids 0..C-1).

    Same algorithm and code as :func:`cluster_streaming`, with the windows sliced from the tensor.
    """
    if not isinstance(attention, torch.Tensor) or attention.ndim != 3:
        shape = tuple(attention.shape) if isinstance(attention, torch.Tensor) else type(attention).__name__
        raise VosError(f"attention must be a (frames, patches, keys) tensor, got {shape}")
    if attention.shape[0] == 0:
        raise VosError("attention has 0 frames; need at least one frame to cluster")
    return cluster_streaming(lambda t0, t1: attention[t0:t1], attention.shape[0], tau, window).labels
