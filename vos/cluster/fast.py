"""The CPU fast path of the hierarchical clustering: the partition of :mod:`vos.cluster.reference`.

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

This module computes the algorithm of :mod:`vos.cluster.reference` on the CPU with numpy, scipy
and torch: windows in worker threads, a window's rows held once as float32 copies, and work
skipped wherever the result provably does not change. Every decision is that of the float64
distance; :mod:`vos.cluster.kl_search` makes the decisions at float32 cost, pruning most pairs by
a certified lower bound. Its tunables are one :class:`vos.cluster.settings.ClusterSettings`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import scipy.sparse
import torch

from vos.cluster.checks import WindowAttention, check_arguments, check_row_sums, checked_window
from vos.cluster.kl_search import (Float32Rows, Rows32, WindowTerms, attention_rows,
                                   attention_rows_again, close_pairs, dense_close_pairs, dense_self_close_pairs,
                                   learn_key_groups, nearest, rows32, self_sparse_close_pairs, sparse_close_pairs,
                                   take, window_terms)
from vos.cluster.reference import MAX_MERGE_ROUNDS
from vos.cluster.settings import DEFAULT_SETTINGS, ClusterSettings, window_worker_limit
from vos.cluster.window_workers import window_workers

__all__ = ["ClusterResult", "cluster_streaming"]

class ClusterResult(NamedTuple):
    """Output of :func:`cluster_streaming`."""

    labels: torch.Tensor  # T N, int64 cluster ids 0..C-1
    centroids: torch.Tensor  # C K, float64, L1-normalised; row c is the centroid of id c


def _l1_normalise_(x: torch.Tensor) -> torch.Tensor:
    """Divide every row of the float64 matrix x by its sum, in place (numpy's row sums and division)."""
    values = x.numpy()
    np.divide(values, np.einsum("ij->i", values)[:, None], out=values)
    return x


class _AveragedRows(NamedTuple):
    """Output of :func:`_neighbourhood_average`: each distinct average once, with its multiplicity."""

    rows: torch.Tensor  # S K, L1-normalised averages, in order of their first row
    counts: torch.Tensor  # S int64, how many rows have this average
    of_row: torch.Tensor  # M int64, row i's average is rows[of_row[i]]


def _neighbourhood_average(dist: Float32Rows, tau: float, settings: ClusterSettings = DEFAULT_SETTINGS) -> _AveragedRows:
    """rows: M K -> row i replaced by the L1-normalised mean of the rows j with d(i, j) <= tau.

    Distances are taken between the original rows, ``settings.neighbour_chunk_rows`` query rows
    at a time.
    The mean of distributions is already L1-normalised up to rounding; normalising the sum gives
    the same distribution. Rows with the same neighbour set (in the same chunk) get the very same
    average, which is returned once with its count: the greedy grouping then works on S <= M rows.
    ``dist``: the rows with their float32 copies (and key groups, for pruning), float64 rows or
    window attention with its row sums (:func:`vos.cluster.kl_search.attention_rows`).
    """
    num_rows, chunk_rows = dist.p32.shape[0], settings.neighbour_chunk_rows
    averages, counts, of_row = [], [], torch.empty(num_rows, dtype=torch.int64)
    for r0 in range(0, num_rows, chunk_rows):
        r1 = min(r0 + chunk_rows, num_rows)
        # the whole window in one chunk: the self form needs one matrix product instead of two
        whole = r1 - r0 == num_rows
        chunk = dist if whole else take(dist, slice(r0, r1))
        if whole:
            pairs = self_sparse_close_pairs(dist, tau, settings)
        else:
            pairs = sparse_close_pairs(chunk, dist, tau, settings)
        # a row is its own neighbour even if rounding makes d(x, x) a hair above tau
        local = torch.arange(r1 - r0)
        if pairs is None:
            # (not close_pairs: the sampled path was just ruled out, its probe need not run again)
            if whole:
                close = dense_self_close_pairs(dist, tau, settings)
            else:
                close = dense_close_pairs(chunk, dist, tau, settings)
            close[local, local + r0] = True
            sets, set_of_row = _distinct_rows(close)  # (r1-r0) M
            del close
        else:  # few pairs: merging the self pairs by a sort is cheap
            keys = torch.unique(torch.cat([pairs[0] * num_rows + pairs[1], local * num_rows + local + r0]))
            sets, set_of_row = _distinct_sets(keys // num_rows, keys % num_rows, r1 - r0, num_rows)
        of_row[r0:r1] = set_of_row + sum(len(c) for c in counts)
        averages.append(_l1_normalise_(_sum_rows(sets, dist, settings.sparse_neighbours_max_density)))
        counts.append(torch.bincount(set_of_row, minlength=sets.shape[0]))
    if len(averages) == 1:  # one chunk (a window): no copy
        return _AveragedRows(averages[0], counts[0], of_row)
    return _AveragedRows(torch.cat(averages), torch.cat(counts), of_row)


def _distinct_rows(close: torch.Tensor) -> tuple[scipy.sparse.csr_matrix, torch.Tensor]:
    """:func:`_distinct_sets` of the sets given as the rows of a dense bool matrix (num_rows num_cols),
    for many large sets (a few large clusters).

    Rows packed into 64-bit words are grouped by two random-weight sums of their words (wrapping
    uint64 arithmetic); every row is then checked against the first row of its group, so a hash
    collision can only cost the exact (slower) grouping by numpy's row sort, never a wrong one.
    """
    packed = np.packbits(close.numpy(), axis=1)  # num_rows ceil(num_cols / 8) uint8
    words = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8))).view(np.uint64)
    hashes = np.stack([(words * w).sum(1, dtype=np.uint64) for w in _word_hash_weights(words.shape[1])], 1)
    _, first, inverse = np.unique(hashes, axis=0, return_index=True, return_inverse=True)
    if not (words == words[first[inverse.reshape(-1)]]).all():  # a collision: group the rows exactly
        _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # sets in order of their first row
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    sets = scipy.sparse.csr_matrix(close.numpy()[first[order]], dtype=np.float64)
    return sets, torch.from_numpy(rank[inverse.reshape(-1)].astype(np.int64))


