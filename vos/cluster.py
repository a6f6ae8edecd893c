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
# Absolute slack of that bound: the float64 additions of terms of size <= ~50 (entropies and
# cross-entropies of clamped logs) and float32 underflow of tiny probabilities, all < 1e-13.
DISTANCE_ABS_SLACK = 1e-12
# If more than this share of a block's pairs lies within the float32 bound of tau, the whole
# block is computed in float64 (one product is then cheaper than gathering many pairs).
REPAIR_MAX_FRACTION = 0.05
# Elements (pairs x K) per batch of the float64 recomputation of borderline pairs.
REPAIR_BATCH_ELEMENTS = 2 ** 21

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
    neg_entropy: torch.Tensor  # M, sum_k p log p
    p32: torch.Tensor | None = None  # M K float32 copies for _close_pairs / _nearest (None: not needed)
    log_p32: torch.Tensor | None = None  # M K


def _log(p: torch.Tensor) -> torch.Tensor:
    """log of p clamped to PROB_EPS (a new tensor)."""
    return p.clamp_min(PROB_EPS).log_()


def _distributions(p: torch.Tensor, float32_copies: bool = False) -> _Distributions:
    log_p = _log(p)
    neg_entropy = torch.linalg.vecdot(p, log_p)  # M, without an M K temporary
    if not float32_copies:
        return _Distributions(p, log_p, neg_entropy)
    # logs taken in float64 and then rounded: each float32 copy is within one roundoff of the
    # value. The float64 logs are not kept: only borderline pairs and fallbacks need them, and
    # for the next hierarchies (C x K with C and K growing with T) they would be the largest array.
    return _Distributions(p, None, neg_entropy, p.float(), log_p.float())


def _take(dist: _Distributions, index) -> _Distributions:
    """The rows ``index`` (slice, index or mask) of every field."""
    return _Distributions(*(None if x is None else x[index] for x in dist))


def _pairwise_kl(a: _Distributions, b: _Distributions | None = None) -> torch.Tensor:
    """Na Nb symmetric KL ``sum a log a + sum b log b - a . log b - b . log a`` by matrix products.

    ``b=None`` means ``b = a``: one product instead of two, and an exactly symmetric result.
    """
    log_a = _log(a.p) if a.log_p is None else a.log_p
    if b is None:
        cross = a.p @ log_a.T  # Na Na: cross[i, j] = sum_k a_ik log a_jk = -CE(a_i, a_j)
        return (a.neg_entropy[:, None] + a.neg_entropy[None, :]) - (cross + cross.T)
    log_b = _log(b.p) if b.log_p is None else b.log_p
    neg_cross_sum = a.p @ log_b.T + (b.p @ log_a.T).T  # Na Nb
    return (a.neg_entropy[:, None] + b.neg_entropy[None, :]) - neg_cross_sum


def _float32_cross_error(num_keys: int) -> float:
    """Factor r with |d32 - d64| <= r * |c32_ij + c32_ji| + DISTANCE_ABS_SLACK for every pair.

    c32_ij is the float32 product ``sum_k a32_ik log_b32_jk``. Every term has the sign of
    ``a * log b <= 0``, so ``sum_k |a_ik log b_jk| = CE(a_i, b_j)`` and ``|c32_ij| = -c32_ij``.
    * rounding the inputs to float32 changes each term by at most (2u + u^2) of itself;
    * any float32 dot product of length K (any order, with or without FMA) is within
      gamma_K = K u / (1 - K u) of the sum of the absolute terms (Higham, Accuracy and Stability
      of Numerical Algorithms, eq. 3.5), that is gamma_K (1 + u)^2 CE;
    * the float64 path is itself within gamma_K(u64) CE of the exact value;
    * CE <= |c32| / (1 - r32), since |c32| >= (1 - r32) CE.
    """
    u, u64 = FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF
    if num_keys * u >= 0.5:
        return float("inf")  # no useful bound: every pair goes to float64
    r32 = 2 * u + u * u + num_keys * u / (1 - num_keys * u) * (1 + u) ** 2
    r64 = num_keys * u64 / (1 - num_keys * u64)
    return (r32 + r64) / (1 - r32)


