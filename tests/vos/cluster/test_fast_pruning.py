"""Tests of the pruned paths of vos.cluster: key-grouped lower bounds, sampled products, float32 rows.

Every pruned path must give the decisions of the float64 distances: the lower bound must never
exceed a float64 distance (also with the log clamp active), the sparse neighbour search and the
pruned nearest-centroid search must equal the dense float64 ones, and whole clusterings with
pruning must equal the slow loop reference and the unpruned path.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

import vos.cluster
import vos.cluster.fast
import vos.cluster.kl_search
from tests.helpers.cluster_oracle import adversarial_taus, ref_cluster, rows_of, spy, structured_attention
from vos.cluster import DEFAULT_SETTINGS, cluster_streaming
from vos.cluster.fast import _distinct_sets, _greedy_assign, _greedy_walk
from vos.cluster.kl_search import (FLOAT32_LOG_ERROR, FLOAT32_UNIT_ROUNDOFF, P32_ERROR, attention_rows, close_pairs,
                                   component_close_pairs, exact_rows, float32_distances, learn_key_groups,
                                   lower_bounds, nearest, pairwise_kl, rows32, self_candidate_pairs, self_close_pairs,
                                   self_float32_distances, self_pairwise_kl, self_sparse_close_pairs,
                                   sparse_close_pairs)
from vos.segment import attention_over_keys

# Prune with 8 key groups from 16 keys on (the defaults need 1024 keys).
SMALL_GROUPS = dataclasses.replace(DEFAULT_SETTINGS, key_groups=8, prune_min_keys_per_group=2)
# ... and keep pruning whatever share of the pairs survives the bound
ALWAYS_PRUNE = dataclasses.replace(SMALL_GROUPS, prune_max_fraction=1.0)


def key_groups_of(rows, settings):
    """learn_key_groups of float64 rows (row sums 1)."""
    return learn_key_groups(rows, torch.ones(rows.shape[0], dtype=torch.float64), settings)


def peaky_and_flat_rows(num_keys, seed):
    """Rows with probabilities far below PROB_EPS (the clamp is active), exact zeros, and flat rows."""
    rows = torch.cat([rows_of(30, num_keys, seed, 200.0), rows_of(30, num_keys, seed + 1, 2.0)])
    gen = torch.Generator().manual_seed(seed)
    rows[:5] = torch.softmax(40 * torch.randn(5, num_keys, generator=gen, dtype=torch.float64), -1)
    rows[5, : num_keys // 2] = 0
    rows[5] /= rows[5].sum()
    return rows


def test_float32_log_is_as_accurate_as_the_bound_assumes():
    x = torch.cat([torch.logspace(-10.5, 0, 200_000, dtype=torch.float64), torch.rand(200_000, dtype=torch.float64)])
    x32 = x.float().clamp_min(vos.cluster.PROB_EPS)
    exact = x32.double().log()
    relative = (x32.log().double() - exact).abs() / exact.abs().clamp_min(1e-300)
    assert relative.max() <= 2 * FLOAT32_UNIT_ROUNDOFF <= FLOAT32_LOG_ERROR  # measured ~1.03 u


@pytest.mark.parametrize("grouping", ["kmeans", "random", "single"])
def test_lower_bound_never_exceeds_the_float64_distance(grouping):
    rows = peaky_and_flat_rows(16, 0)
    assert (rows < vos.cluster.PROB_EPS).any() and (rows == 0).any()
    groups = {"kmeans": key_groups_of(rows, ALWAYS_PRUNE),
              "random": torch.randint(0, 8, (16,), generator=torch.Generator().manual_seed(1)),
              "single": torch.zeros(16, dtype=torch.int64)}[grouping]
    groups = torch.unique(groups, return_inverse=True)[1]
    a, b = rows32(rows, groups), rows32(rows[::3].clone(), groups)
    exact_a = exact_rows(rows)
    for lower, d64 in ((lower_bounds(a, a), self_pairwise_kl(exact_a)),
                       (lower_bounds(a, b), pairwise_kl(exact_a, exact_rows(b.p)))):
        assert lower.dtype == torch.float32 and lower.shape == d64.shape
        assert (lower.double() <= d64).all()
    if grouping == "single":  # one group: every grouped row is [1 + K eps], the bound is ~0
        assert lower_bounds(a, a).abs().max() < 1e-3


@pytest.mark.parametrize("block_rows", [3, 5, 128])
def test_self_candidate_pairs_are_the_symmetric_pairs_of_the_bound(block_rows):
    """From the upper triangle, in blocks: exactly symmetric, sorted, and the pairs of lower_bounds(a, a)."""
    settings = dataclasses.replace(ALWAYS_PRUNE, self_bound_block_rows=block_rows)
    rows = peaky_and_flat_rows(16, 0)  # 60 rows, 16 keys
    n = rows.shape[0]
    a = rows32(rows, key_groups_of(rows, settings))
    d64 = self_pairwise_kl(exact_rows(rows))
    lower = lower_bounds(a, a).double()
    upper_bound = torch.minimum(lower, lower.T)  # the two orders differ by float32 rounding at most
    for tau in (0.05, 0.5, 2.0, 8.0):
        rows_, cols = self_candidate_pairs(a, tau, math.inf, settings)
        keys = rows_ * n + cols
        assert torch.equal(keys, keys.sort().values)  # sorted by (i, j), no duplicates
        assert torch.equal(torch.unique(keys), keys)
        found = torch.zeros(n, n, dtype=torch.bool)
        found[rows_, cols] = True
        assert torch.equal(found, found.T)
        assert found[torch.maximum(lower, lower.T) <= tau - 1e-4].all()  # every pair the bound keeps
        assert not found[upper_bound > tau + 1e-4].any()  # and none it rules out
        assert ((d64 <= tau) <= found).all()  # hence every close pair
    assert self_candidate_pairs(a, 8.0, max_pairs=10, settings=settings) is None  # too many pairs: the dense path


def test_lower_bound_equals_the_distance_when_groups_are_single_keys():
    rows = peaky_and_flat_rows(12, 2)
    dist = rows32(rows, torch.arange(12))
    d64 = self_pairwise_kl(exact_rows(rows))
    # clamped rows, so not the distance itself, but within the (small) certified slack of it
    assert ((d64 - lower_bounds(dist, dist).double()) < 1e-3 + 1e-3 * d64).all()


def test_key_groups_are_consecutive_nonempty_and_prune_most_far_pairs():
    attention, _ = structured_attention(1, 300, 1024, 6, 30.0, 3)
    rows = (attention[0] / attention[0].sum(-1, keepdim=True)).double()
    groups = key_groups_of(rows, DEFAULT_SETTINGS)
    assert groups.shape == (1024,) and groups.dtype == torch.int64
    assert torch.equal(torch.unique(groups), torch.arange(int(groups.max()) + 1))
    assert int(groups.max()) + 1 <= DEFAULT_SETTINGS.key_groups
    dist = rows32(rows, groups)
    d64, lower = self_pairwise_kl(exact_rows(rows)), lower_bounds(dist, dist).double()
    far = d64 > 4.0
    assert far.any() and (lower[far] > 1.0).float().mean() > 0.9  # useful: far pairs are ruled out at tau 1


def test_too_few_keys_per_group_turn_pruning_off():
    rows = rows_of(10, 100, 0)
    assert key_groups_of(rows, DEFAULT_SETTINGS) is None  # 100 keys < 8 per group x 128 groups
    assert self_sparse_close_pairs(rows32(rows), 1.0) is None
    assert sparse_close_pairs(rows32(rows), rows32(rows), 1.0) is None


@pytest.mark.parametrize("form", ["self", "cross"])
def test_sparse_close_pairs_give_float64_decisions_at_adversarial_taus(monkeypatch, form):
    rows = peaky_and_flat_rows(16, 4)
    groups = key_groups_of(rows, ALWAYS_PRUNE)
    a = rows32(rows, groups)
    if form == "self":
        d64 = self_pairwise_kl(exact_rows(rows))
        sparse, dense = (lambda tau: self_sparse_close_pairs(a, tau, ALWAYS_PRUNE),
                         lambda tau: self_close_pairs(a, tau, ALWAYS_PRUNE))
    else:
        b = rows32(rows_of(25, 16, 9), groups)
        d64 = pairwise_kl(exact_rows(rows), exact_rows(b.p))
        sparse, dense = (lambda tau: sparse_close_pairs(a, b, tau, ALWAYS_PRUNE),
                         lambda tau: close_pairs(a, b, tau, ALWAYS_PRUNE))
    recomputed = spy(monkeypatch, "float64_pair_distances")
    for tau in adversarial_taus(d64):
        expected = d64 <= tau
        rows_, cols_ = sparse(tau)
        got = torch.zeros_like(expected)
        got[rows_, cols_] = True
        assert torch.equal(got, expected), tau
        assert torch.equal(dense(tau), expected)
        key = rows_ * d64.shape[1] + cols_
        assert torch.equal(key, torch.sort(key).values)  # sorted by (i, j)
    assert recomputed  # pairs within the float32 bound of tau were decided in float64


def test_self_pairs_are_recomputed_once_and_mirrored(monkeypatch):
    """Against itself, a borderline pair (i, j) and its mirror (j, i) get one float64 distance,
    computed for i <= j; the mirrored decisions are those of the float64 matrix."""
    rows = peaky_and_flat_rows(16, 4)
    a = rows32(rows, key_groups_of(rows, ALWAYS_PRUNE))
    d64 = self_pairwise_kl(exact_rows(rows))
    pairs_recomputed = []
    original = vos.cluster.kl_search.float64_pair_distances
    monkeypatch.setattr(vos.cluster.kl_search, "float64_pair_distances",
                        lambda a_, b_, r, c, *rest: pairs_recomputed.append((r, c)) or original(a_, b_, r, c, *rest))
    mirrored = 0
    for tau in adversarial_taus(d64):
        pairs_recomputed.clear()
        rows_, cols_ = self_sparse_close_pairs(a, tau, ALWAYS_PRUNE)
        got = torch.zeros_like(d64, dtype=torch.bool)
        got[rows_, cols_] = True
        assert torch.equal(got, d64 <= tau), tau
        recomputed_rows, recomputed_cols = (torch.cat(x) for x in zip(*pairs_recomputed))
        assert (recomputed_rows <= recomputed_cols).all()
        mirrored += int((recomputed_rows < recomputed_cols).sum())
    assert mirrored  # some off-diagonal pairs were borderline, so their mirrors were decided by lookup


def test_sparse_close_pairs_fall_back_to_dense_when_the_bound_prunes_little():
    never_prune = dataclasses.replace(SMALL_GROUPS, prune_max_fraction=0.0)
    rows = rows_of(20, 16, 5)
    dist = rows32(rows, key_groups_of(rows, never_prune))
    assert dist.groups is not None
    assert self_sparse_close_pairs(dist, 1e6, never_prune) is None  # everything is a candidate
    assert sparse_close_pairs(dist, dist, 1e6, never_prune) is None
    assert torch.equal(self_close_pairs(dist, 0.7, never_prune), self_pairwise_kl(exact_rows(rows)) <= 0.7)


def test_pruned_nearest_equals_float64_argmin_with_ties_and_near_ties(monkeypatch):
    rows = peaky_and_flat_rows(16, 6)
    centroids = rows_of(6, 16, 7)
    near = centroids[2] * (1 + 1e-8 * torch.arange(16, dtype=torch.float64))
    centroids = torch.cat([centroids, centroids[1:2], (near / near.sum())[None]])
    rows[:3] = centroids[1]  # exact tie between centroids 1 and 6: the lower index wins
    rows[3:6] = centroids[2]  # near-tie below float32 resolution
    groups = key_groups_of(rows, ALWAYS_PRUNE)
    a, b = rows32(rows, groups), rows32(centroids, groups)
    expected = pairwise_kl(exact_rows(rows), exact_rows(centroids)).argmin(1)
    assert expected[:3].tolist() == [1, 1, 1]
    sampled = spy(monkeypatch, "sampled_float32_distances")
    assert torch.equal(nearest(a, b, ALWAYS_PRUNE), expected)
    assert len(sampled) == 2  # the guesses, then the candidates: no dense product


@pytest.mark.parametrize("scale", [1.0, 1.001])
def test_attention_rows_match_float64_rows_within_the_assumed_error(scale):
    """Head-averaged softmax attention sums to 1 within 2u and is used as it is (no copy); rows
    summing to 1.001 are scaled. Either way the float32 rows are within P32_ERROR of the float64
    ones."""
    gen = torch.Generator().manual_seed(0)
    attention = attention_over_keys(4 * torch.randn(1, 8, 40, 6, generator=gen), torch.randn(8, 64, 6, generator=gen))[0]
    attention[0, 10] += attention[0, :10].sum()
    attention[0, :10] = 0  # exact zeros (they survive)
    attention *= scale
    sums = attention.double().sum(-1)
    rows = attention.double() / sums[:, None]
    window = attention_rows(attention, sums, None)
    assert (window.p32.data_ptr() == attention.data_ptr()) == (scale == 1.0)
    assert ((sums - 1).abs().max() <= 2 * FLOAT32_UNIT_ROUNDOFF) == (scale == 1.0)
    relative = (window.p32.double() - rows).abs() / rows.clamp_min(1e-300)
    assert relative[rows > 0].max() <= P32_ERROR and (window.p32[rows == 0] == 0).all()
    torch.testing.assert_close(window.rows64(torch.tensor([3, 7])), rows[[3, 7]], rtol=0, atol=0)
    # the float32 distances of window rows keep their certified bound against the float64 ones
    d32, margin = self_float32_distances(window)
    d64 = self_pairwise_kl(exact_rows(rows))
    assert ((d32 - d64).abs() <= margin).all()
    d32, margin = float32_distances(window, rows32(rows))
    assert ((d32 - d64).abs() <= margin).all()


def test_distinct_sets_in_order_of_first_row():
    close = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    sets, set_of_row = _distinct_sets(*close.nonzero(as_tuple=True), 5, 4)
    assert set_of_row.tolist() == [0, 0, 1, 0, 2]
    np.testing.assert_array_equal(sets.toarray(), [[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 1]])


@pytest.mark.parametrize("collide", [False, True])
def test_hashed_distinct_sets_equal_the_exact_grouping(monkeypatch, collide):
    gen = torch.Generator().manual_seed(4)
    base = torch.zeros(6, 50, dtype=torch.bool)
    for s, members in enumerate(([0, 1], [2, 3], [4, 5, 6], [1, 7, 9], [10], [11])):  # equal sizes, other members
        base[s, members] = True
    close = base[torch.randint(0, 6, (80,), generator=gen)]  # 6 distinct sets, repeated in random order
    pairs = close.nonzero(as_tuple=True)
    if collide:  # every hash equal: only the sizes tell sets apart, the check must catch it
        monkeypatch.setattr(vos.cluster.fast, "_set_hash_weights", lambda n: torch.zeros(2, n, dtype=torch.int64))
    exact = vos.cluster.fast._distinct_sets_exact(*pairs, 80, 50)
    fallbacks = []
    original = vos.cluster.fast._distinct_sets_exact
    monkeypatch.setattr(vos.cluster.fast, "_distinct_sets_exact", lambda *a: fallbacks.append(1) or original(*a))
    fast = _distinct_sets(*pairs, 80, 50)
    assert len(fallbacks) == int(collide)
    assert exact[0].shape[0] == 6
    assert torch.equal(fast[1], exact[1])
    np.testing.assert_array_equal(fast[0].toarray(), exact[0].toarray())


@pytest.mark.parametrize("collide", [False, True])
@pytest.mark.parametrize("num_cols", [50, 64, 130])
def test_distinct_rows_of_a_dense_matrix_equal_the_distinct_sets(monkeypatch, collide, num_cols):
    """The packed-bits grouping of dense rows gives the sets and order of _distinct_sets; a hash
    collision (all weights 0: every row hashes alike) falls back to the exact row sort."""
    gen = torch.Generator().manual_seed(5)
    base = torch.rand(7, num_cols, generator=gen) < 0.4
    base[6] = base[5]
    base[6, -1] = ~base[5, -1]  # differs from row 5 in the last column only (the padding's neighbour)
    close = base[torch.randint(0, 7, (90,), generator=gen)]
    expected = _distinct_sets(*close.nonzero(as_tuple=True), 90, num_cols)
    if collide:
        monkeypatch.setattr(vos.cluster.fast, "_word_hash_weights", lambda n: np.zeros((2, n), dtype=np.uint64))
    sets, set_of_row = vos.cluster.fast._distinct_rows(close)
    assert torch.equal(set_of_row, expected[1])
    np.testing.assert_array_equal(sets.toarray(), expected[0].toarray())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_walk_over_pair_lists_equals_the_block_walk(seed):
    gen = torch.Generator().manual_seed(seed)
    close = torch.rand(60, 60, generator=gen) < 0.08
    close = close | close.T
    close.fill_diagonal_(False)  # the walk adds each leader itself
    rows, cols = close.nonzero(as_tuple=True)
    group, leaders = _greedy_walk(rows, cols, 60)
    expected_group, expected_leaders = [-1] * 60, []
    for i in range(60):
        if expected_group[i] < 0:
            for j in [i] + close[i].nonzero()[:, 0].tolist():
                if expected_group[j] < 0:
                    expected_group[j] = len(expected_leaders)
            expected_leaders.append(i)
    assert group.tolist() == expected_group and leaders.tolist() == expected_leaders


def test_greedy_assign_gives_the_same_groups_pruned_and_dense():
    rows = peaky_and_flat_rows(16, 8)
    groups = key_groups_of(rows, ALWAYS_PRUNE)
    for tau in (0.3, 1.0, 3.0):
        pruned = _greedy_assign(rows32(rows, groups), tau, ALWAYS_PRUNE)
        dense = _greedy_assign(rows32(rows), tau, ALWAYS_PRUNE)
        assert all(torch.equal(x, y) for x, y in zip(pruned, dense))


@pytest.mark.parametrize("seed", [30, 31])
def test_pruned_clustering_matches_slow_reference(monkeypatch, seed):
    attention, _ = structured_attention(5, 9, 16, 3, 8.0, seed)
    sampled = spy(monkeypatch, "sampled_float32_distances")
    for tau in (0.5, 1.0, 2.0):
        ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), tau, 3)
        result = cluster_streaming(lambda t0, t1: attention[t0:t1], 5, tau, 3, settings=ALWAYS_PRUNE)
        np.testing.assert_array_equal(result.labels.numpy(), ref_labels)
        np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)
    assert sampled  # the pruned path ran


def test_default_pruning_at_segmentation_like_sizes_equals_the_unpruned_path(monkeypatch):
    """Peaky random attention over 1024 keys (pruning on with the defaults) gives the labels and
    centroids of the dense path with pruning off."""
    gen = torch.Generator().manual_seed(11)
    queries, keys = torch.randn(6, 64, 32, generator=gen), torch.randn(1024, 32, generator=gen)
    attention = torch.softmax(queries @ keys.T * 0.9, -1)  # T N K, many small clusters
    sampled = spy(monkeypatch, "sampled_float32_distances")
    pruned = cluster_streaming(lambda t0, t1: attention[t0:t1], 6, 1.0, 3)
    assert sampled
    sampled.clear()
    no_pruning = dataclasses.replace(DEFAULT_SETTINGS, prune_min_keys_per_group=10 ** 9)
    dense = cluster_streaming(lambda t0, t1: attention[t0:t1], 6, 1.0, 3, settings=no_pruning)
    assert not sampled
    assert pruned.centroids.shape[0] > 10
    assert torch.equal(pruned.labels, dense.labels)
    torch.testing.assert_close(pruned.centroids, dense.centroids, rtol=1e-12, atol=1e-15)


def test_a_probe_of_rows_skips_the_full_bound_when_it_would_prune_little(monkeypatch):
    settings = dataclasses.replace(SMALL_GROUPS, prune_probe_rows=4)
    rows = rows_of(40, 16, 12)  # 4 broad clusters: most pairs are within tau = 3
    dist = rows32(rows, key_groups_of(rows, settings))
    bounds, self_bounds = spy(monkeypatch, "lower_bounds"), spy(monkeypatch, "self_candidate_pairs")
    assert (self_pairwise_kl(exact_rows(rows)) <= 3.0).float().mean() > settings.prune_max_fraction
    assert self_sparse_close_pairs(dist, 3.0, settings) is None
    assert len(bounds) == 1 and not self_bounds  # the 4-row probe only
    assert self_sparse_close_pairs(dist, 1e-3, settings) is not None  # tiny tau: the probe lets it prune
    assert len(bounds) == 2 and len(self_bounds) == 1  # probe + full bound


def test_row_argmin_of_pair_lists_breaks_ties_towards_the_lowest_column():
    from vos.cluster.kl_search import _row_argmin

    rows = torch.tensor([0, 0, 0, 1, 1, 2])
    cols = torch.tensor([4, 1, 3, 2, 0, 5])
    values = torch.tensor([0.5, 0.7, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    got = _row_argmin(rows, cols, values, 4)
    assert got[:3].tolist() == [3, 2, 5]  # row 0: 0.5 at columns 4 and 3 -> 3
    assert got[3] == torch.iinfo(torch.int64).max  # no pair


def test_component_blocks_cover_every_row_once_and_keep_components_whole():
    from vos.cluster.kl_search import _pack_components

    component = torch.tensor([3, 0, 0, 1, 2, 2, 2, 2, 2, 2, 4, 0, 1, 3])  # sizes 3, 2, 6, 2, 1
    blocks = _pack_components(component, 5)
    # largest first; a component above 5 rows alone, the others packed up to 5 rows
    assert [sorted(set(component[b].tolist())) for b in blocks] == [[2], [0, 1], [3, 4]]
    assert torch.equal(torch.cat(blocks).sort().values, torch.arange(14))
    assert all(torch.equal(b, b.sort().values) for b in blocks)


def test_component_close_pairs_give_float64_decisions_for_a_few_large_clusters(monkeypatch):
    """Few well-separated clusters: too many pairs for sampled products, so close_pairs compares
    rows densely inside the components the bound links; the decisions are the float64 ones."""
    settings = dataclasses.replace(SMALL_GROUPS, component_block_rows=16)
    rows = rows_of(80, 64, 21, concentration=300.0)  # 4 objects
    a = rows32(rows, key_groups_of(rows, settings))
    d64 = self_pairwise_kl(exact_rows(rows))
    results = []
    original = vos.cluster.kl_search.component_close_pairs
    monkeypatch.setattr(vos.cluster.kl_search, "component_close_pairs",
                        lambda *args: results.append(original(*args)) or results[-1])
    dense_sizes = []
    original_dense = vos.cluster.kl_search._full_product_self_close_pairs
    monkeypatch.setattr(vos.cluster.kl_search, "_full_product_self_close_pairs",
                        lambda a_, *rest: dense_sizes.append(a_.p32.shape[0]) or original_dense(a_, *rest))
    within = torch.unique(d64[(d64 > 1e-3) & (d64 < 1.0)])  # pair distances inside the clusters
    picks = within[torch.linspace(0, within.numel() - 1, 4).long()].tolist()
    for tau in [t * (1 + s) for t in picks for s in (1e-6, -1e-6, 1e-9, -1e-9)]:
        assert torch.equal(self_close_pairs(a, tau, settings), d64 <= tau), tau
    assert results and all(r is not None for r in results)  # the component path decided
    assert max(dense_sizes) < 80  # never the whole block


def test_one_component_falls_back_to_the_dense_product():
    """When the bound links (nearly) all rows, components save nothing: None, the dense path runs."""
    rows = rows_of(40, 16, 12)  # broad clusters: most pairs within tau = 3
    a = rows32(rows, key_groups_of(rows, SMALL_GROUPS))
    assert a.groups is not None
    assert component_close_pairs(a, 3.0, SMALL_GROUPS) is None
    assert torch.equal(self_close_pairs(a, 3.0, SMALL_GROUPS), self_pairwise_kl(exact_rows(rows)) <= 3.0)
