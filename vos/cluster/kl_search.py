"""Symmetric KL divergences between attention maps, with every decision that of float64.

The clustering (:mod:`vos.cluster.fast`) is a chain of hard ``d <= tau`` decisions and nearest-row
choices. This module makes them at float32 cost without changing any of them (see
``docs/cluster.md``, "The CPU fast path"):

* :func:`float32_distances`: float32 products with a rigorous error bound
  (:func:`float32_cross_error`); pairs within the bound of a decision are recomputed in float64
  (:func:`float64_pair_distances`);
* :func:`lower_bounds`: a certified lower bound from key-grouped rows (log-sum inequality), which
  rules out most pairs before any product of length K (:func:`learn_key_groups` picks the groups);
* :func:`sparse_close_pairs` / :func:`close_pairs` (all pairs within tau) and :func:`nearest`
  (the nearest row, lowest index on ties), computing only the surviving pairs by sampled products.

Why float64 decisions: the matrix-product form of the distance subtracts cross-entropies of
magnitude up to ``2 * ln(1 / PROB_EPS) ~ 46`` to obtain values near ``tau ~ 1``; in float32 that
cancellation leaves errors of 1e-5..1e-4 at K = 3000, enough to flip borderline pairs between
BLAS builds, float64 leaves ~1e-13. The cross terms are nevertheless computed by float32
products with a rigorous error bound; pairs within the bound of tau (or of the
best centroid, for the assignment) are recomputed in float64 (see ``docs/cluster.md``).

Rows are held as small explicit types, each with every field set:

* :class:`ExactRows`: float64 rows with their logs and entropies, for the float64 products
  (:func:`pairwise_kl`, :func:`self_pairwise_kl`);
* :class:`Rows32` (float64 rows) and :class:`AttentionRows32` (attention and its float64 row
  sums, the rows being their quotient): the rows with the float32 terms the fast paths need,
  computed once, and optionally their :class:`KeyGroupSums` for pruning;
* :class:`WindowTerms`: the per-row terms of a window kept between the two passes.

Functions on one set of rows against itself are the ``self_...`` ones (one product instead of
two, exactly symmetric results).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import torch

from vos.cluster.reference import PROB_EPS
from vos.cluster.settings import DEFAULT_SETTINGS, ClusterSettings
from vos.infra.errors import UserError

# Unit roundoffs of float32 and float64 (round to nearest): the float32 distance pass bounds its
# error with them, see close_pairs.
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24
FLOAT64_UNIT_ROUNDOFF = 2.0 ** -53
# Relative error of the float32 rows against the float64 ones: one rounding for float64 rows, two
# (reciprocal and product) for float32 attention scaled by its row sums (attention_rows).
P32_ERROR = 2 * FLOAT32_UNIT_ROUNDOFF + FLOAT32_UNIT_ROUNDOFF ** 2 + 1e-15
# Absolute slack of that bound: the absolute error parts of the four float32 sums (4 x 2.1 u, see
# float32_cross_error), the float64 additions of terms of size <= ~50 (entropies and
# cross-entropies of clamped logs) and float32 underflow of tiny probabilities (< 1e-13).
FLOAT32_ABS_SLACK = 9 * FLOAT32_UNIT_ROUNDOFF + 1e-12
# Relative error of torch's float32 log, assumed: measured within 1.03 u (tests check <= 2 u), and
# 8 u leaves room for other builds. The float32 logs of the distance pass are taken in float32.
FLOAT32_LOG_ERROR = 8 * FLOAT32_UNIT_ROUNDOFF
# Keys per block of the float32 dot products. A float32 dot product of n terms is within gamma_n of
# the sum of its absolute terms, so the products over K keys are taken per block of this many keys
# and the block results added in float64 (cross_products): the bound grows with the block, not
# with K. At K = 12,000 (ViT-S/8, five key frames) it is 45 times tighter than one float32 sum,
# and proportionally fewer pairs near tau need their float64 distance.
FLOAT32_BLOCK_KEYS = 256
# Rows (and columns) per output tile of tiled_cross_products: the float64 tile (512 KiB) stays in
# cache while the key blocks add into it.
PRODUCT_TILE_ROWS = 256


class ExactRows(NamedTuple):
    """float64 rows with the terms of the float64 products (:func:`pairwise_kl`)."""

    p: torch.Tensor  # M K float64
    log_p: torch.Tensor  # M K, log_clamped(p)
    neg_entropy: torch.Tensor  # M, sum_k p log p


class KeyGroupSums(NamedTuple):
    """Key-grouped rows for the lower bound of :func:`lower_bounds` (pruning)."""

    grouped32: torch.Tensor  # M G float32, group sums of p clamped to PROB_EPS
    log_grouped32: torch.Tensor  # M G float32
    neg_entropy: torch.Tensor  # M float64, sum_g A log A


class Rows32(NamedTuple):
    """float64 rows with the float32 terms of :func:`close_pairs` and :func:`nearest`, computed once."""

    p: torch.Tensor  # M K float64
    p32: torch.Tensor  # M K float32 copies
    log_p32: torch.Tensor  # M K float32 log of p32 clamped
    neg_entropy32: torch.Tensor  # M float64 values of the float32 sums of p32 log_p32
    groups: KeyGroupSums | None  # for pruning; None: no pruning

    def rows64(self, index=slice(None)) -> torch.Tensor:
        """The float64 rows ``index``."""
        return self.p[index]


class AttentionRows32(NamedTuple):
    """Rows given as attention and its float64 row sums (the rows are raw / row_sums), with the
    float32 terms of :class:`Rows32`; the float64 rows are computed only where needed."""

    raw: torch.Tensor  # M K, any float dtype
    row_sums: torch.Tensor  # M float64
    p32: torch.Tensor
    log_p32: torch.Tensor
    neg_entropy32: torch.Tensor
    groups: KeyGroupSums | None

    def rows64(self, index=slice(None)) -> torch.Tensor:
        """The float64 rows ``index``: raw / row_sums."""
        return self.raw[index].double() / self.row_sums[index, None]


class WindowTerms(NamedTuple):
    """The per-row terms of a window's :class:`AttentionRows32` that the assignment pass reuses
    (:func:`attention_rows_again`): all but the M K maps."""

    row_sums: torch.Tensor  # M float64
    neg_entropy32: torch.Tensor  # M float64
    groups: KeyGroupSums | None  # M G


Float32Rows = Rows32 | AttentionRows32


def log_clamped(p: torch.Tensor) -> torch.Tensor:
    """log of p clamped to PROB_EPS (a new tensor)."""
    return p.clamp_min(PROB_EPS).log_()


def exact_rows(p: torch.Tensor) -> ExactRows:
    """The float64 rows p (M K) with their logs and entropies."""
    log_p = log_clamped(p)
    return ExactRows(p, log_p, torch.linalg.vecdot(p, log_p))  # M, without an M K temporary


def exact_rows_of(rows: Float32Rows) -> ExactRows:
    """:func:`exact_rows` of the float64 rows of ``rows``."""
    return exact_rows(rows.rows64())


def rows32(p: torch.Tensor, key_groups: torch.Tensor | None = None) -> Rows32:
    """The rows p (M K float64) with their float32 terms for :func:`close_pairs` and :func:`nearest`;
    ``key_groups`` (K int64 group of every key, from :func:`learn_key_groups`) for their pruning by
    :func:`lower_bounds`.

    Everything the float32 distance pass needs is computed in float32 (errors bounded in
    float32_cross_error); the float64 logs and entropies are computed only for the few rows that
    borderline pairs and fallbacks need (float64_pair_distances, pairwise_kl).
    """
    p32 = torch.from_numpy(p.numpy().astype(np.float32))
    return Rows32(p, *_float32_terms(p32, key_groups))


def _float32_terms(p32: torch.Tensor, key_groups: torch.Tensor | None) -> tuple:
    """(p32, log_p32, neg_entropy32, groups) of float32 rows p32 (M K)."""
    log_p32 = p32.clamp_min(PROB_EPS)  # clamped rows; their logs in place below (= log_clamped(p32))
    grouped = None
    if key_groups is not None:  # group sums of the clamped rows (float32 sums, error bounded in lower_bounds)
        grouped = log_p32.new_zeros(log_p32.shape[0], int(key_groups.max()) + 1).index_add_(1, key_groups, log_p32)
    log_p32.log_()
    neg_entropy32 = blocked_row_dots(p32, log_p32)  # float32 sums per key block, as the products
    if grouped is None:
        return p32, log_p32, neg_entropy32, None
    # logs and entropies of the group sums in float64 (M G: cheap), then rounded for the products
    grouped = grouped.double()
    log_grouped = grouped.log()
    return p32, log_p32, neg_entropy32, KeyGroupSums(grouped.float(), log_grouped.float(),
                                                     torch.linalg.vecdot(grouped, log_grouped))


def _attention_p32(raw: torch.Tensor, row_sums: torch.Tensor) -> torch.Tensor:
    """float32 rows within P32_ERROR of raw / row_sums (see :func:`attention_rows`)."""
    if raw.dtype == torch.float64:
        return (raw / row_sums[:, None]).float()
    if raw.dtype == torch.float32 and float((row_sums - 1).abs().max()) <= 2 * FLOAT32_UNIT_ROUNDOFF:
        return raw  # read only, like raw itself
    return raw.float() * row_sums.reciprocal().float()[:, None]


def attention_rows(raw: torch.Tensor, row_sums: torch.Tensor, key_groups: torch.Tensor | None) -> AttentionRows32:
    """The float32 terms of ``rows32(raw.double() / row_sums[:, None], key_groups)`` without the
    float64 rows, which :meth:`AttentionRows32.rows64` computes for the few rows that need them.

    ``raw`` (M K) is attention in any float dtype, ``row_sums`` (M) its float64 row sums. A float32
    row is scaled by the rounded reciprocal: within P32_ERROR of the float64 row, as the bounds of
    :func:`float32_cross_error` and :func:`lower_bounds` allow. Float32 rows that all sum to 1
    within 2u (softmax attention averaged over heads does, to ~1.5u) are within P32_ERROR of the
    float64 rows as they are (relative error |s - 1|, plus the float64 division's ~1e-16): they are
    used without a scaled copy.
    """
    return AttentionRows32(raw, row_sums, *_float32_terms(_attention_p32(raw, row_sums), key_groups))


def window_terms(rows: AttentionRows32) -> WindowTerms:
    """The per-row terms of ``rows`` kept for :func:`attention_rows_again`."""
    return WindowTerms(rows.row_sums, rows.neg_entropy32, rows.groups)


def attention_rows_again(raw: torch.Tensor, terms: WindowTerms) -> AttentionRows32:
    """:func:`attention_rows` of the same attention as an earlier call whose per-row terms are
    ``terms`` (which its computations reproduce exactly): only the M K maps are computed again."""
    p32 = _attention_p32(raw, terms.row_sums)
    return AttentionRows32(raw, terms.row_sums, p32, log_clamped(p32), terms.neg_entropy32, terms.groups)


def learn_key_groups(raw: torch.Tensor, row_sums: torch.Tensor,
                     settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor | None:
    """K int64 group (0..G-1, none empty) of every key for :func:`lower_bounds`, learnt from the rows
    raw / row_sums (M K attention in any float dtype, M float64 sums; only the sampled rows are
    taken in float64), or None when there are too few keys per group for pruning to pay.

    The lower bound of a pair is tight when, inside each group, the ratio of the two rows is the
    same for every key: keys whose log-attention columns differ by a constant over the rows. So
    the keys are grouped by k-means (Lloyd, deterministic initialisation) on their log columns,
    centred per key, over a sample of the rows. Any grouping gives a valid bound; this one only
    decides how much is pruned.
    """
    num_rows, num_keys = raw.shape
    num_groups = min(settings.key_groups, num_keys)
    if num_keys < settings.prune_min_keys_per_group * num_groups:
        return None
    sampled = torch.linspace(0, num_rows - 1, min(num_rows, settings.key_group_sample_rows)).long()
    sample = raw[sampled].double() / row_sums[sampled, None]
    points = log_clamped(sample).T.float()  # K S: log column of each key over the sampled rows
    points -= points.mean(1, keepdim=True)  # a constant factor on a column changes no ratio
    centres = points[torch.linspace(0, num_keys - 1, num_groups).long()]  # G S
    for _ in range(settings.key_group_iterations):
        label = torch.cdist(points, centres).argmin(1)  # K
        sums = torch.zeros_like(centres).index_add_(0, label, points)
        counts = torch.bincount(label, minlength=num_groups)
        filled = counts > 0  # an empty group keeps its centre
        centres[filled] = sums[filled] / counts[filled, None]
    return torch.unique(label, return_inverse=True)[1]  # ids of the non-empty groups only


def take(rows, index):
    """The rows ``index`` (slice, index or mask) of every field of ``rows`` (any of the row types)."""
    return type(rows)(*(None if x is None else take(x, index) if isinstance(x, tuple) else x[index] for x in rows))


def pairwise_kl(a: ExactRows, b: ExactRows) -> torch.Tensor:
    """Na Nb symmetric KL ``sum a log a + sum b log b - a . log b - b . log a`` by matrix products."""
    neg_cross_sum = a.p @ b.log_p.T + (b.p @ a.log_p.T).T  # Na Nb
    return (a.neg_entropy[:, None] + b.neg_entropy[None, :]) - neg_cross_sum


def self_pairwise_kl(a: ExactRows) -> torch.Tensor:
    """:func:`pairwise_kl` of ``a`` against itself: one product instead of two, exactly symmetric."""
    cross = a.p @ a.log_p.T  # Na Na: cross[i, j] = sum_k a_ik log a_jk = -CE(a_i, a_j)
    return (a.neg_entropy[:, None] + a.neg_entropy[None, :]) - (cross + cross.T)


def key_blocks(num_keys: int) -> list[slice]:
    """The key blocks of the float32 sums: FLOAT32_BLOCK_KEYS keys each, the last one shorter."""
    return [slice(k0, min(k0 + FLOAT32_BLOCK_KEYS, num_keys)) for k0 in range(0, num_keys, FLOAT32_BLOCK_KEYS)]


def blocked_row_dots(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """M float64: sum_k x_ik y_ik of float32 rows (M K), as float32 row dots per key block
    (numpy's, in float32) added in float64; the error bound of :func:`float32_cross_error`."""
    dots = torch.zeros(x.shape[0], dtype=torch.float64)
    xs, ys = x.numpy(), y.numpy()
    for block in key_blocks(x.shape[1]):
        dots += torch.from_numpy(np.einsum("ij,ij->i", xs[:, block], ys[:, block]))
    return dots


def cross_products(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Nx Ny float64: x @ y.T for float32 rows x (Nx K) and y (Ny K), as float32 products over the
    key blocks (:func:`key_blocks`) added in float64. The specification of
    :func:`tiled_cross_products`, which computes the same sums tile by tile."""
    return sum((x[:, block] @ y[:, block].T).double() for block in key_blocks(x.shape[1]))


def tiled_cross_products(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:func:`cross_products` by output tiles of PRODUCT_TILE_ROWS x PRODUCT_TILE_ROWS: each tile's
    float64 sums stay in cache while the key blocks' float32 products (a small buffer) add into
    them, instead of one float32 and one float64 Nx Ny matrix per key block."""
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float64)
    tile, blocks = PRODUCT_TILE_ROWS, key_blocks(x.shape[1])
    buffer = torch.empty(tile * tile, dtype=torch.float32)
    for r0 in range(0, x.shape[0], tile):
        x_rows = x[r0:r0 + tile]
        for c0 in range(0, y.shape[0], tile):
            y_rows = y[c0:c0 + tile]
            sums = out[r0:r0 + tile, c0:c0 + tile]
            part = buffer[:x_rows.shape[0] * y_rows.shape[0]].view(x_rows.shape[0], y_rows.shape[0])
            sums.zero_()
            for block in blocks:
                torch.mm(x_rows[:, block], y_rows[:, block].T, out=part)
                sums += part
    return out


def float32_cross_error(num_keys: int, block_keys: int = FLOAT32_BLOCK_KEYS) -> float:
    """Factor r with |d32 - d64| <= r * S + FLOAT32_ABS_SLACK for every pair, where
    ``d32 = e_i + e_j - c_ij - c_ji`` is assembled in float64 from four sums of K terms
    (``c_ij = sum_k p32_ik log32_jk``, ``e_i = c_ii``), each a float32 dot product per block of
    ``block_keys`` keys with the block results added in float64 (:func:`cross_products`; one
    block: a plain float32 dot product of length K), and S = |e_i| + |e_j| + |c_ij| + |c_ji|.

    Every term ``p log q`` is <= 0, so each sum's absolute terms add up to its magnitude X (a
    cross-entropy or an entropy of clamped logs).
    * p32 is within rho = P32_ERROR of p (relative); log32 q is the float32 log (relative error
      <= L = FLOAT32_LOG_ERROR) of q32 clamped, itself within rho of q clamped, so log32 q is
      within L |log q| + 1.01 rho (1 + L) of log q. Summed over the terms: (1 + rho)(1 + L) - 1
      of X plus 1.01 rho (1 + rho)(1 + L) (the p sum to 1);
    * any float32 dot product of length n (any order, with or without FMA) is within
      gamma_n = n u / (1 - n u) of the sum of its absolute terms (Higham, Accuracy and Stability of
      Numerical Algorithms, eq. 3.5), n = min(K, block_keys); the float64 additions of the
      ceil(K / n) block results add gamma_(K/n)(u64) of their absolute sum (below (1 + gamma_n) X);
    * the float64 path is itself within gamma_K(u64) X of the exact value;
    * X <= (|x32| + 2.1 u) / (1 - r32) for the computed sum x32: r applies to the computed S, and
      the absolute parts (4 x 2.1 u, over 1 - r32) are within FLOAT32_ABS_SLACK.
    """
    u, u64, log_error = FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF, FLOAT32_LOG_ERROR
    length = min(num_keys, block_keys)
    if length * u >= 0.25:
        return float("inf")  # no useful bound: every pair goes to float64
    gamma = length * u / (1 - length * u)
    r32 = ((1 + P32_ERROR) * (1 + log_error) - 1) * (1 + gamma) + gamma
    float64_terms = num_keys + math.ceil(num_keys / length)  # the float64 path's, and the block additions'
    r64 = float64_terms * u64 / (1 - float64_terms * u64) * (1 + gamma)
    return (r32 + r64) / (1 - r32)


def _float32_margin(cross_sum: torch.Tensor, entropies: torch.Tensor, num_keys: int,
                    block_keys: int = FLOAT32_BLOCK_KEYS) -> torch.Tensor:
    """Bounds |d32 - d64| (see :func:`float32_cross_error`) from ``cross_sum`` = c_ij + c_ji and
    ``entropies`` = e_i + e_j (float64, any shape; both <= 0). Overwrites ``cross_sum``."""
    factor = float32_cross_error(num_keys, block_keys)
    if math.isinf(factor):  # no bound (K >= 2^22): every pair is borderline (and 0 * inf would be nan)
        return torch.full_like(cross_sum, math.inf)
    return cross_sum.add_(entropies).abs_().mul_(factor).add_(FLOAT32_ABS_SLACK)


def float32_distances(a: Float32Rows, b: Float32Rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Na Nb float64 distances from float32 sums, and Na Nb bounds on their distance to the
    float64 (:func:`pairwise_kl`) ones."""
    cross_sum = tiled_cross_products(a.p32, b.log_p32)  # Na Nb: c32_ij
    cross_sum += tiled_cross_products(b.p32, a.log_p32).T  # c_ij + c_ji
    return _distances_and_margins(cross_sum, a, b)


def self_float32_distances(a: Float32Rows) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`float32_distances` of ``a`` against itself: one product (c_ji is c_ij transposed)."""
    cross = tiled_cross_products(a.p32, a.log_p32)  # Na Na: c32_ij
    cross_sum = cross + cross.T  # c_ij + c_ji
    del cross
    return _distances_and_margins(cross_sum, a, a)


def _distances_and_margins(cross_sum: torch.Tensor, a: Float32Rows,
                           b: Float32Rows) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances e_i + e_j - (c_ij + c_ji) and their bounds from ``cross_sum`` (overwritten)."""
    entropies = a.neg_entropy32[:, None] + b.neg_entropy32[None, :]
    dist = entropies - cross_sum  # float64 additions
    return dist, _float32_margin(cross_sum, entropies, a.p32.shape[1])


def float64_pair_distances(a: Float32Rows, b: Float32Rows, rows: torch.Tensor, cols: torch.Tensor,
                           settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """P float64 distances d(a_rows[p], b_cols[p]) of P pairs, term by term (batches of P' K)."""
    out = torch.empty(rows.numel(), dtype=torch.float64)
    batch = max(1, settings.repair_batch_elements // a.p32.shape[1])
    for s in range(0, rows.numel(), batch):
        i, j = rows[s:s + batch], cols[s:s + batch]  # P'
        # x + y and e_i + e_j are commutative, so the pairs (i, j) and (j, i) get the same value
        a_i, b_j = a.rows64(i), b.rows64(j)  # P' K
        log_a_i, log_b_j = log_clamped(a_i), log_clamped(b_j)
        neg_cross_sum = (a_i * log_b_j).sum(-1) + (b_j * log_a_i).sum(-1)
        entropies = torch.linalg.vecdot(a_i, log_a_i) + torch.linalg.vecdot(b_j, log_b_j)
        out[s:s + batch] = entropies - neg_cross_sum
    return out


def sampled_float32_distances(a: Float32Rows, b: Float32Rows, rows: torch.Tensor, cols: torch.Tensor,
                              symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The :func:`float32_distances` of P pairs only (``rows`` sorted, as ``nonzero`` gives them):
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
    # sampled products are plain float32 dot products of length K (the entropies' blocked sums are
    # within that bound too)
    return dist, _float32_margin(cross_sum, entropies, a.p32.shape[1], block_keys=a.p32.shape[1])


def lower_bounds(a: Float32Rows, b: Float32Rows) -> torch.Tensor:
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
    * c_ij + c_ji is one float32 dot product of length 2G, ``[P^_i, log P^_i] . [log P^_j, P^_j]``:
      within r |c_ij + c_ji|, r = :func:`float32_cross_error` of 2G (which also covers the
      rounding of the float64 logs);
    * the float64 distance is within gamma_K(u64) * (2 * 46) < 1e-10 of the exact one; the float32
      roundings and additions below are within 1e-4 (terms below ~200).
    The bound minus these is linear in the four sums: ``(1 + theta)(e_i + e_j) + (1 - r')(-c_ij - c_ji)
    - 4.1 theta - slack`` with r' = r + theta (1 + 2r), so one product with a bias gives it.
    """
    form = _bound_form(a, b)
    if form is None:
        return torch.full((a.p32.shape[0], b.p32.shape[0]), -math.inf)  # no useful bound: nothing is pruned
    entropy_a, entropy_b, cross_weight = form
    return torch.addmm(entropy_a[:, None] + entropy_b[None, :], _stacked_groups(a), _stacked_groups(b, True).T,
                       alpha=-cross_weight)


def _bound_form(a: Float32Rows, b: Float32Rows) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """The bound of :func:`lower_bounds` is ``entropy_a[i] + entropy_b[j] - weight * (c_ij + c_ji)``:
    (Na, Nb float32 per-row terms, weight), or None when there is no useful bound."""
    u, num_keys = FLOAT32_UNIT_ROUNDOFF, a.p32.shape[1]
    num_sums = 2 * a.groups.grouped32.shape[1]
    factor = float32_cross_error(num_sums, block_keys=num_sums)  # one float32 product of length 2G
    if num_keys * u >= 0.5 or math.isinf(factor):
        return None
    theta = P32_ERROR + num_keys * u / (1 - num_keys * u) * (1 + u)
    cross_weight = 1 - factor - theta * (1 + 2 * factor)
    # (1 + theta) e - (4.1 theta + slack) / 2 per row, rounded to float32 (error < 1e-5 << slack)
    shift = 0.5 * (4.1 * theta + 1e-4)
    entropy_a = ((1 + theta) * a.groups.neg_entropy - shift).float()
    entropy_b = entropy_a if b is a else ((1 + theta) * b.groups.neg_entropy - shift).float()
    return entropy_a, entropy_b, cross_weight


def _stacked_groups(rows: Float32Rows, log_first: bool = False) -> torch.Tensor:
    """M 2G float32: [P^, log P^] (or [log P^, P^]), so that c_ij + c_ji is one dot product."""
    groups = rows.groups
    pair = (groups.log_grouped32, groups.grouped32) if log_first else (groups.grouped32, groups.log_grouped32)
    return torch.cat(pair, 1)


def self_candidate_pairs(a: Float32Rows, tau: float, max_pairs: float,
                         settings: ClusterSettings = DEFAULT_SETTINGS) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The pairs (i, j) of rows of ``a``, sorted by (i, j), whose lower bound (:func:`lower_bounds`)
    is not above tau; None if there are more than ``max_pairs`` or no useful bound.

    The bound of (i, j) with i <= j is computed once and stands for (j, i) too
    (:func:`_upper_candidates`), and the pairs are exactly symmetric
    (:func:`sampled_float32_distances` relies on it).
    """
    upper = _upper_candidates(a, tau, max_pairs, settings)
    if upper is None:
        return None
    num_rows = a.p32.shape[0]
    rows, cols = upper // num_rows, upper % num_rows
    off_diagonal = rows != cols
    keys = torch.cat([upper, cols[off_diagonal] * num_rows + rows[off_diagonal]]).sort().values
    return keys // num_rows, keys % num_rows


def _upper_candidates(a: Float32Rows, tau: float, max_pairs: float,
                      settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor | None:
    """Keys i * M + j (i <= j, unsorted) of the pairs of rows of ``a`` whose lower bound is not above
    tau, from half the product of ``lower_bounds(a, a)`` in blocks of
    ``settings.self_bound_block_rows`` rows (no transpose); None if the pairs in both orders are
    more than ``max_pairs`` or there is no useful bound."""
    form = _bound_form(a, a)
    if form is None:
        return None
    entropy, _, cross_weight = form
    left, right = _stacked_groups(a), _stacked_groups(a, True)
    num_rows, found, count = left.shape[0], [], 0
    for r0 in range(0, num_rows, settings.self_bound_block_rows):
        r1 = min(r0 + settings.self_bound_block_rows, num_rows)
        lower = torch.addmm(entropy[r0:r1, None] + entropy[None, r0:], left[r0:r1], right[r0:].T,
                            alpha=-cross_weight)  # (r1-r0) (M-r0): rows r0..r1-1 against r0..M-1
        rows, cols = _pairs_not_above(lower, tau)
        upper = cols >= rows  # column c is row r0 + c
        found.append((r0 + rows[upper]) * num_rows + r0 + cols[upper])  # i * M + j, i <= j
        count += 2 * found[-1].numel() - int((rows == cols).sum())  # (i, j) and (j, i); (i, i) once
        if count > max_pairs:
            return None
    return torch.cat(found)


def sparse_close_pairs(a: Float32Rows, b: Float32Rows, tau: float,
                       settings: ClusterSettings = DEFAULT_SETTINGS) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The pairs (i, j) with ``d(a_i, b_j) <= tau`` as two P int64 index tensors sorted by (i, j),
    found without the dense products; None if ``a`` has no key groups or if more than
    ``settings.prune_max_fraction`` of the pairs survive the lower bound (then the dense path is
    cheaper).

    Pairs whose certified lower bound (:func:`lower_bounds`) exceeds tau are never computed; the
    others get the float32 distance of sampled products and its bound, and those within the bound
    of tau are recomputed in float64, as in the dense path.
    """
    if a.groups is None or not _probe_prunes_enough(a, b, tau, settings):
        return None
    num_pairs = a.p32.shape[0] * b.p32.shape[0]
    rows, cols = _pairs_not_above(lower_bounds(a, b), tau)  # (a nan bound keeps the pair)
    if rows.numel() > settings.prune_max_fraction * num_pairs:
        return None
    dist, margin = sampled_float32_distances(a, b, rows, cols)
    close = dist <= tau
    borderline = ((dist - tau).abs_() <= margin).nonzero()[:, 0]
    close[borderline] = float64_pair_distances(a, b, rows[borderline], cols[borderline], settings) <= tau
    return rows[close], cols[close]


def self_sparse_close_pairs(a: Float32Rows, tau: float,
                            settings: ClusterSettings = DEFAULT_SETTINGS) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`sparse_close_pairs` of ``a`` against itself: the bound, hence the candidates, is
    exactly symmetric, one sampled product gives both cross terms, and a borderline pair is
    recomputed in float64 once for both orders."""
    if a.groups is None or not _probe_prunes_enough(a, a, tau, settings):
        return None
    num_rows = a.p32.shape[0]
    pairs = self_candidate_pairs(a, tau, settings.prune_max_fraction * num_rows * num_rows, settings)
    if pairs is None:
        return None
    rows, cols = pairs
    dist, margin = sampled_float32_distances(a, a, rows, cols, symmetric=True)
    close = dist <= tau
    borderline = ((dist - tau).abs_() <= margin).nonzero()[:, 0]
    # (i, j) and (j, i) have the same distances and bounds: compute i <= j, mirror the rest
    _mirror_borderline(close, rows, cols, borderline, a, tau, settings)
    return rows[close], cols[close]


def _probe_prunes_enough(a: Float32Rows, b: Float32Rows, tau: float, settings: ClusterSettings) -> bool:
    """False if the bound of evenly spaced rows of ``a`` keeps more than ``prune_max_fraction`` of
    their pairs: few large clusters prune little, which a sample shows before the full bound."""
    num_rows, probe_rows = a.p32.shape[0], settings.prune_probe_rows
    if num_rows <= 4 * probe_rows:
        return True
    probe = take(a, torch.linspace(0, num_rows - 1, probe_rows).long())
    return not (~(lower_bounds(probe, b) > tau)).float().mean() > settings.prune_max_fraction


def _mirror_borderline(close: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, borderline: torch.Tensor,
                       a: Float32Rows, tau: float, settings: ClusterSettings) -> None:
    """Decide the symmetric pairs ``borderline`` (positions in rows, cols, sorted by (i, j), where
    (j, i) is borderline with every (i, j)) in float64, computing only those with i <= j: the float64
    distance of (j, i) is that of (i, j) (see :func:`float64_pair_distances`). Writes into ``close``."""
    upper = borderline[rows[borderline] <= cols[borderline]]
    lower = borderline[rows[borderline] > cols[borderline]]
    decided = float64_pair_distances(a, a, rows[upper], cols[upper], settings) <= tau
    close[upper] = decided
    num_rows = a.p32.shape[0]
    upper_keys = rows[upper] * num_rows + cols[upper]  # sorted, as the pairs are
    close[lower] = decided[torch.searchsorted(upper_keys, cols[lower] * num_rows + rows[lower])]


def close_pairs(a: Float32Rows, b: Float32Rows, tau: float,
                settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """Na Nb bool ``d(a_i, b_j) <= tau``: the decisions of :func:`pairwise_kl` at float32 cost.

    The cross terms come from float32 matrix products. A pair whose float32 distance lies within
    the rigorous error bound of :func:`float32_cross_error` around tau is recomputed in float64,
    term by term; every other pair provably lies on the same side of tau as its float64
    distance. A block with too many such pairs is computed in float64. With key groups, most
    pairs are ruled out by a lower bound first (:func:`sparse_close_pairs`).
    """
    pairs = sparse_close_pairs(a, b, tau, settings)
    if pairs is not None:
        return _dense_mask(pairs, a.p32.shape[0], b.p32.shape[0])
    return dense_close_pairs(a, b, tau, settings)


def self_close_pairs(a: Float32Rows, tau: float, settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """:func:`close_pairs` of ``a`` against itself (one product, exactly symmetric decisions);
    with a few large clusters, only inside the connected components of the rows linked by pairs
    the bound keeps (:func:`component_close_pairs`)."""
    pairs = self_sparse_close_pairs(a, tau, settings)
    if pairs is not None:
        return _dense_mask(pairs, a.p32.shape[0], a.p32.shape[0])
    return dense_self_close_pairs(a, tau, settings)


def _dense_mask(pairs: tuple[torch.Tensor, torch.Tensor], num_rows: int, num_cols: int) -> torch.Tensor:
    """num_rows num_cols bool, True at the pairs."""
    close = torch.zeros(num_rows, num_cols, dtype=torch.bool)
    close[pairs] = True
    return close


def dense_close_pairs(a: Float32Rows, b: Float32Rows, tau: float,
                      settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """:func:`close_pairs` by the dense float32 products, for when sampled products do not pay."""
    dist, margin = float32_distances(a, b)
    close = _repair_borderline(dist, margin, tau, a, b, settings)
    return pairwise_kl(exact_rows_of(a), exact_rows_of(b)) <= tau if close is None else close


def dense_self_close_pairs(a: Float32Rows, tau: float, settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """:func:`self_close_pairs` by dense float32 products: with key groups only inside the
    components the bound links (:func:`component_close_pairs`), else the full product."""
    if (close := component_close_pairs(a, tau, settings)) is not None:
        return close
    return _full_product_self_close_pairs(a, tau, settings)


def _full_product_self_close_pairs(a: Float32Rows, tau: float, settings: ClusterSettings) -> torch.Tensor:
    """:func:`self_close_pairs` by the dense float32 products, without pruning: the decisions of
    ``self_float32_distances`` repaired (:func:`_repair_borderline`), computed tile by tile.

    For a pair of row tiles I <= J, the products c_IJ and c_JI give the distances of the tile
    (I, J) and, transposed, of (J, I): every product of the full matrix is computed once, as in
    ``cross + cross.T``, while only PRODUCT_TILE_ROWS^2 distances are held at a time (not the
    M x M float64 matrices: 415 MB each at M = 7,200). Borderline pairs are collected with
    i <= j, decided in float64 once and mirrored.
    """
    num_rows, tile = a.p32.shape[0], PRODUCT_TILE_ROWS
    close = torch.empty(num_rows, num_rows, dtype=torch.bool)
    borderline = []  # (i, j) with i <= j, from every tile
    for r0 in range(0, num_rows, tile):
        rows = slice(r0, min(r0 + tile, num_rows))
        for c0 in range(r0, num_rows, tile):
            cols = slice(c0, min(c0 + tile, num_rows))
            cross = tiled_cross_products(a.p32[rows], a.log_p32[cols])  # c_ij
            cross_sum = cross + (cross.T if c0 == r0 else tiled_cross_products(a.p32[cols], a.log_p32[rows]).T)
            entropies = a.neg_entropy32[rows, None] + a.neg_entropy32[None, cols]
            dist = entropies - cross_sum
            margin = _float32_margin(cross_sum, entropies, a.p32.shape[1])
            decided = dist <= tau
            close[rows, cols] = decided
            close[cols, rows] = decided.T
            i, j = ((dist - tau).abs_() <= margin).nonzero(as_tuple=True)
            upper = (r0 + i) <= (c0 + j)
            borderline.append(torch.stack([r0 + i[upper], c0 + j[upper]]))
    i, j = torch.cat(borderline, 1)
    if 2 * i.numel() > settings.repair_max_fraction * num_rows * num_rows:
        return self_pairwise_kl(exact_rows_of(a)) <= tau
    decided = float64_pair_distances(a, a, i, j, settings) <= tau  # d(i, j) = d(j, i) in float64 too
    close[i, j] = decided
    close[j, i] = decided
    return close


def _repair_borderline(dist: torch.Tensor, margin: torch.Tensor, tau: float, a: Float32Rows, b: Float32Rows,
                       settings: ClusterSettings) -> torch.Tensor | None:
    """Na Nb ``dist <= tau`` with the pairs within ``margin`` of tau decided in float64, or None
    when more than ``settings.repair_max_fraction`` of them are (the caller then takes the
    float64 products). Consumes ``dist`` and ``margin``."""
    close = dist <= tau
    rows, cols = ((dist - tau).abs_() <= margin).nonzero(as_tuple=True)  # borderline pairs
    del dist, margin
    if rows.numel() > settings.repair_max_fraction * close.numel():
        return None
    close[rows, cols] = float64_pair_distances(a, b, rows, cols, settings) <= tau
    return close


def component_close_pairs(a: Float32Rows, tau: float,
                          settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor | None:
    """M M bool ``d(a_i, a_j) <= tau`` for the rows of ``a``, for when too many pairs survive the
    lower bound for sampled products (a few large clusters).

    The pairs that survive the bound link the rows into connected components; a pair across two
    components has a bound above tau, so only pairs inside a component can be close. Components
    are packed into blocks (small ones together, up to ``settings.component_block_rows`` rows) and
    each block is compared with itself by the dense products (:func:`self_close_pairs` without
    pruning: the same decisions). None without key groups, or when the blocks would cost more than
    ``settings.component_max_work`` of the full ``M x M`` product.
    """
    if a.groups is None:
        return None
    num_rows = a.p32.shape[0]
    # the blocks cover at least the candidate pairs: more of those than the work allowed, and the
    # components cannot pay (this also bounds the memory of the pair list)
    upper = _upper_candidates(a, tau, settings.component_max_work * num_rows ** 2, settings)
    if upper is None:
        return None
    edges = (upper // num_rows).numpy(), (upper % num_rows).numpy()
    graph = scipy.sparse.csr_matrix((np.ones(upper.numel(), dtype=bool), edges), shape=(num_rows, num_rows))
    del upper, edges
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    blocks = _pack_components(torch.from_numpy(component.astype(np.int64)), settings.component_block_rows)
    if sum(block.numel() ** 2 for block in blocks) > settings.component_max_work * num_rows ** 2:
        return None
    close = torch.zeros(num_rows, num_rows, dtype=torch.bool)
    for block in blocks:  # B rows
        close[block[:, None], block[None, :]] = _full_product_self_close_pairs(take(a, block), tau, settings)
    return close


def _pack_components(component: torch.Tensor, block_rows: int) -> list[torch.Tensor]:
    """M int64 component of every row -> blocks of rows (each sorted), every component whole in one
    block: components of more than ``block_rows`` rows alone, the others packed in order
    of size (largest first) into blocks of at most that many rows."""
    sizes = torch.bincount(component)
    order = torch.argsort(component, stable=True)  # rows grouped by component
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    blocks, pending, pending_rows = [], [], 0
    for c in torch.argsort(sizes, descending=True, stable=True).tolist():
        size = int(sizes[c])
        if pending_rows + size > block_rows and pending:
            blocks.append(torch.cat(pending).sort().values)
            pending, pending_rows = [], 0
        pending.append(order[starts[c]:starts[c] + size])
        pending_rows += size
    blocks.append(torch.cat(pending).sort().values)
    return blocks


def nearest(a: Float32Rows, b: Float32Rows, settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """Na int64: index of the nearest row of ``b`` for every row of ``a``, lowest index on ties,
    as ``pairwise_kl(a, b).argmin(1)`` but from float32 products.

    A row of ``b`` whose float32 distance minus its bound exceeds the best float32 distance plus
    its bound is provably farther in float64 too; rows of ``a`` left with more than one such
    candidate get the float64 distances of their candidates (at most ``repair_max_fraction`` of
    all pairs, else everything is computed in float64).
    With key groups, each row first gets the distance (plus its bound) to the row of ``b`` with the
    smallest lower bound (:func:`lower_bounds`); rows of ``b`` whose lower bound exceeds it are
    provably farther and never computed, the others by sampled products.
    """
    if a.groups is not None:
        lower = lower_bounds(a, b)  # Na Nb
        local = torch.arange(lower.shape[0])
        guess = lower.argmin(1)  # Na
        guess_dist, guess_margin = sampled_float32_distances(a, b, local, guess)
        upper = ((guess_dist + guess_margin) * (1 + 1e-6)).float()  # rounded up: a float32 upper bound
        lower[local, guess] = math.inf  # computed already
        rows, cols = _pairs_not_above(lower, upper[:, None])  # the others are farther than the guess
        shape = lower.shape
        del lower
        if rows.numel() + local.numel() <= settings.prune_max_fraction * shape[0] * shape[1]:
            dist, margin = sampled_float32_distances(a, b, rows, cols)
            return _certified_argmin(a, b, torch.cat([local, rows]), torch.cat([guess, cols]),
                                     torch.cat([guess_dist, dist]), torch.cat([guess_margin, margin]), settings)
    dist, margin = float32_distances(a, b)  # Na Nb
    rows = torch.arange(dist.shape[0]).repeat_interleave(dist.shape[1])
    cols = torch.arange(dist.shape[1]).repeat(dist.shape[0])
    return _certified_argmin(a, b, rows, cols, dist.flatten(), margin.flatten(), settings)


def _pairs_not_above(values: torch.Tensor, limit) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) int64, sorted, of the entries of ``values`` (Na Nb float32) not above ``limit``
    (a number or a broadcastable array; nan counts as not above), by numpy's comparison and
    flatnonzero on the float32 values."""
    limit = limit.numpy() if isinstance(limit, torch.Tensor) else limit
    flat = torch.from_numpy(np.flatnonzero(~(values.numpy() > limit)))
    return flat // values.shape[1], flat % values.shape[1]


def _certified_argmin(a: Float32Rows, b: Float32Rows, rows: torch.Tensor, cols: torch.Tensor,
                      dist: torch.Tensor, margin: torch.Tensor, settings: ClusterSettings) -> torch.Tensor:
    """Na int64 float64 argmin of each row of ``a`` over the rows of ``b`` from P pairs (rows[p],
    cols[p]) (every row of ``a`` in at least one, no pair twice; pairs left out are provably not
    the nearest), their float32 distances ``dist`` and bounds ``margin`` (see :func:`nearest`)."""
    num_rows, num_cols = a.p32.shape[0], b.p32.shape[0]
    best = _row_argmin(rows, cols, dist, num_rows)  # Na
    is_best = cols == best[rows]  # one pair per row
    reach = dist.new_empty(num_rows)
    reach[rows[is_best]] = (dist + margin)[is_best]  # Na: the float32 winner's largest float64 distance
    candidate = (dist - margin) <= reach[rows]  # P
    unsure = torch.bincount(rows[candidate], minlength=num_rows) > 1  # Na: float32 winner not certain
    repair = candidate & unsure[rows]
    if int(repair.sum()) > settings.repair_max_fraction * num_rows * num_cols:
        return pairwise_kl(exact_rows_of(a), exact_rows_of(b)).argmin(1)
    exact = float64_pair_distances(a, b, rows[repair], cols[repair], settings)  # non-candidates are farther
    best[unsure] = _row_argmin(rows[repair], cols[repair], exact, num_rows)[unsure]
    return best


def _row_argmin(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, num_rows: int) -> torch.Tensor:
    """num_rows int64: per row, the column of its smallest value among the pairs (rows, cols), the
    lowest column on ties (as ``argmin`` of a dense row); int64 max where a row has no pair."""
    smallest = values.new_full((num_rows,), math.inf).scatter_reduce_(0, rows, values, "amin")
    at_smallest = values == smallest[rows]
    no_pair = torch.iinfo(torch.int64).max
    return torch.full((num_rows,), no_pair).scatter_reduce_(0, rows[at_smallest], cols[at_smallest], "amin")


def symmetric_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL divergence ``KL(a_i||b_j) + KL(b_j||a_i)`` between all rows of ``a`` and ``b``.

    ``a``: Na K and ``b``: Nb K hold distributions in their rows (not re-normalised here).
    Returns Na Nb in the promoted floating dtype of the inputs. Uses cross-entropy minus entropy
    with matrix products, ``d = sum a log a + sum b log b - a . log b - b . log a``, with
    probabilities clamped to ``PROB_EPS`` inside the logs. ``symmetric_kl(x, x)`` (the same tensor
    object) needs one matrix product instead of two and is exactly symmetric.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(f"symmetric_kl: expected two (rows, K) matrices with the same K, "
                       f"got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    exact_a = exact_rows(a.to(dtype))
    return self_pairwise_kl(exact_a) if b is a else pairwise_kl(exact_a, exact_rows(b.to(dtype)))