def _word_hash_weights(num_words: int) -> np.ndarray:
    """2 num_words random odd uint64 weights (fixed seed) for :func:`_distinct_rows`."""
    return np.random.default_rng(0).integers(0, 2 ** 63, size=(2, num_words), dtype=np.uint64) | np.uint64(1)


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
    """2 num_cols int64 random weights below 2^40 (sums of up to 2^23 members fit in int64)."""
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


# Bytes of the float64 copy of the window's attention that the neighbour sums make at a time (a
# chunk of keys): below vos.memory's mmap threshold, so malloc reuses it from chunk to chunk, and
# a window never holds its attention whole in float64 (M x K: 691 MB at ViT-S/8, T = 50).
NEIGHBOUR_SUM_CHUNK_BYTES = 16 * 2 ** 20


def _sum_rows(sets: scipy.sparse.csr_matrix, dist: Float32Rows, max_density: float) -> torch.Tensor:
    """S K float64: the sum of the float64 rows (M K, ``dist.rows64()``) of every set (S M 0/1);
    sets of density up to ``max_density`` by scipy's CSR product, denser ones by a dense product.

    Rows given as attention and row sums are divided inside the product (weights 1/s_j on the
    attention's exact float64 copy), a chunk of keys at a time (NEIGHBOUR_SUM_CHUNK_BYTES).
    """
    dense = sets.nnz > max_density * sets.shape[0] * sets.shape[1]
    if isinstance(dist, Rows32):
        if dense:
            return torch.from_numpy(sets.toarray()).to(dist.p.dtype) @ dist.p
        return torch.from_numpy(sets @ dist.p.numpy())
    inverse_sums = (1 / dist.row_sums).numpy()
    weights = scipy.sparse.csr_matrix((inverse_sums[sets.indices], sets.indices, sets.indptr), shape=sets.shape)
    if dense:
        weights = weights.toarray()
    raw = (dist.raw.float() if dist.raw.dtype == torch.bfloat16 else dist.raw).numpy()  # numpy has no bfloat16
    num_rows, num_keys = raw.shape
    sums = np.empty((sets.shape[0], num_keys))
    chunk_keys = max(1, NEIGHBOUR_SUM_CHUNK_BYTES // (8 * num_rows))
    for k0 in range(0, num_keys, chunk_keys):
        keys = slice(k0, k0 + chunk_keys)
        sums[:, keys] = weights @ raw[:, keys].astype(np.float64)
    return torch.from_numpy(sums)


def _greedy_assign(dist: Float32Rows, tau: float,
                   settings: ClusterSettings = DEFAULT_SETTINGS) -> tuple[torch.Tensor, torch.Tensor]:
    """rows (M, with their float32 copies: Rows32 or AttentionRows32) -> (group of every row M
    int64, first row of every group G int64), groups in order of their first row.

    Visiting rows in order, an unassigned row starts a group and absorbs every unassigned row
    within ``tau`` of it (itself included).

    Only a group's first row needs distances, so instead of the full M M matrix the distances
    of the next B unassigned rows to all unassigned rows are computed in one product (B R), then
    the block is walked row by row. With few large groups (the usual case) the first block of
    ``settings.greedy_block_rows`` rows assigns nearly everything, a few percent of the full
    matrix. With many small groups B doubles per block, so there are O(log M) blocks: each
    block's many small element-wise ops pay a thread fork/join, a cost per block, not per row.
    With key groups and few close pairs (many small groups), all close pairs are found at once
    (:func:`vos.cluster.kl_search.self_sparse_close_pairs`) and walked as lists instead.
    """
    num_rows = dist.p32.shape[0]
    pairs = self_sparse_close_pairs(dist, tau, settings)
    if pairs is not None:  # few close pairs (many small groups): walk their lists
        return _greedy_walk(*pairs, num_rows)
    group = torch.full((num_rows,), -1, dtype=torch.int64)
    leaders: list[int] = []
    row_of = torch.arange(num_rows)  # R: row behind each row of `dist` (a superset of the unassigned rows)
    free = torch.ones(num_rows, dtype=torch.bool)  # R: still unassigned
    block_rows = settings.greedy_block_rows
    while (unassigned := free.nonzero()[:, 0]).numel():
        # drop assigned rows only once they are half of `dist`: gathering is then paid at most
        # once per row in total, while the products run on at most twice the unassigned rows
        if 2 * unassigned.numel() <= free.numel():
            dist, row_of, free = take(dist, unassigned), row_of[unassigned], free[unassigned]
            unassigned = torch.arange(free.numel())
        starters = unassigned[:block_rows]  # B: the next rows to visit
        block_rows = min(2 * block_rows, max(settings.greedy_max_block_rows, settings.greedy_block_rows))
        close = close_pairs(take(dist, starters), dist, tau, settings)  # B R
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


class _GreedyGroups(NamedTuple):
    """Output of :func:`_greedy_groups`."""

    leaders: torch.Tensor  # G int64: first row of every group, in order
    shared: torch.Tensor  # G bool: groups of several rows
    means: Rows32 | None  # centroids of the shared groups (with float32 copies), None if none


def _greedy_groups(dist: Rows32, tau: float, counts: torch.Tensor | None, key_groups: torch.Tensor | None,
                   settings: ClusterSettings) -> _GreedyGroups:
    """The greedy groups (:func:`_greedy_assign`) of the rows of ``dist`` (M K float64 rows with
    float32 copies) and the centroids of those of several rows; nothing is written.

    A centroid is the L1-normalised mean of its members. ``counts`` (M): row i stands for
    counts[i] identical rows, visited where the first of them is. Identical rows are at distance
    exactly 0 (the spec's ``sum (a - b)(log a - log b)``), so they always share a group and the
    greedy walk over distinct rows gives the same groups. The centroid of a group of one row (with
    any count) is that row, whose mean it is: its float32 fields are those already computed.
    """
    group, leaders = _greedy_assign(dist, tau, settings)
    shared = torch.bincount(group, minlength=leaders.numel()) > 1  # G: groups of several rows
    if not shared.any():
        return _GreedyGroups(leaders, shared, None)
    members = shared[group]  # M: rows of those groups
    shared_id = shared.cumsum(0) - 1  # G -> index among them
    means = _group_means(dist.p[members], shared_id[group[members]], int(shared.sum()),
                         None if counts is None else counts[members])
    return _GreedyGroups(leaders, shared, rows32(means, key_groups))


def _greedy_group(dist: Rows32, tau: float, counts: torch.Tensor | None = None, key_groups: torch.Tensor | None = None,
                  settings: ClusterSettings = DEFAULT_SETTINGS) -> Rows32:
    """rows (M K L1-normalised float64 rows with their float32 copies, and ``key_groups``' sums if
    any) -> centroids G K, one per greedy group (:func:`_greedy_groups`), in order of each group's
    first row, with their float32 copies; ``dist`` is not modified.
    """
    groups = _greedy_groups(dist, tau, counts, key_groups, settings)
    if groups.leaders.numel() == dist.p.shape[0]:  # every row is a group of its own (in order)
        return dist
    centroids = take(dist, groups.leaders)
    if groups.means is not None:
        _replace_rows(centroids, groups.shared, groups.means)
    return centroids


def _greedy_group_in_place(dist: Rows32, tau: float, counts: torch.Tensor | None, key_groups: torch.Tensor | None,
                           settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """:func:`_greedy_group` without the copy of the centroids: the first row of every group of
    several rows is overwritten (all fields) with the group's centroid, and the leaders (G int64,
    the rows that now hold the centroids, in order) are returned."""
    groups = _greedy_groups(dist, tau, counts, key_groups, settings)
    if groups.means is not None:
        _replace_rows(dist, groups.leaders[groups.shared], groups.means)
    return groups.leaders


def _replace_rows(dist: tuple, index, new: tuple) -> None:
    """Overwrite the rows ``index`` of every field of ``dist`` (a row type) with those of ``new``."""
    for field, values in zip(dist, new):
        if isinstance(field, tuple):
            _replace_rows(field, index, values)
        elif field is not None:
            field[index] = values


class _StreamingGreedy:
    """The greedy grouping of rows that arrive block by block, without holding all of them.

    In the greedy walk a row is absorbed by the first earlier group leader within ``tau``, or
    starts a group of its own: whether a row leads depends only on the rows before it. So each new
    block is compared with the leaders so far (joining the first within ``tau``), and its
    remaining rows are grouped among themselves by the same walk. Only the leaders and the sums of
    their groups are kept (G K), not every row fed: the window centroids of a whole video, which
    grow with T (and K with T), are never held at once.
    """

    def __init__(self, tau: float, settings: ClusterSettings = DEFAULT_SETTINGS):
        self.tau = tau
        self.settings = settings
        # chunks of leaders in leader order; small chunks are merged (see _merge_small_chunks)
        self.leader_chunks: list[Rows32] = []  # the first row of each group (p: Gc K)
        self.sum_chunks: list[torch.Tensor] = []  # Gc K, sum of each group's rows
        self.rows_fed = 0

    @property
    def num_groups(self) -> int:
        return sum(chunk.shape[0] for chunk in self.sum_chunks)

    def add(self, rows: Rows32, fed: torch.Tensor | None = None) -> None:
        """Feed the next rows (M K with their float32 copies, in visiting order); ``fed``
        (increasing int64 indices): feed only these rows (the others are skipped, and the first
        leader chunk is compared with all M rows rather than copying the fed ones out)."""
        pending = torch.ones(rows.p.shape[0], dtype=torch.bool)  # rows of `rows` still to place
        if fed is not None:
            pending = torch.zeros_like(pending).index_fill_(0, fed, True)
        self.rows_fed += int(pending.sum())
        for leaders, sums in zip(self.leader_chunks, self.sum_chunks):  # earlier leaders come first
            if not pending.any():
                return
            close = close_pairs(rows, leaders, self.tau, self.settings)  # M Gc
            joins = close.any(1) & pending
            first = close.to(torch.uint8).argmax(1)  # the first leader of this chunk within tau
            sums.index_add_(0, first[joins], rows.p[joins])
            pending &= ~joins
            if not pending.all():
                rows, pending = take(rows, pending), pending[pending]
        if not pending.any():
            return
        if not pending.all():
            rows = take(rows, pending)
        group, leaders = _greedy_assign(rows, self.tau, self.settings)
        self.leader_chunks.append(take(rows, leaders))
        self.sum_chunks.append(rows.p.new_zeros(leaders.numel(), rows.p.shape[1]).index_add_(0, group, rows.p))
        self._merge_small_chunks()

    def _merge_small_chunks(self) -> None:
        """Merge the last two chunks while the older is at most twice the newer: O(log G) chunks
        (each costs a close_pairs call per add), and every leader is copied O(log G) times in all
        (merging everything at every add would copy all leaders for every window)."""
        while len(self.sum_chunks) > 1 and self.sum_chunks[-2].shape[0] <= 2 * self.sum_chunks[-1].shape[0]:
            newer = self.leader_chunks.pop()
            self.leader_chunks.append(_concat([self.leader_chunks.pop(), newer]))
            newer_sums = self.sum_chunks.pop()
            self.sum_chunks.append(torch.cat([self.sum_chunks.pop(), newer_sums]))

    def leaders(self) -> Rows32:
        """G K: the first row of every group so far, with its float32 fields."""
        return _concat(self.leader_chunks)

    def centroids(self) -> torch.Tensor:
        """G K: the L1-normalised mean of every group so far."""
        return _l1_normalise_(torch.cat(self.sum_chunks))


def _concat(chunks: list[tuple]) -> tuple:
    """The rows of every chunk (all of one row type), in order, as one."""
    if len(chunks) == 1:
        return chunks[0]
    return type(chunks[0])(*(None if fields[0] is None else _concat(list(fields)) if isinstance(fields[0], tuple)
                             else torch.cat(fields) for fields in zip(*chunks)))


def _merge_until_stable(centroids: Rows32, tau: float, key_groups: torch.Tensor | None = None,
                        settings: ClusterSettings = DEFAULT_SETTINGS) -> Rows32:
    """centroids (C K with float32 copies, and ``key_groups``' sums if given) -> C' K, greedy
    grouping repeated until the number of centroids stops changing. Centroids that stay alone
    keep their float32 fields."""
    for _ in range(MAX_MERGE_ROUNDS):
        merged = _greedy_group(centroids, tau, key_groups=key_groups, settings=settings)
        if merged.p.shape[0] == centroids.p.shape[0]:
            break  # every group was a singleton: merged == centroids, further rounds change nothing
        centroids = merged
    return centroids


def _window_attention(window_attention: WindowAttention, t0: int, t1: int,
                      patches_keys: tuple[int, int] | None) -> torch.Tensor:
    """Fetch and check the attention of frames t0..t1-1 -> ((t1-t0)*N, K) on the CPU, in its own dtype."""
    attention = checked_window(window_attention, t0, t1, patches_keys)
    return attention.cpu().reshape(-1, attention.shape[-1])


def _row_sums(attention: torch.Tensor, t0: int, num_patches: int) -> torch.Tensor:
    """Window attention (M K, frames from t0 on, N = num_patches rows each) -> M float64 row sums."""
    # summed in float64 by numpy, a block at a time (torch's float64 sum converts the whole
    # window first); numpy has no bfloat16, whose float32 copy is exact
    exact = attention.float() if attention.dtype == torch.bfloat16 else attention
    sums = torch.from_numpy(exact.numpy().sum(1, dtype=np.float64))
    check_row_sums(sums, t0, num_patches)
    return sums


@torch.no_grad()  # clustering is not differentiable; never build a graph over the attention
def cluster_streaming(window_attention: WindowAttention, num_frames: int, tau: float = 1.0, window: int = 3, *,
                      chunk_rows: int | None = None, threads: int | None = None,
                      settings: ClusterSettings = DEFAULT_SETTINGS) -> ClusterResult:
    """:func:`vos.cluster.cluster_streaming` on the CPU (the attention is moved there window by
    window): the partition and centroids of :func:`vos.cluster.reference.cluster_windows`.

    ``window_attention(t0, t1)`` returns the (t1-t0, N, K) attention of frames t0..t1-1 (rows
    non-negative, L1-normalised here). It is called for the windows (0, w), (w, 2w), ..., (.., T),
    once for the first hierarchy and once more for the assignment: 2 * ceil(T / window) calls,
    which a caller can count to show progress. With several ``threads`` the windows are handled
    by worker threads (:mod:`vos.cluster.window_workers`): the calls of a pass are then made from
    those threads, a few at once and in window order only roughly (the first pass's calls all
    come before the assignment's), so ``window_attention`` must be thread-safe. Memory holds a
    few windows' attention at a time (one per worker, plus one), plus the (T, N) labels, per-row
    numbers for the assignment (T*N x ~130: row sums, entropies, key-group sums) and the
    centroids of the video so far (C K); the centroids of all windows are never held together.

    ``tau``: distance threshold (``d <= tau`` joins); ``window``: frames per first-hierarchy
    window; ``chunk_rows``: rows per chunk of the neighbourhood averaging (bounds its memory;
    default ``settings.neighbour_chunk_rows``); ``threads``: the threads to use (default
    ``torch.get_num_threads()``), shared out over window workers: while the call runs, torch's
    and BLAS's process-wide thread counts are set to each worker's share and restored on return
    (see :func:`vos.cluster.window_workers.window_workers`); ``settings``: the fast path's
    tunables. The result depends on neither ``threads`` nor ``settings``.
    Returns labels (T N int64, ids 0..C-1) and centroids (C K float64; centroid c of id c).
    """
    tau = check_arguments(num_frames, tau, window, chunk_rows, threads)
    if chunk_rows is not None:
        settings = dataclasses.replace(settings, neighbour_chunk_rows=chunk_rows)
    spans = [(t0, min(t0 + window, num_frames)) for t0 in range(0, num_frames, window)]

    # the keys are the same for every window: group them once, from the first window
    attention = _window_attention(window_attention, *spans[0], None)  # (w*N) K
    patches_keys = (attention.shape[0] // (spans[0][1] - spans[0][0]), attention.shape[1])
    sums = _row_sums(attention, 0, patches_keys[0])
    key_groups = learn_key_groups(attention, sums, settings)
    first_window = [(attention, sums)]  # handed to its job, then not held here any more
    del attention, sums

    def first_hierarchy(span: tuple[int, int]) -> tuple[WindowTerms, Rows32, torch.Tensor]:
        """Averaging + greedy grouping inside the window -> (its per-row terms, kept for the
        assignment; the averaged rows, group centroids written over group leaders; the leaders)."""
        t0, t1 = span
        if t0 == 0:
            attention, sums = first_window.pop()
        else:
            attention = _window_attention(window_attention, t0, t1, patches_keys)
            sums = _row_sums(attention, t0, patches_keys[0])
        dist = attention_rows(attention, sums, key_groups)
        del attention
        averaged = _neighbourhood_average(dist, tau, settings)
        # the row sums and per-row terms (M G at most) are kept for the assignment pass
        known = window_terms(dist)
        del dist
        centroids = rows32(averaged.rows, key_groups)  # averaged rows are ours: no copy
        return known, centroids, _greedy_group_in_place(centroids, tau, averaged.counts, key_groups, settings)

    # first hierarchy of every window, in worker threads; the window centroids feed the first
    # round of the next hierarchies in window order, as they come (the same greedy walk, see
    # _StreamingGreedy)
    first_round, known = _StreamingGreedy(tau, settings), []
    max_workers = window_worker_limit(settings, window * patches_keys[0], patches_keys[1])  # M K of a full window
    with window_workers(threads, max_workers) as pool:
        for terms, centroids, leaders in pool.in_order(first_hierarchy, spans):
            known.append(terms)
            first_round.add(centroids, leaders)

    # next hierarchies: further rounds until the number of centroids stops changing
    if first_round.num_groups == first_round.rows_fed:
        centroid_dist = first_round.leaders()  # nothing merged: the window centroids as they are
    else:
        centroid_dist = _merge_until_stable(rows32(first_round.centroids(), key_groups), tau, key_groups, settings)

    # assignment of the original rows; argmin breaks ties towards the lowest centroid index
    labels = torch.empty(num_frames, patches_keys[0], dtype=torch.int64)  # T N
    centroids = centroid_dist.p  # C K

    def assign(span_terms: tuple[tuple[int, int], WindowTerms]) -> None:
        (t0, t1), terms = span_terms
        attention = _window_attention(window_attention, t0, t1, patches_keys)
        rows = attention_rows_again(attention, terms)
        labels[t0:t1] = nearest(rows, centroid_dist, settings).view(t1 - t0, -1)  # windows write disjoint rows

    with window_workers(threads, max_workers) as pool:
        for _ in pool.in_order(assign, zip(spans, known)):
            pass

    # drop centroids without patches; sorted unique ids renumber them in centroid order
    used, labels = torch.unique(labels, sorted=True, return_inverse=True)
    return ClusterResult(labels=labels, centroids=centroids[used])
