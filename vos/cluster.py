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

Numerics: every decision is that of the float64 distance. The clustering is a chain of hard
``d <= tau`` decisions, and the matrix-product form of the distance subtracts cross-entropies of
magnitude up to ``2 * ln(1 / PROB_EPS) ~ 46`` to obtain values near ``tau ~ 1``; in float32 that
cancellation leaves errors of 1e-5..1e-4 at K = 3000, enough to flip borderline pairs between
BLAS builds, float64 leaves ~1e-13. The cross terms are nevertheless computed by float32
products (about 2x faster) with a rigorous error bound; pairs within the bound of tau (or of the
best centroid, for the assignment) are recomputed in float64 (see ``docs/cluster.md``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable, NamedTuple

import numpy as np
import scipy.sparse
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
# Neighbour sets denser than this are summed by a dense product, sparser ones by a sparse one
# (at 1800 x 1800 the sparse product is ~4x faster at 0.4% density, slower above ~10%).
SPARSE_NEIGHBOURS_MAX_DENSITY = 1 / 16
# Rows whose distances the greedy grouping computes per matrix product (see _greedy_group): the
# first block has GREEDY_BLOCK_ROWS rows, every further block twice as many, up to the maximum.
GREEDY_BLOCK_ROWS = 64
GREEDY_MAX_BLOCK_ROWS = 256
# Unit roundoffs of float32 and float64 (round to nearest): the float32 distance pass bounds its
# error with them, see _close_pairs.
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24
FLOAT64_UNIT_ROUNDOFF = 2.0 ** -53
# Relative error of the float32 rows against the float64 ones: one rounding for float64 rows, two
# (reciprocal and product) for float32 attention scaled by its row sums (_window_distributions).
P32_ERROR = 2 * FLOAT32_UNIT_ROUNDOFF + FLOAT32_UNIT_ROUNDOFF ** 2 + 1e-15
# Absolute slack of that bound: the absolute error parts of the four float32 sums (4 x 2.1 u, see
# _float32_cross_error), the float64 additions of terms of size <= ~50 (entropies and
# cross-entropies of clamped logs) and float32 underflow of tiny probabilities (< 1e-13).
FLOAT32_ABS_SLACK = 9 * FLOAT32_UNIT_ROUNDOFF + 1e-12
# Relative error of torch's float32 log, assumed: measured within 1.03 u (tests check <= 2 u), and
# 8 u leaves room for other builds. The float32 logs of the distance pass are taken in float32.
FLOAT32_LOG_ERROR = 8 * FLOAT32_UNIT_ROUNDOFF
# If more than this share of a block's pairs lies within the float32 bound of tau, the whole
# block is computed in float64 (one product is then cheaper than gathering many pairs).
REPAIR_MAX_FRACTION = 0.05
# Elements (pairs x K) per batch of the float64 recomputation of borderline pairs.
REPAIR_BATCH_ELEMENTS = 2 ** 21
# Pruning with key groups (see _lower_bounds): the keys are split into this many groups, and pairs
# whose grouped distance (a certified lower bound of theirs) exceeds tau are never computed in full.
KEY_GROUPS = 128
# Pruning runs when there are at least this many keys per group (below, the dense products are cheap).
PRUNE_MIN_KEYS_PER_GROUP = 8
# If more than this share of a block's pairs survives the lower bound, the block takes the dense
# products (a sampled product per pair costs several times a dense product's share).
PRUNE_MAX_FRACTION = 0.2
# Rows whose lower bounds are computed first, to skip the full bound when it would prune too little.
PRUNE_PROBE_ROWS = 64
# Rows sampled to learn the key groups, and Lloyd iterations of their k-means.
KEY_GROUP_SAMPLE_ROWS = 256
KEY_GROUP_ITERATIONS = 4

# window_attention(t0, t1) -> attention of frames t0..t1-1, shape (t1 - t0, N, K)
WindowAttention = Callable[[int, int], torch.Tensor]


class ClusterResult(NamedTuple):
    """Output of :func:`cluster_streaming`."""

    labels: torch.Tensor  # T N, int64 cluster ids 0..C-1
    centroids: torch.Tensor  # C K, float64, L1-normalised; row c is the centroid of id c


class _Distributions(NamedTuple):
    """Rows of distributions with the terms every distance to them needs, computed once."""

    p: torch.Tensor  # M K
    log_p: torch.Tensor | None  # M K, _log(p); None on the float32 path (recomputed where needed)
    neg_entropy: torch.Tensor | None  # M, sum_k p log p; None on the float32 path (_neg_entropy)
    p32: torch.Tensor | None = None  # M K float32 copies for _close_pairs / _nearest (None: not needed)
    log_p32: torch.Tensor | None = None  # M K float32 log of p32 clamped
    neg_entropy32: torch.Tensor | None = None  # M float64 values of the float32 sums of p32 log_p32
    # key-grouped rows for the lower bound of _lower_bounds (None: no pruning)
    grouped32: torch.Tensor | None = None  # M G float32, group sums of p clamped to PROB_EPS
    log_grouped32: torch.Tensor | None = None  # M G float32
    grouped_neg_entropy: torch.Tensor | None = None  # M float64, sum_g A log A
    # rows given as attention and float64 row sums instead of p (see _window_distributions)
    raw: torch.Tensor | None = None  # M K, any float dtype; the rows are raw / row_sums
    row_sums: torch.Tensor | None = None  # M float64


def _log(p: torch.Tensor) -> torch.Tensor:
    """log of p clamped to PROB_EPS (a new tensor)."""
    return p.clamp_min(PROB_EPS).log_()


def _distributions(p: torch.Tensor, float32_copies: bool = False,
                   key_groups: torch.Tensor | None = None) -> _Distributions:
    """The rows p (M K) with their logs and entropies; ``float32_copies`` for :func:`_close_pairs`
    and :func:`_nearest`, ``key_groups`` (K int64 group of every key, from :func:`_key_groups`) for their
    pruning by :func:`_lower_bounds`."""
    if not float32_copies:
        log_p = _log(p)
        return _Distributions(p, log_p, torch.linalg.vecdot(p, log_p))  # M, without an M K temporary
    # everything the float32 distance pass needs is computed in float32 (errors bounded in
    # _float32_cross_error); the float64 logs and entropies are computed only for the few rows
    # that borderline pairs and fallbacks need (_float64_pair_distances, _pairwise_kl)
    return _float32_fields(torch.from_numpy(p.numpy().astype(np.float32)), key_groups)._replace(p=p)


def _float32_fields(p32: torch.Tensor, key_groups: torch.Tensor | None) -> _Distributions:
    """The float32 fields of :func:`_distributions` from float32 rows p32 (M K), rows not set."""
    clamped32 = p32.clamp_min(PROB_EPS)
    log_p32 = clamped32.log()
    # numpy's row dot is ~4x faster than torch's here; it sums in float32 too (same bound)
    neg_entropy32 = torch.from_numpy(np.einsum("ij,ij->i", p32.numpy(), log_p32.numpy())).double()
    if key_groups is None:
        return _Distributions(None, None, None, p32, log_p32, neg_entropy32)
    # group sums of the clamped rows (float32 product, error bounded in _lower_bounds), their
    # logs and entropies in float64 (M G: cheap), then rounded for the float32 products
    grouped = clamped32.new_zeros(clamped32.shape[0], int(key_groups.max()) + 1).index_add_(1, key_groups, clamped32)
    grouped = grouped.double()  # M G
    del clamped32
    log_grouped = grouped.log()
    return _Distributions(None, None, None, p32, log_p32, neg_entropy32, grouped.float(), log_grouped.float(),
                          torch.linalg.vecdot(grouped, log_grouped))


def _window_distributions(raw: torch.Tensor, row_sums: torch.Tensor, key_groups: torch.Tensor | None,
                          known: _Distributions | None = None) -> _Distributions:
    """The float32 fields of ``_distributions(raw.double() / row_sums[:, None], True, key_groups)``
    without the float64 rows, which :func:`_rows64` computes for the few rows that need them.

    ``raw`` (M K) is attention in any float dtype, ``row_sums`` (M) its float64 row sums. A float32
    row is scaled by the rounded reciprocal: within P32_ERROR of the float64 row, as the bounds of
    :func:`_float32_cross_error` and :func:`_lower_bounds` allow.
    ``known``: the per-row fields (entropies, key-group sums) of an earlier call on the same
    attention, which these computations reproduce exactly; only the M K maps are computed again.
    """
    if raw.dtype == torch.float64:
        p32 = (raw / row_sums[:, None]).float()
    else:
        p32 = raw.float() * row_sums.reciprocal().float()[:, None]
    if known is None:
        return _float32_fields(p32, key_groups)._replace(raw=raw, row_sums=row_sums)
    return known._replace(p32=p32, log_p32=p32.clamp_min(PROB_EPS).log_(), raw=raw, row_sums=row_sums)


def _rows64(dist: _Distributions, index=slice(None)) -> torch.Tensor:
    """The float64 rows ``index`` of ``dist``: p, or raw / row_sums for window distributions."""
    if dist.p is not None:
        return dist.p[index]
    return dist.raw[index].double() / dist.row_sums[index, None]


def _neg_entropy(dist: _Distributions) -> torch.Tensor:
    """M float64 ``sum_k p log p`` of every row (computed here on the float32 path)."""
    if dist.neg_entropy is not None:
        return dist.neg_entropy
    p = _rows64(dist)
    return torch.linalg.vecdot(p, _log(p))


def _key_groups(rows: torch.Tensor) -> torch.Tensor | None:
    """K int64 group (0..G-1, none empty) of every key for :func:`_lower_bounds`, learnt from rows (M K),
    or None when there are too few keys per group for pruning to pay.

    The lower bound of a pair is tight when, inside each group, the ratio of the two rows is the
    same for every key: keys whose log-attention columns differ by a constant over the rows. So
    the keys are grouped by k-means (Lloyd, deterministic initialisation) on their log columns,
    centred per key, over a sample of the rows. Any grouping gives a valid bound; this one only
    decides how much is pruned.
    """
    num_rows, num_keys = rows.shape
    num_groups = min(KEY_GROUPS, num_keys)
    if num_keys < PRUNE_MIN_KEYS_PER_GROUP * num_groups:
        return None
    sample = rows[torch.linspace(0, num_rows - 1, min(num_rows, KEY_GROUP_SAMPLE_ROWS)).long()]
    points = _log(sample).T.float()  # K S: log column of each key over the sampled rows
    points -= points.mean(1, keepdim=True)  # a constant factor on a column changes no ratio
    centres = points[torch.linspace(0, num_keys - 1, num_groups).long()]  # G S
    for _ in range(KEY_GROUP_ITERATIONS):
        label = torch.cdist(points, centres).argmin(1)  # K
        sums = torch.zeros_like(centres).index_add_(0, label, points)
        counts = torch.bincount(label, minlength=num_groups)
        filled = counts > 0  # an empty group keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return torch.unique(label, return_inverse=True)[1]  # ids of the non-empty groups only


def _take(dist: _Distributions, index) -> _Distributions:
    """The rows ``index`` (slice, index or mask) of every field."""
    return _Distributions(*(None if x is None else x[index] for x in dist))


def _pairwise_kl(a: _Distributions, b: _Distributions | None = None) -> torch.Tensor:
    """Na Nb symmetric KL ``sum a log a + sum b log b - a . log b - b . log a`` by matrix products.

    ``b=None`` means ``b = a``: one product instead of two, and an exactly symmetric result.
    """
    p_a = _rows64(a)
    log_a = _log(p_a) if a.log_p is None else a.log_p
    neg_entropy_a = torch.linalg.vecdot(p_a, log_a) if a.neg_entropy is None else a.neg_entropy
    if b is None:
        cross = p_a @ log_a.T  # Na Na: cross[i, j] = sum_k a_ik log a_jk = -CE(a_i, a_j)
        return (neg_entropy_a[:, None] + neg_entropy_a[None, :]) - (cross + cross.T)
    p_b = _rows64(b)
    log_b = _log(p_b) if b.log_p is None else b.log_p
    neg_cross_sum = p_a @ log_b.T + (p_b @ log_a.T).T  # Na Nb
    return (neg_entropy_a[:, None] + _neg_entropy(b)[None, :]) - neg_cross_sum


def _float32_cross_error(num_keys: int) -> float:
    """Factor r with |d32 - d64| <= r * S + FLOAT32_ABS_SLACK for every pair, where
    ``d32 = e_i + e_j - c_ij - c_ji`` is assembled in float64 from four float32 dot products of
    length K (``c_ij = sum_k p32_ik log32_jk``, ``e_i = c_ii``) and S = |e_i| + |e_j| + |c_ij| + |c_ji|.

    Every term ``p log q`` is <= 0, so each sum's absolute terms add up to its magnitude X (a
    cross-entropy or an entropy of clamped logs).
    * p32 is within rho = P32_ERROR of p (relative); log32 q is the float32 log (relative error
      <= L = FLOAT32_LOG_ERROR) of q32 clamped, itself within rho of q clamped, so log32 q is
      within L |log q| + 1.01 rho (1 + L) of log q. Summed over the terms: (1 + rho)(1 + L) - 1
      of X plus 1.01 rho (1 + rho)(1 + L) (the p sum to 1);
    * any float32 dot product of length K (any order, with or without FMA) is within
      gamma_K = K u / (1 - K u) of the sum of its absolute terms (Higham, Accuracy and Stability of
      Numerical Algorithms, eq. 3.5);
    * the float64 path is itself within gamma_K(u64) X of the exact value;
    * X <= (|x32| + 2.1 u) / (1 - r32) for the computed sum x32: r applies to the computed S, and
      the absolute parts (4 x 2.1 u, over 1 - r32) are within FLOAT32_ABS_SLACK.
    """
    u, u64, log_error = FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF, FLOAT32_LOG_ERROR
    if num_keys * u >= 0.25:
        return float("inf")  # no useful bound: every pair goes to float64
    gamma = num_keys * u / (1 - num_keys * u)
    r32 = ((1 + P32_ERROR) * (1 + log_error) - 1) * (1 + gamma) + gamma
    r64 = num_keys * u64 / (1 - num_keys * u64)
    return (r32 + r64) / (1 - r32)


def _float32_margin(cross_sum: torch.Tensor, entropies: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Bounds |d32 - d64| (see :func:`_float32_cross_error`) from ``cross_sum`` = c_ij + c_ji and
    ``entropies`` = e_i + e_j (float64, any shape; both <= 0). Overwrites ``cross_sum``."""
    factor = _float32_cross_error(num_keys)
    if math.isinf(factor):  # no bound (K >= 2^22): every pair is borderline (and 0 * inf would be nan)
        return torch.full_like(cross_sum, math.inf)
    return cross_sum.add_(entropies).abs_().mul_(factor).add_(FLOAT32_ABS_SLACK)


def _float32_distances(a: _Distributions, b: _Distributions | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Na Nb float64 distances from float32 sums, and Na Nb bounds on their distance to the
    float64 (:func:`_pairwise_kl`) ones. ``b=None`` means ``b = a`` (one product)."""
    b_ = a if b is None else b
    cross = (a.p32 @ b_.log_p32.T).double()  # Na Nb: c32_ij
    cross_sum = cross + (cross.T if b is None else (b.p32 @ a.log_p32.T).T.double())  # c_ij + c_ji
    del cross
    entropies = a.neg_entropy32[:, None] + b_.neg_entropy32[None, :]
    dist = entropies - cross_sum  # float64 additions
    return dist, _float32_margin(cross_sum, entropies, a.p32.shape[1])


def _float64_pair_distances(a: _Distributions, b: _Distributions, rows: torch.Tensor,
                            cols: torch.Tensor) -> torch.Tensor:
    """P float64 distances d(a_rows[p], b_cols[p]) of P pairs, term by term (batches of P' K)."""
    out = torch.empty(rows.numel(), dtype=torch.float64)
    batch = max(1, REPAIR_BATCH_ELEMENTS // a.p32.shape[1])
    for s in range(0, rows.numel(), batch):
        i, j = rows[s:s + batch], cols[s:s + batch]  # P'
        # x + y and e_i + e_j are commutative, so the pairs (i, j) and (j, i) get the same value
        a_i, b_j = _rows64(a, i), _rows64(b, j)  # P' K
        log_a_i, log_b_j = _log(a_i), _log(b_j)
        neg_cross_sum = (a_i * log_b_j).sum(-1) + (b_j * log_a_i).sum(-1)
        entropies = (torch.linalg.vecdot(a_i, log_a_i) if a.neg_entropy is None else a.neg_entropy[i]) + \
                    (torch.linalg.vecdot(b_j, log_b_j) if b.neg_entropy is None else b.neg_entropy[j])
        out[s:s + batch] = entropies - neg_cross_sum
    return out


def _sampled_float32_distances(a: _Distributions, b: _Distributions, rows: torch.Tensor, cols: torch.Tensor,
                               symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The :func:`_float32_distances` of P pairs only (``rows`` sorted, as ``nonzero`` gives them):
    P float64 distances and P bounds on their distance to the float64 ones.

    The cross terms are float32 dot products of length K like those of a dense product, so the
    same bound holds; ``torch.sparse.sampled_addmm`` computes just the pairs of a sparse pattern.
    ``symmetric``: a is b and the pairs hold (j, i) with every (i, j); then c_ji is c_ij of the
    pair (j, i), and one sampled product gives both.
    """
    shape = (a.p32.shape[0], b.p32.shape[0])
    row_starts = torch.zeros(shape[0] + 1, dtype=torch.int64)
    row_starts[1:] = torch.bincount(rows, minlength=shape[0]).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": sampled_addmm is what is used
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(row_starts, cols, torch.zeros(rows.numel()), shape, check_invariants=False)
    cross = torch.sparse.sampled_addmm(pattern, a.p32, b.log_p32.T, beta=0.0).values().double()  # c_ij
    if symmetric:  # sorted by (j, i), the pairs list the transposes of the pairs sorted by (i, j)
        cross_sum = cross + cross[(cols * shape[0] + rows).argsort()]
    else:
        cross_sum = cross + torch.sparse.sampled_addmm(pattern, a.log_p32, b.p32.T, beta=0.0).values().double()
    del cross
    entropies = a.neg_entropy32[rows] + b.neg_entropy32[cols]
    dist = entropies - cross_sum
    return dist, _float32_margin(cross_sum, entropies, a.p32.shape[1])


def _lower_bounds(a: _Distributions, b: _Distributions | None) -> torch.Tensor:
    """Na Nb float32: a certified lower bound of every float64 distance d(a_i, b_j).

    Key grouping can only lower the distance. With p^ = max(p, PROB_EPS), every term of
    ``d = sum_k (p_k - q_k)(log p^_k - log q^_k)`` is at least ``(p^_k - q^_k)(log p^_k - log q^_k)``
    (the log is monotone, and a clamped probability moved up by at most what the clamp added), and
    by the log-sum inequality the sum of these over a group of keys is at least the same
    expression of the group sums P^_g, Q^_g. So the symmetric KL of the key-grouped rows,
    ``e_i + e_j - c_ij - c_ji`` (G keys, ``e = sum_g P^ log P^``, ``c_ij = sum_g P^_i log P^_j``, all
    <= 0), bounds d from below at the cost of a product of length G instead of K. Errors:
    * the group sums are float32 sums of float32 rows (P32_ERROR), within theta = P32_ERROR + gamma_K (1 + u)
      of the exact ones (relative; K >= the largest group). That moves the grouped distance by at
      most theta (S + 4.1), S = |e_i| + |e_j| + |c_ij| + |c_ji|;
    * c_ij + c_ji come from float32 products: within r |c_ij + c_ji|, r = :func:`_float32_cross_error`
      of G (which also covers the rounding of the float64 logs);
    * the float64 distance is within gamma_K(u64) * (2 * 46) < 1e-10 of the exact one; the float32
      roundings and additions below are within 1e-4 (terms below ~200).
    The bound minus these is linear in the four sums: ``(1 + theta)(e_i + e_j) + (1 - r')(-c_ij - c_ji)
    - 4.1 theta - slack`` with r' = r + theta (1 + 2r), so two products with a bias give it.
    """
    b_ = a if b is None else b
    u, num_keys = FLOAT32_UNIT_ROUNDOFF, a.p32.shape[1]
    factor = _float32_cross_error(a.grouped32.shape[1])
    if num_keys * u >= 0.5 or math.isinf(factor):
        return torch.full((a.p32.shape[0], b_.p32.shape[0]), -math.inf)  # no useful bound: nothing is pruned
    theta = P32_ERROR + num_keys * u / (1 - num_keys * u) * (1 + u)
    cross_weight = 1 - factor - theta * (1 + 2 * factor)
    # (1 + theta) e - (4.1 theta + slack) / 2 per row, rounded to float32 (error < 1e-5 << slack)
    shift = 0.5 * (4.1 * theta + 1e-4)
    entropy_a = ((1 + theta) * a.grouped_neg_entropy - shift).float()
    if b is None:  # one product; c_ij + c_ji is then exactly symmetric, and so is the bound
        cross = a.grouped32 @ a.log_grouped32.T  # Na Na
        lower = cross + cross.T
        del cross
        return lower.mul_(-cross_weight).add_(entropy_a[:, None] + entropy_a[None, :])  # e_i + e_j = e_j + e_i
    entropy_b = ((1 + theta) * b.grouped_neg_entropy - shift).float()
    lower = torch.addmm(entropy_a[:, None] + entropy_b[None, :], a.grouped32, b.log_grouped32.T, alpha=-cross_weight)
    return torch.addmm(lower, a.log_grouped32, b.grouped32.T, alpha=-cross_weight)


def _sparse_close_pairs(a: _Distributions, b: _Distributions | None,
                        tau: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The pairs (i, j) with ``d(a_i, b_j) <= tau`` as two P int64 index tensors sorted by (i, j),
    found without the dense products; None if ``a`` has no key groups or if more than
    ``PRUNE_MAX_FRACTION`` of the pairs survive the lower bound (then the dense path is cheaper).

    Pairs whose certified lower bound (:func:`_lower_bounds`) exceeds tau are never computed; the
    others get the float32 distance of sampled products and its bound, and those within the bound
    of tau are recomputed in float64, as in the dense path. ``b=None`` means ``b = a``: the
    candidates are made symmetric, and one sampled product gives both cross terms of a pair.
    """
    if a.grouped32 is None:
        return None
    num_rows = a.p32.shape[0]
    if num_rows > 4 * PRUNE_PROBE_ROWS:  # few large clusters prune little: find out on a sample first
        probe = _take(a, torch.linspace(0, num_rows - 1, PRUNE_PROBE_ROWS).long())
        if (~(_lower_bounds(probe, a if b is None else b) > tau)).float().mean() > PRUNE_MAX_FRACTION:
            return None
    lower = _lower_bounds(a, b)
    candidate = ~(lower > tau)  # (a nan bound keeps the pair); symmetric for b=None (see _lower_bounds)
    del lower
    rows, cols = candidate.nonzero(as_tuple=True)
    if rows.numel() > PRUNE_MAX_FRACTION * candidate.numel():
        return None
    b_ = a if b is None else b
    dist, margin = _sampled_float32_distances(a, b_, rows, cols, symmetric=b is None)
    close = dist <= tau
    borderline = (dist - tau).abs_() <= margin
    close[borderline] = _float64_pair_distances(a, b_, rows[borderline], cols[borderline]) <= tau
    return rows[close], cols[close]


def _close_pairs(a: _Distributions, b: _Distributions | None, tau: float) -> torch.Tensor:
    """Na Nb bool ``d(a_i, b_j) <= tau``: the decisions of :func:`_pairwise_kl` at float32 cost.

    ``a`` and ``b`` need their float32 copies; ``b=None`` means ``b = a`` (one product). The cross
    terms come from float32 matrix products, which are about 2x faster than float64 ones. A pair
    whose float32 distance lies within the rigorous error bound of :func:`_float32_cross_error`
    around tau is recomputed in float64, term by term; every other pair provably lies on the same
    side of tau as its float64 distance. A block with too many such pairs is computed in float64.
    With key groups, most pairs are ruled out by a lower bound first (:func:`_sparse_close_pairs`).
    """
    pairs = _sparse_close_pairs(a, b, tau)
    if pairs is not None:
        close = torch.zeros(a.p32.shape[0], (a if b is None else b).p32.shape[0], dtype=torch.bool)
        close[pairs] = True
        return close
    dist, margin = _float32_distances(a, b)
    close = dist <= tau
    rows, cols = ((dist - tau).abs_() <= margin).nonzero(as_tuple=True)  # borderline pairs
    del dist, margin
    if rows.numel() > REPAIR_MAX_FRACTION * close.numel():
        return _pairwise_kl(a, b) <= tau
    close[rows, cols] = _float64_pair_distances(a, a if b is None else b, rows, cols) <= tau
    return close


def _nearest(a: _Distributions, b: _Distributions) -> torch.Tensor:
    """Na int64: index of the nearest row of ``b`` for every row of ``a``, lowest index on ties,
    as ``_pairwise_kl(a, b).argmin(1)`` but from float32 products.

    A row of ``b`` whose float32 distance minus its bound exceeds the best float32 distance plus
    its bound is provably farther in float64 too; rows of ``a`` left with more than one such
    candidate get the float64 distances of their candidates (at most ``REPAIR_MAX_FRACTION`` of
    all pairs, else everything is computed in float64).
    With key groups, each row first gets the distance (plus its bound) to the row of ``b`` with the
    smallest lower bound (:func:`_lower_bounds`); rows of ``b`` whose lower bound exceeds it are
    provably farther and never computed, the others by sampled products.
    """
    if a.grouped32 is not None:
        lower = _lower_bounds(a, b)  # Na Nb
        local = torch.arange(lower.shape[0])
        guess = lower.argmin(1)  # Na
        dist, margin = _sampled_float32_distances(a, b, local, guess)
        upper = ((dist + margin) * (1 + 1e-6)).float()  # rounded up: a float32 upper bound
        candidate = ~(lower > upper[:, None])  # the others are farther than the guess
        candidate[local, guess] = True
        del lower
        rows, cols = candidate.nonzero(as_tuple=True)
        if rows.numel() <= PRUNE_MAX_FRACTION * candidate.numel():
            dist, margin = _sampled_float32_distances(a, b, rows, cols)
            dense_dist = torch.full(candidate.shape, math.inf, dtype=dist.dtype)
            dense_margin = torch.zeros(candidate.shape, dtype=dist.dtype)
            dense_dist[rows, cols], dense_margin[rows, cols] = dist, margin
            return _certified_argmin(a, b, dense_dist, dense_margin)
    return _certified_argmin(a, b, *_float32_distances(a, b))


def _certified_argmin(a: _Distributions, b: _Distributions, dist: torch.Tensor,
                      margin: torch.Tensor) -> torch.Tensor:
    """Na int64 float64 argmin of each row from float32 distances ``dist`` (Na Nb; inf where a
    pair is provably not the nearest) and their bounds ``margin`` (see :func:`_nearest`)."""
    best = dist.argmin(1)  # Na
    local = torch.arange(dist.shape[0])
    candidate = (dist - margin) <= (dist + margin)[local, best][:, None]  # Na Nb
    unsure = candidate.sum(1) > 1  # Na: rows whose float32 winner is not certain
    rows, cols = candidate[unsure].nonzero(as_tuple=True)
    if rows.numel() > REPAIR_MAX_FRACTION * dist.numel():
        return _pairwise_kl(a, b).argmin(1)
    rows = local[unsure][rows]
    exact = torch.full_like(dist[unsure], float("inf"))  # U Nb; non-candidates are farther
    exact[candidate[unsure]] = _float64_pair_distances(a, b, rows, cols)
    best[unsure] = exact.argmin(1)
    return best


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


def _l1_normalise_(x: torch.Tensor) -> torch.Tensor:
    """Divide every row of the float64 matrix x by its sum, in place (numpy: ~2x torch's here)."""
    values = x.numpy()
    np.divide(values, np.einsum("ij->i", values)[:, None], out=values)
    return x


class _AveragedRows(NamedTuple):
    """Output of :func:`_neighbourhood_average`: each distinct average once, with its multiplicity."""

    rows: torch.Tensor  # S K, L1-normalised averages, in order of their first row
    counts: torch.Tensor  # S int64, how many rows have this average
    of_row: torch.Tensor  # M int64, row i's average is rows[of_row[i]]


def _neighbourhood_average(rows: torch.Tensor, tau: float, chunk_rows: int, key_groups: torch.Tensor | None = None,
                           dist: _Distributions | None = None) -> _AveragedRows:
    """rows: M K -> row i replaced by the L1-normalised mean of the rows j with d(i, j) <= tau.

    Distances are taken between the original rows, ``chunk_rows`` query rows at a time.
    The mean of distributions is already L1-normalised up to rounding; normalising the sum gives
    the same distribution. Rows with the same neighbour set (in the same chunk) get the very same
    average, which is returned once with its count: the greedy grouping then works on S <= M rows.
    ``dist``: the rows as distributions with float32 copies, if the caller has them.
    """
    num_rows = rows.shape[0]
    if dist is None:
        dist = _distributions(rows, float32_copies=True, key_groups=key_groups)
    averages, counts, of_row = [], [], torch.empty(num_rows, dtype=torch.int64)
    for r0 in range(0, num_rows, chunk_rows):
        r1 = min(r0 + chunk_rows, num_rows)
        # the whole window in one chunk: the self form needs one matrix product instead of two
        chunk = None if r1 - r0 == num_rows else _take(dist, slice(r0, r1))
        pairs = _sparse_close_pairs(dist, None, tau) if chunk is None else _sparse_close_pairs(chunk, dist, tau)
        # a row is its own neighbour even if rounding makes d(x, x) a hair above tau
        local = torch.arange(r1 - r0)
        if pairs is None:
            close = _close_pairs(dist, None, tau) if chunk is None else _close_pairs(chunk, dist, tau)
            close[local, local + r0] = True
            pairs = close.nonzero(as_tuple=True)  # (r1-r0) M, sorted
            del close
        else:  # few pairs: merging the self pairs by a sort is cheap
            keys = torch.unique(torch.cat([pairs[0] * num_rows + pairs[1], local * num_rows + local + r0]))
            pairs = keys // num_rows, keys % num_rows
        sets, set_of_row = _distinct_sets(*pairs, r1 - r0, num_rows)
        of_row[r0:r1] = set_of_row + sum(len(c) for c in counts)
        averages.append(_l1_normalise_(_sum_rows(sets, rows)))
        counts.append(torch.bincount(set_of_row, minlength=sets.shape[0]))
    return _AveragedRows(torch.cat(averages), torch.cat(counts), of_row)


def _distinct_sets(rows: torch.Tensor, cols: torch.Tensor, num_rows: int,
                   num_cols: int) -> tuple[scipy.sparse.csr_matrix, torch.Tensor]:
    """The set {j : (i, j) in pairs} of each row i (pairs sorted by (i, j)) -> (the distinct sets,
    in order of their first row, as an S num_cols 0/1 CSR matrix; num_rows int64 set of each row).

    Rows are grouped by (size, two random-weight sums of their members); every row is then
    checked member by member against the first row of its group, so a hash collision can only
    cost the exact (slower) grouping, never a wrong one.
    """
    sizes = torch.bincount(rows, minlength=num_rows)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])  # num_rows + 1
    hashes = torch.zeros(2, num_rows, dtype=torch.int64).index_add_(1, rows, _set_hash_weights(num_cols)[:, cols])
    _, group = torch.unique(torch.stack([sizes, *hashes], 1), dim=0, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), num_rows).scatter_reduce_(0, group, torch.arange(num_rows), "amin")
    leader = first[group]  # num_rows: first row with the same hash
    offset = torch.arange(rows.numel()) - starts[rows]  # position of each pair within its row
    if not torch.equal(cols, cols[starts[leader[rows]] + offset]):
        return _distinct_sets_exact(rows, cols, num_rows, num_cols)
    order = first.argsort()  # sets in order of their first row
    rank_of_group = torch.empty_like(order)
    rank_of_group[order] = torch.arange(order.numel())
    set_rows = first[order]
    set_sizes = sizes[set_rows]
    set_starts = torch.cat([set_sizes.new_zeros(1), set_sizes.cumsum(0)])
    take = starts[set_rows].repeat_interleave(set_sizes) + torch.arange(int(set_starts[-1])) - \
        set_starts[:-1].repeat_interleave(set_sizes)
    sets = scipy.sparse.csr_matrix((np.ones(take.numel()), cols[take].numpy(), set_starts.numpy()),
                                   shape=(order.numel(), num_cols))
    return sets, rank_of_group[group]


def _set_hash_weights(num_cols: int) -> torch.Tensor:
    """2 num_cols int64 random weights below 2^40: sums over up to 2^11 members stay below 2^51."""
    return torch.randint(0, 2 ** 40, (2, num_cols), generator=torch.Generator().manual_seed(0))


def _distinct_sets_exact(rows: torch.Tensor, cols: torch.Tensor, num_rows: int,
                         num_cols: int) -> tuple[scipy.sparse.csr_matrix, torch.Tensor]:
    """:func:`_distinct_sets` by hashing every row's members as bytes (one Python step per row)."""
    bounds = [0] + torch.bincount(rows, minlength=num_rows).cumsum(0).tolist()
    members = cols.numpy()
    index_of: dict[bytes, int] = {}  # a set's members (sorted) -> its index
    set_of_row, distinct, set_starts = [], [], [0]
    for i in range(num_rows):
        set_members = members[bounds[i]:bounds[i + 1]]
        index = index_of.setdefault(set_members.tobytes(), len(index_of))
        if index == len(distinct):  # a new set
            distinct.append(set_members)
            set_starts.append(set_starts[-1] + len(set_members))
        set_of_row.append(index)
    sets = scipy.sparse.csr_matrix((np.ones(set_starts[-1]), np.concatenate(distinct), set_starts),
                                   shape=(len(distinct), num_cols))
    return sets, torch.tensor(set_of_row, dtype=torch.int64)


def _sum_rows(sets: scipy.sparse.csr_matrix, rows: torch.Tensor) -> torch.Tensor:
    """S K float64: the sum of the rows (M K) of every set (S M 0/1); sparse sets by scipy's CSR
    product (about 2.5x faster than torch's at 0.4% density), dense ones by a dense product."""
    if sets.nnz <= SPARSE_NEIGHBOURS_MAX_DENSITY * sets.shape[0] * sets.shape[1]:
        return torch.from_numpy(sets @ rows.numpy())
    return torch.from_numpy(sets.toarray()).to(rows.dtype) @ rows


def _greedy_assign(dist: _Distributions, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """rows (M, as distributions with float32 copies) -> (group of every row M int64, first row of
    every group G int64), groups in order of their first row.

    Visiting rows in order, an unassigned row starts a group and absorbs every unassigned row
    within ``tau`` of it (itself included).

    Only a group's first row needs distances, so instead of the full M M matrix the distances
    of the next B unassigned rows to all unassigned rows are computed in one product (B R), then
    the block is walked row by row. With few large groups (the usual case) the first block of
    ``GREEDY_BLOCK_ROWS`` rows assigns nearly everything, a few percent of the full matrix. With
    many small groups B doubles per block, so there are O(log M) blocks: each block's many small
    element-wise ops pay a thread fork/join, which dominated on a loaded machine with B fixed.
    """
    num_rows = dist.p32.shape[0]
    pairs = _sparse_close_pairs(dist, None, tau)
    if pairs is not None:  # few close pairs (many small groups): walk their lists
        return _greedy_walk(*pairs, num_rows)
    group = torch.full((num_rows,), -1, dtype=torch.int64)
    leaders: list[int] = []
    row_of = torch.arange(num_rows)  # R: row behind each row of `dist` (a superset of the unassigned rows)
    free = torch.ones(num_rows, dtype=torch.bool)  # R: still unassigned
    block_rows = GREEDY_BLOCK_ROWS
    while (unassigned := free.nonzero()[:, 0]).numel():
        # drop assigned rows only once they are half of `dist`: gathering is then paid at most
        # once per row in total, while the products run on at most twice the unassigned rows
        if 2 * unassigned.numel() <= free.numel():
            dist, row_of, free = _take(dist, unassigned), row_of[unassigned], free[unassigned]
            unassigned = torch.arange(free.numel())
        starters = unassigned[:block_rows]  # B: the next rows to visit
        block_rows = min(2 * block_rows, max(GREEDY_MAX_BLOCK_ROWS, GREEDY_BLOCK_ROWS))
        close = _close_pairs(_take(dist, starters), dist, tau)  # B R
        # a row always joins its own group, whatever rounding gives d(x, x)
        close[torch.arange(starters.numel()), starters] = True
        for b, starter in enumerate(starters.tolist()):
            if free[starter]:
                members = close[b] & free
                group[row_of[members]] = len(leaders)
                leaders.append(int(row_of[starter]))
                free &= ~members
    return group, torch.tensor(leaders, dtype=torch.int64)


def _greedy_walk(rows: torch.Tensor, cols: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy grouping of :func:`_greedy_assign` from the close pairs (i, j) of all rows, sorted."""
    bounds = [0] + torch.bincount(rows, minlength=num_rows).cumsum(0).tolist()
    neighbours = cols.tolist()
    group, leaders = [-1] * num_rows, []
    for i in range(num_rows):
        if group[i] < 0:  # unassigned: leads a group and absorbs its unassigned neighbours
            group[i] = len(leaders)  # itself, whatever rounding gives d(x, x)
            for j in neighbours[bounds[i]:bounds[i + 1]]:
                if group[j] < 0:
                    group[j] = len(leaders)
            leaders.append(i)
    return torch.tensor(group, dtype=torch.int64), torch.tensor(leaders, dtype=torch.int64)


def _group_means(rows: torch.Tensor, group: torch.Tensor, num_groups: int,
                 counts: torch.Tensor | None = None) -> torch.Tensor:
    """L1-normalised mean of the rows (M K) of each group -> G K; row i counts ``counts[i]`` times."""
    members = rows if counts is None else rows * counts[:, None].to(rows.dtype)
    return _l1_normalise_(rows.new_zeros(num_groups, rows.shape[1]).index_add_(0, group, members))


def _greedy_group(rows: torch.Tensor, tau: float, counts: torch.Tensor | None = None,
                  key_groups: torch.Tensor | None = None) -> torch.Tensor:
    """rows: M K -> centroids G K, one per greedy group (:func:`_greedy_assign`), in order of each
    group's first row. A centroid is the L1-normalised mean of its members.

    ``counts`` (M): row i stands for counts[i] identical rows, visited where the first of them is.
    Identical rows are at distance exactly 0 (the spec's ``sum (a - b)(log a - log b)``), so they
    always share a group and the greedy walk over distinct rows gives the same groups.
    """
    group, leaders = _greedy_assign(_distributions(rows, True, key_groups), tau)
    return _group_means(rows, group, leaders.numel(), counts)


class _StreamingGreedy:
    """The greedy grouping of rows that arrive block by block, without holding all of them.

    In the greedy walk a row is absorbed by the first earlier group leader within ``tau``, or
    starts a group of its own: whether a row leads depends only on the rows before it. So each new
    block is compared with the leaders so far (joining the first within ``tau``), and its
    remaining rows are grouped among themselves by the same walk. Only the leaders and the sums of
    their groups are kept (G K), not every row fed: the window centroids of a whole video, which
    grow with T (and K with T), are never held at once.
    """

    def __init__(self, tau: float, key_groups: torch.Tensor | None = None):
        self.tau = tau
        self.key_groups = key_groups  # K int64 key groups, for pruning (see _key_groups)
        # one chunk per add() that started groups, in leader order (never concatenated while
        # streaming: that would copy every leader again for every window)
        self.leader_chunks: list[_Distributions] = []  # the first row of each group (p: Gc K)
        self.sum_chunks: list[torch.Tensor] = []  # Gc K, sum of each group's rows
        self.rows_fed = 0

    @property
    def num_groups(self) -> int:
        return sum(chunk.shape[0] for chunk in self.sum_chunks)

    def add(self, rows: torch.Tensor) -> None:
        """Feed the next rows (M K, in visiting order)."""
        self.rows_fed += rows.shape[0]
        orphans, orphan_dist = rows, _distributions(rows, True, self.key_groups)
        for leaders, sums in zip(self.leader_chunks, self.sum_chunks):  # earlier leaders come first
            if orphans.shape[0] == 0:
                return
            close = _close_pairs(orphan_dist, leaders, self.tau)  # M Gc
            joins = close.any(1)
            first = close.to(torch.uint8).argmax(1)  # the first leader of this chunk within tau
            sums.index_add_(0, first[joins], orphans[joins])
            orphans, orphan_dist = orphans[~joins], _take(orphan_dist, ~joins)
        if orphans.shape[0] == 0:
            return
        group, leaders = _greedy_assign(orphan_dist, self.tau)
        self.leader_chunks.append(_take(orphan_dist, leaders))
        self.sum_chunks.append(orphans.new_zeros(leaders.numel(), orphans.shape[1]).index_add_(0, group, orphans))

    def leaders(self) -> torch.Tensor:
        """G K: the first row of every group so far."""
        return torch.cat([chunk.p for chunk in self.leader_chunks])

    def centroids(self) -> torch.Tensor:
        """G K: the L1-normalised mean of every group so far."""
        return _l1_normalise_(torch.cat(self.sum_chunks))


def _merge_until_stable(centroids: torch.Tensor, tau: float, key_groups: torch.Tensor | None = None) -> torch.Tensor:
    """centroids: C K -> C' K, greedy grouping repeated until the number of centroids stops changing."""
    for _ in range(MAX_MERGE_ROUNDS):
        merged = _greedy_group(centroids, tau, key_groups=key_groups)
        if merged.shape[0] == centroids.shape[0]:
            break  # every group was a singleton: merged == centroids, further rounds change nothing
        centroids = merged
    return centroids


def _window_rows(window_attention: WindowAttention, t0: int, t1: int, patches_keys: tuple[int, int] | None,
                 row_sums: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fetch and check the attention of frames t0..t1-1 -> (((t1-t0)*N, K) attention as given,
    (t1-t0)*N float64 row sums, ((t1-t0)*N, K) float64 L1-normalised rows = attention / row sums).

    With ``row_sums`` (of an earlier call for the same window) the sums are not recomputed and the
    float64 rows are not built (None): :func:`_window_distributions` works without them.
    """
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
    low, high = torch.aminmax(attention)  # one pass; nan makes both comparisons below false
    if not (low >= 0 and high < float("inf")):
        for bad, what in ((~torch.isfinite(attention), "a non-finite value (nan/inf)"),
                          (attention < 0, "a negative value")):
            if bad.any():
                t, n, _ = torch.nonzero(bad)[0].tolist()
                raise VosError(f"{where}: patch {n} of frame {t0 + t} has {what}; attention maps must be "
                               f"finite and non-negative")
    attention = attention.detach().cpu().reshape(-1, num_keys)
    if row_sums is not None:
        return attention, row_sums, None
    # float64 copies by numpy (about 2x faster than torch's conversion here; numpy has no
    # bfloat16, whose float32 copy is exact); float -> float64 is exact, so the rows are those
    # of the attention the checks saw
    exact = attention.float() if attention.dtype == torch.bfloat16 else attention
    rows = torch.from_numpy(exact.numpy().astype(np.float64))
    sums = torch.from_numpy(np.einsum("ij->i", rows.numpy()))  # w*N, summed in float64
    if (sums <= 0).any():
        n = int(torch.nonzero(sums <= 0)[0])
        raise VosError(f"{where}: patch {n % num_patches} of frame {t0 + n // num_patches} has an all-zero "
                       f"attention map, which cannot be normalised to a distribution")
    np.divide(rows.numpy(), sums.numpy()[:, None], out=rows.numpy())
    return attention, sums, rows


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
    window's attention is held at a time, plus the (T, N) labels, per-row numbers for the assignment
    (T*N x ~130: row sums, entropies, key-group sums) and the centroids of the video so far (C K);
    the centroids of all windows are never held together.

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

    # first hierarchy: averaging + greedy grouping inside each window; its centroids feed the
    # first round of the next hierarchies at once (the same greedy walk, see _StreamingGreedy)
    patches_keys, known = None, []
    for t0, t1 in spans:
        attention, sums, rows = _window_rows(window_attention, t0, t1, patches_keys)  # (w*N) K
        if patches_keys is None:  # the keys are the same for every window: group them once
            patches_keys = (rows.shape[0] // (t1 - t0), rows.shape[1])
            key_groups = _key_groups(rows)
            first_round = _StreamingGreedy(tau, key_groups)
        dist = _window_distributions(attention, sums, key_groups)._replace(p=rows)
        # the row sums and per-row fields (M G at most) are kept for the assignment pass
        known.append(dist._replace(p=None, p32=None, log_p32=None, raw=None))
        averaged = _neighbourhood_average(rows, tau, chunk_rows, key_groups, dist)
        del dist
        first_round.add(_greedy_group(averaged.rows, tau, averaged.counts, key_groups))

    # next hierarchies: further rounds until the number of centroids stops changing
    if first_round.num_groups == first_round.rows_fed:
        centroids = first_round.leaders()  # nothing merged: the window centroids as they are
    else:
        centroids = _merge_until_stable(first_round.centroids(), tau, key_groups)  # C K

    # assignment of the original rows; argmin breaks ties towards the lowest centroid index
    labels = torch.empty(num_frames, patches_keys[0], dtype=torch.int64)  # T N
    centroid_dist = _distributions(centroids, True, key_groups)
    for (t0, t1), fields in zip(spans, known):
        attention, sums, _ = _window_rows(window_attention, t0, t1, patches_keys, fields.row_sums)
        rows = _window_distributions(attention, sums, key_groups, fields)
        labels[t0:t1] = _nearest(rows, centroid_dist).view(t1 - t0, -1)

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