def _float32_distances(a: _Distributions, b: _Distributions | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Na Nb float64 distances from float32 cross terms, and Na Nb bounds on their distance to
    the float64 (:func:`_pairwise_kl`) ones. ``b=None`` means ``b = a`` (one product)."""
    b_ = a if b is None else b
    cross = (a.p32 @ b_.log_p32.T).double()  # Na Nb: c32_ij
    cross_sum = cross + (cross.T if b is None else (b.p32 @ a.log_p32.T).T.double())  # c_ij + c_ji
    del cross
    dist = (a.neg_entropy[:, None] + b_.neg_entropy[None, :]) - cross_sum  # float64 additions
    factor = _float32_cross_error(a.p.shape[1])
    if math.isinf(factor):  # no bound (K >= 2^23): every pair is borderline (and 0 * inf would be nan)
        return dist, torch.full_like(dist, math.inf)
    margin = cross_sum.abs_().mul_(factor).add_(DISTANCE_ABS_SLACK)
    return dist, margin


def _float64_pair_distances(a: _Distributions, b: _Distributions, rows: torch.Tensor,
                            cols: torch.Tensor) -> torch.Tensor:
    """P float64 distances d(a_rows[p], b_cols[p]) of P pairs, term by term (batches of P' K)."""
    out = torch.empty(rows.numel(), dtype=a.p.dtype)
    batch = max(1, REPAIR_BATCH_ELEMENTS // a.p.shape[1])
    for s in range(0, rows.numel(), batch):
        i, j = rows[s:s + batch], cols[s:s + batch]  # P'
        # x + y and ne_i + ne_j are commutative, so the pairs (i, j) and (j, i) get the same value
        a_i, b_j = a.p[i], b.p[j]  # P' K
        neg_cross_sum = (a_i * _log(b_j)).sum(-1) + (b_j * _log(a_i)).sum(-1)
        out[s:s + batch] = (a.neg_entropy[i] + b.neg_entropy[j]) - neg_cross_sum
    return out


def _close_pairs(a: _Distributions, b: _Distributions | None, tau: float) -> torch.Tensor:
    """Na Nb bool ``d(a_i, b_j) <= tau``: the decisions of :func:`_pairwise_kl` at float32 cost.

    ``a`` and ``b`` need their float32 copies; ``b=None`` means ``b = a`` (one product). The cross
    terms come from float32 matrix products, which are about 2x faster than float64 ones. A pair
    whose float32 distance lies within the rigorous error bound of :func:`_float32_cross_error`
    around tau is recomputed in float64, term by term; every other pair provably lies on the same
    side of tau as its float64 distance. A block with too many such pairs is computed in float64.
    """
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
    """
    dist, margin = _float32_distances(a, b)
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


def _l1_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.sum(-1, keepdim=True)


class _AveragedRows(NamedTuple):
    """Output of :func:`_neighbourhood_average`: each distinct average once, with its multiplicity."""

    rows: torch.Tensor  # S K, L1-normalised averages, in order of their first row
    counts: torch.Tensor  # S int64, how many rows have this average
    of_row: torch.Tensor  # M int64, row i's average is rows[of_row[i]]


def _neighbourhood_average(rows: torch.Tensor, tau: float, chunk_rows: int) -> _AveragedRows:
    """rows: M K -> row i replaced by the L1-normalised mean of the rows j with d(i, j) <= tau.

    Distances are taken between the original rows, ``chunk_rows`` query rows at a time.
    The mean of distributions is already L1-normalised up to rounding; normalising the sum gives
    the same distribution. Rows with the same neighbour set (in the same chunk) get the very same
    average, which is returned once with its count: the greedy grouping then works on S <= M rows.
    """
    num_rows = rows.shape[0]
    dist = _distributions(rows, float32_copies=True)
    averages, counts, of_row = [], [], torch.empty(num_rows, dtype=torch.int64)
    for r0 in range(0, num_rows, chunk_rows):
        r1 = min(r0 + chunk_rows, num_rows)
        # the whole window in one chunk: the self form needs one matrix product instead of two
        chunk = None if r1 - r0 == num_rows else _take(dist, slice(r0, r1))
        close = _close_pairs(dist, None, tau) if chunk is None else _close_pairs(chunk, dist, tau)  # (r1-r0) M
        local = torch.arange(r1 - r0)
        # a row is its own neighbour even if rounding makes d(x, x) a hair above tau
        close[local, local + r0] = True
        # rows of one object often have the very same neighbours: sum each distinct set once
        sets, set_of_row = _distinct_in_order(close)  # S M, (r1-r0)
        sets = sets.to(rows.dtype)
        # few neighbours per row (many small clusters): a sparse product skips the zeros
        if sets.count_nonzero() <= SPARSE_NEIGHBOURS_MAX_DENSITY * sets.numel():
            sets = sets.to_sparse()
        of_row[r0:r1] = set_of_row + sum(len(c) for c in counts)
        averages.append(_l1_normalise(sets @ rows))
        counts.append(torch.bincount(set_of_row, minlength=sets.shape[0]))
    return _AveragedRows(torch.cat(averages), torch.cat(counts), of_row)


def _distinct_in_order(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: n m -> (distinct rows S m in order of first occurrence, n int64 index of each row's copy)."""
    distinct, inverse = torch.unique(x, dim=0, return_inverse=True)  # sorted order
    first = torch.full((distinct.shape[0],), x.shape[0]).scatter_reduce_(0, inverse, torch.arange(x.shape[0]), "amin")
    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return distinct[order], rank[inverse]


def _greedy_assign(rows: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """rows: M K -> (group of every row M int64, first row of every group G int64), groups in
    order of their first row.

    Visiting rows in order, an unassigned row starts a group and absorbs every unassigned row
    within ``tau`` of it (itself included).

    Only a group's first row needs distances, so instead of the full M M matrix the distances
    of the next B unassigned rows to all unassigned rows are computed in one product (B R), then
    the block is walked row by row. With few large groups (the usual case) the first block of
    ``GREEDY_BLOCK_ROWS`` rows assigns nearly everything, a few percent of the full matrix. With
    many small groups B doubles per block, so there are O(log M) blocks: each block's many small
    element-wise ops pay a thread fork/join, which dominated on a loaded machine with B fixed.
    """
    group = torch.full((rows.shape[0],), -1, dtype=torch.int64)
    leaders: list[int] = []
    dist = _distributions(rows, float32_copies=True)  # R K: a superset of the unassigned rows
    row_of = torch.arange(rows.shape[0])  # R: row of `rows` behind each row of `dist`, in visiting order
    free = torch.ones(rows.shape[0], dtype=torch.bool)  # R: still unassigned
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


def _group_means(rows: torch.Tensor, group: torch.Tensor, num_groups: int,
                 counts: torch.Tensor | None = None) -> torch.Tensor:
    """L1-normalised mean of the rows (M K) of each group -> G K; row i counts ``counts[i]`` times."""
    members = rows if counts is None else rows * counts[:, None].to(rows.dtype)
    return _l1_normalise(rows.new_zeros(num_groups, rows.shape[1]).index_add_(0, group, members))


def _greedy_group(rows: torch.Tensor, tau: float, counts: torch.Tensor | None = None) -> torch.Tensor:
    """rows: M K -> centroids G K, one per greedy group (:func:`_greedy_assign`), in order of each
    group's first row. A centroid is the L1-normalised mean of its members.

    ``counts`` (M): row i stands for counts[i] identical rows, visited where the first of them is.
    Identical rows are at distance exactly 0 (the spec's ``sum (a - b)(log a - log b)``), so they
    always share a group and the greedy walk over distinct rows gives the same groups.
    """
    group, leaders = _greedy_assign(rows, tau)
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

    def __init__(self, tau: float):
        self.tau = tau
        self.leaders: torch.Tensor | None = None  # G K, the first row of each group
        self.sums: torch.Tensor | None = None  # G K, sum of each group's rows
        self.rows_fed = 0

    def add(self, rows: torch.Tensor) -> None:
        """Feed the next rows (M K, in visiting order)."""
        self.rows_fed += rows.shape[0]
        orphans = rows
        if self.leaders is not None:
            close = _close_pairs(_distributions(rows, float32_copies=True),
                                 _distributions(self.leaders, float32_copies=True), self.tau)  # M G
            joins = close.any(1)
            first = close.to(torch.uint8).argmax(1)  # the first leader within tau
            self.sums.index_add_(0, first[joins], rows[joins])
            orphans = rows[~joins]
        if orphans.shape[0] == 0:
            return
        group, leaders = _greedy_assign(orphans, self.tau)
        sums = orphans.new_zeros(leaders.numel(), orphans.shape[1]).index_add_(0, group, orphans)
        if self.leaders is None:
            self.leaders, self.sums = orphans[leaders], sums
        else:
            self.leaders = torch.cat([self.leaders, orphans[leaders]])
            self.sums = torch.cat([self.sums, sums])

    def centroids(self) -> torch.Tensor:
        """G K: the L1-normalised mean of every group so far."""
        return _l1_normalise(self.sums)


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
    low, high = torch.aminmax(attention)  # one pass; nan makes both comparisons below false
    if not (low >= 0 and high < float("inf")):
        for bad, what in ((~torch.isfinite(attention), "a non-finite value (nan/inf)"),
                          (attention < 0, "a negative value")):
            if bad.any():
                t, n, _ = torch.nonzero(bad)[0].tolist()
                raise VosError(f"{where}: patch {n} of frame {t0 + t} has {what}; attention maps must be "
                               f"finite and non-negative")
    attention = attention.to(torch.float64)  # after the checks: float -> float64 is exact, checks agree
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
    window's attention is held at a time, plus the (T, N) labels and the centroids of the video so
    far (C K); the centroids of all windows are never held together.

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
    first_round = _StreamingGreedy(tau)
    patches_keys = None
    for t0, t1 in spans:
        rows = _window_rows(window_attention, t0, t1, patches_keys)  # (w*N) K
        patches_keys = (rows.shape[0] // (t1 - t0), rows.shape[1])
        averaged = _neighbourhood_average(rows, tau, chunk_rows)
        first_round.add(_greedy_group(averaged.rows, tau, averaged.counts))

    # next hierarchies: further rounds until the number of centroids stops changing
    if first_round.leaders.shape[0] == first_round.rows_fed:
        centroids = first_round.leaders  # nothing merged: the window centroids as they are
    else:
        centroids = _merge_until_stable(first_round.centroids(), tau)  # C K

    # assignment of the original rows; argmin breaks ties towards the lowest centroid index
    labels = torch.empty(num_frames, patches_keys[0], dtype=torch.int64)  # T N
    centroid_dist = _distributions(centroids, float32_copies=True)
    for t0, t1 in spans:
        rows = _window_rows(window_attention, t0, t1, patches_keys)
        labels[t0:t1] = _nearest(_distributions(rows, float32_copies=True), centroid_dist).view(t1 - t0, -1)

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
