"""Tests of the fast paths of vos.cluster and vos.segment: every decision equals the float64 one.

The float32 distance pass must give the very decisions of the float64 matrix form, also for
pairs placed within 1e-6 of tau (where plain float32 decides differently), and every fallback
and shortcut (pair recomputation, whole-block float64, sparse averaging, attention kept between
the passes) must give what the plain path gives.
"""

import concurrent.futures
import dataclasses
import math
import threading

import numpy as np
import pytest
import torch

import vos.cli
import vos.cluster
import vos.cluster.kl_search
import vos.segment
from tests.helpers.cluster_oracle import (adversarial_taus, ref_cluster, ref_distance, ref_normalise, rows_of, spy,
                                          structured_attention)
from tests.helpers.vos_clips import moving_square_frames, write_frame_folder
from vos.cluster import DEFAULT_SETTINGS, cluster_streaming
from vos.cluster.fast import _neighbourhood_average
from vos.cluster.kl_search import (close_pairs, exact_rows, float32_distances, nearest, pairwise_kl, rows32,
                                   self_close_pairs, self_float32_distances, self_pairwise_kl)
from vos.infra.video_reader import open_video
from vos.segment import SegmentConfig, VideoSegmenter


@pytest.mark.parametrize("num_keys", [12, 400])
def test_float32_bound_holds_and_is_tight_enough(num_keys):
    # peaky rows (probabilities far below PROB_EPS, so the log clamp is active) and flat rows
    rows = torch.cat([rows_of(30, num_keys, 0, 200.0), rows_of(30, num_keys, 1, 2.0)])
    rows[:5] = torch.nn.functional.softmax(40 * torch.randn(5, num_keys, dtype=torch.float64), -1)
    dist = rows32(rows)
    d32, margin = self_float32_distances(dist)
    d64 = self_pairwise_kl(exact_rows(rows))
    assert (rows < vos.cluster.PROB_EPS).any()
    assert ((d32 - d64).abs() <= margin).all()
    assert margin.max() < 1e-2 * (num_keys / 400)  # useful: far below the spread of distances near tau ~ 1


@pytest.mark.parametrize("form", ["self", "cross"])
def test_close_pairs_give_float64_decisions_at_adversarial_taus(monkeypatch, form):
    rows = rows_of(40, 12, 2)
    dist = rows32(rows)
    d64 = self_pairwise_kl(exact_rows(rows))
    if form == "self":
        d32, _ = self_float32_distances(dist)
        decide, expected_d64 = lambda tau: self_close_pairs(dist, tau), d64
    else:
        a = vos.cluster.kl_search.take(dist, slice(0, 15))
        d32, _ = float32_distances(a, dist)
        decide = lambda tau: close_pairs(a, dist, tau)  # noqa: E731
        expected_d64 = pairwise_kl(exact_rows(rows[:15]), exact_rows(rows))
    recomputed = spy(monkeypatch, "float64_pair_distances")
    plain_float32_wrong = 0
    for tau in adversarial_taus(d64):
        expected = expected_d64 <= tau
        assert torch.equal(decide(tau), expected), tau
        plain_float32_wrong += int((d32 <= tau).ne(expected).sum())
    assert plain_float32_wrong > 0  # the thresholds do hit pairs that float32 alone gets wrong
    assert recomputed  # ... and those went through the float64 recomputation


def test_close_pairs_fall_back_to_float64_when_many_pairs_are_borderline(monkeypatch):
    rows = rows_of(30, 12, 3)
    dist = rows32(rows)
    d64 = self_pairwise_kl(exact_rows(rows))
    tau = d64[0, 1].item()
    whole = spy(monkeypatch, "self_pairwise_kl")
    no_repairs = dataclasses.replace(DEFAULT_SETTINGS, repair_max_fraction=0.0)
    assert torch.equal(self_close_pairs(dist, tau, no_repairs), d64 <= tau)
    assert len(whole) == 1  # the whole block went to float64


def test_nearest_equals_float64_argmin_with_ties_and_near_ties(monkeypatch):
    rows = rows_of(50, 12, 4)
    centroids = rows_of(6, 12, 5)
    # exact ties (a duplicated centroid: lowest index wins) and near-ties below float32 resolution
    near = ref_normalise(centroids[2].numpy() * (1 + 1e-8 * np.arange(12)))
    centroids = torch.cat([centroids, centroids[1:2], torch.tensor(near)[None]])
    rows[:3] = centroids[1]
    rows[3:6] = centroids[2]
    a, b = rows32(rows), rows32(centroids)
    expected = pairwise_kl(exact_rows(rows), exact_rows(centroids)).argmin(1)
    assert expected[:3].tolist() == [1, 1, 1]  # the tie goes to the lower of the duplicates 1 and 6
    recomputed = spy(monkeypatch, "float64_pair_distances")
    # unsure rows: their candidates in float64
    assert torch.equal(nearest(a, b, dataclasses.replace(DEFAULT_SETTINGS, repair_max_fraction=1.0)), expected)
    assert recomputed
    # everything in float64
    assert torch.equal(nearest(a, b, dataclasses.replace(DEFAULT_SETTINGS, repair_max_fraction=0.0)), expected)
    assert len(recomputed) == 1


@pytest.mark.parametrize("max_density", [0.0, 1.0])  # dense product / sparse product
def test_averaging_dense_and_sparse_match_the_loop(max_density):
    rows = rows_of(36, 10, 6)
    tau = 0.8
    x = rows.numpy()
    expected = np.stack([ref_normalise(np.mean([x[j] for j in range(len(x))
                                                if j == i or ref_distance(x[i], x[j]) <= tau], axis=0))
                         for i in range(len(x))])
    for chunk_rows in (36, 7):
        settings = dataclasses.replace(DEFAULT_SETTINGS, neighbour_chunk_rows=chunk_rows,
                                       sparse_neighbours_max_density=max_density)
        averaged = _neighbourhood_average(rows32(rows), tau, settings)
        np.testing.assert_allclose(averaged.rows[averaged.of_row].numpy(), expected, rtol=1e-12, atol=1e-15)
        assert torch.equal(averaged.counts, torch.bincount(averaged.of_row))
        first_row = [averaged.of_row.tolist().index(s) for s in range(len(averaged.rows))]
        assert first_row == sorted(first_row)  # distinct averages in order of their first row


@pytest.mark.parametrize("seed", [20, 21])
def test_clustering_with_pairs_within_1e6_of_tau_matches_slow_reference(monkeypatch, seed):
    attention, _ = structured_attention(4, 8, 12, 3, 20.0, seed)
    rows = (attention / attention.sum(-1, keepdim=True)).double()[:3].reshape(-1, 12)
    d = self_pairwise_kl(exact_rows(rows))
    recomputed = spy(monkeypatch, "float64_pair_distances")
    close_to_tau = d[(d > 0.3) & (d < 1.5)]
    for tau in (close_to_tau.min().item() * (1 + 5e-7), close_to_tau.median().item() * (1 - 5e-7)):
        ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), tau, 3)
        result = cluster_streaming(lambda t0, t1: attention[t0:t1], 4, tau, 3)
        np.testing.assert_array_equal(result.labels.numpy(), ref_labels)
        np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)
    assert recomputed  # the borderline pairs were decided in float64


def test_reuse_first_pass_returns_first_results_within_the_budget():
    computed = []

    def compute(t0, t1):
        computed.append((t0, t1))
        return torch.full((t1 - t0, 2, 4), float(t0))  # 32 bytes per frame

    spans = [(0, 3), (3, 6), (6, 7)]
    for budget, recomputed in ((0, spans), (96, spans[1:]), (128, [(3, 6)]), (1000, [])):
        computed.clear()
        window_attention = vos.segment.reuse_first_pass(compute, budget)
        first = [window_attention(*span) for span in spans]
        second = [window_attention(*span) for span in spans]
        assert computed == spans + recomputed, budget
        assert all(torch.equal(a, b) for a, b in zip(first, second))
        kept = [a is b for a, b in zip(first, second)]
        assert kept == [span not in recomputed for span in spans]


def test_reuse_first_pass_from_several_threads_keeps_each_first_result_once():
    # the clustering's window workers ask for windows concurrently; the bookkeeping must hold
    computed, lock = [], threading.Lock()
    # the first pass's 40 calls meet in groups of 4 inside compute, so four results always reach
    # the bookkeeping at once (a barrier, not the clock, makes the calls overlap); the timeout only
    # turns a hang into a failure
    overlap = threading.Barrier(4, timeout=60)
    first_pass = True

    def compute(t0, t1):
        with lock:
            computed.append((t0, t1))
        if first_pass:
            overlap.wait()
        return torch.full((t1 - t0, 2, 4), float(t0))  # 32 bytes per frame

    spans = [(t0, t0 + 1) for t0 in range(40)]
    budget = 32 * 25  # room for 25 of the 40 windows
    window_attention = vos.segment.reuse_first_pass(compute, budget)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = list(pool.map(lambda span: window_attention(*span), spans))
        first_pass = False
        second = list(pool.map(lambda span: window_attention(*span), spans))
    kept = [a is b for a, b in zip(first, second)]
    assert sum(kept) == 25  # exactly the budget's worth was kept, each handed out once
    assert sorted(computed) == sorted(spans + [span for span, k in zip(spans, kept) if not k])
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_segment_gives_the_same_masks_with_and_without_the_attention_cache(tmp_path):
    folder = write_frame_folder(tmp_path / "seq", moving_square_frames(7, (64, 96)))
    results = []
    for cache_mib in (0, 64):
        config = SegmentConfig(backbone="test_vit_tiny16", weights="random", resolution=(64, 96), key_every=3,
                               attention_cache_mib=cache_mib)
        results.append(VideoSegmenter(config).segment(open_video(folder)))
    assert results[0].num_clusters >= 2 and results[0].num_clusters == results[1].num_clusters
    assert torch.equal(results[0].objects, results[1].objects)


def test_negative_attention_cache_is_a_cli_error(tmp_path, capsys):
    folder = write_frame_folder(tmp_path / "seq", moving_square_frames(3, (64, 96)))
    code = vos.cli.main(["segment", str(folder), "--out", str(tmp_path / "out"), "--attention-cache-mib", "-1"])
    assert code == 2 and "--attention-cache-mib must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_a_usable_bound_everything_is_float64(monkeypatch):
    # a float32 sum of n >= 2^22 terms (n u >= 1/4) has no useful bound: the factor is then infinite
    assert math.isinf(vos.cluster.kl_search.float32_cross_error(2 ** 22, block_keys=2 ** 22))
    monkeypatch.setattr(vos.cluster.kl_search, "float32_cross_error", lambda *args, **kwargs: math.inf)
    rows = rows_of(20, 12, 7)
    rows[0] = torch.nn.functional.one_hot(torch.tensor(3), 12).double()  # c_00 = 0: 0 * inf must not be nan
    dist = rows32(rows)
    _, margin = self_float32_distances(dist)
    assert torch.isinf(margin).all()
    d64 = self_pairwise_kl(exact_rows(rows))
    assert torch.equal(self_close_pairs(dist, 1.0), d64 <= 1.0)
    assert torch.equal(nearest(dist, rows32(rows[:5].clone())), d64[:, :5].argmin(1))


def test_streaming_greedy_equals_the_greedy_walk_over_all_rows():
    """Feeding rows block by block gives the groups of one greedy walk over their concatenation."""
    from vos.cluster.fast import _StreamingGreedy, _greedy_group

    gen = torch.Generator().manual_seed(3)
    centres = torch.softmax(3 * torch.randn(5, 40, generator=gen, dtype=torch.float64), -1)
    picks = torch.randint(0, 5, (90,), generator=gen)
    rows = torch.softmax(centres[picks].log() + 0.3 * torch.randn(90, 40, generator=gen, dtype=torch.float64), -1)
    for tau in (0.05, 0.3, 1.0):
        stream = _StreamingGreedy(tau)
        for block in torch.split(rows, [7, 30, 1, 22, 30]):
            stream.add(rows32(block))
        expected = _greedy_group(rows32(rows), tau).p
        assert stream.rows_fed == 90
        torch.testing.assert_close(stream.centroids(), expected, rtol=0, atol=1e-12)


def test_greedy_group_centroids_are_weighted_means_with_their_float32_fields():
    """Groups of several rows get the count-weighted L1-normalised mean; a group of one row is that
    row; every centroid's float32 fields are those of its float64 row."""
    from vos.cluster.fast import _greedy_group

    gen = torch.Generator().manual_seed(5)
    far = torch.softmax(8 * torch.randn(3, 30, generator=gen, dtype=torch.float64), -1)  # 3 distant centres
    near = torch.softmax(far[0].log() + 0.01 * torch.randn(30, generator=gen, dtype=torch.float64), -1)
    rows = torch.stack([far[0], far[1], near, far[2]])  # groups: {0, 2}, {1}, {3}
    counts = torch.tensor([3, 1, 2, 5])
    centroids = _greedy_group(rows32(rows), 0.1, counts)
    expected_0 = 3 * far[0] + 2 * near
    torch.testing.assert_close(centroids.p, torch.stack([expected_0 / expected_0.sum(), far[1], far[2]]),
                               rtol=0, atol=1e-15)
    assert torch.equal(centroids.p[1], far[1]) and torch.equal(centroids.p[2], far[2])
    fresh = rows32(centroids.p)
    for name in ("p32", "log_p32", "neg_entropy32"):
        assert torch.equal(getattr(centroids, name), getattr(fresh, name)), name


def test_centroids_fed_in_place_equal_the_copied_centroids():
    """The streaming path overwrites each shared group's leader row with its centroid and feeds only
    the leaders (no copy): the same centroids, and the same first round, as copying them out."""
    from vos.cluster.fast import _StreamingGreedy, _greedy_group, _greedy_group_in_place

    gen = torch.Generator().manual_seed(6)
    centres = torch.softmax(3 * torch.randn(4, 40, generator=gen, dtype=torch.float64), -1)
    windows = [torch.softmax(centres[torch.randint(0, 4, (n,), generator=gen)].log()
                             + 0.3 * torch.randn(n, 40, generator=gen, dtype=torch.float64), -1) for n in (30, 25, 40)]
    counts = [torch.randint(1, 4, (w.shape[0],), generator=gen) for w in windows]
    copied, in_place = _StreamingGreedy(0.3), _StreamingGreedy(0.3)
    for rows, count in zip(windows, counts):
        expected = _greedy_group(rows32(rows), 0.3, count)
        dist = rows32(rows.clone())
        leaders = _greedy_group_in_place(dist, 0.3, count, None)
        assert leaders.numel() == expected.p.shape[0] < rows.shape[0]  # some groups are shared
        for name in ("p", "p32", "log_p32", "neg_entropy32"):
            assert torch.equal(getattr(dist, name)[leaders], getattr(expected, name)), name
        copied.add(expected)
        in_place.add(dist, leaders)
    assert in_place.rows_fed == copied.rows_fed
    assert torch.equal(in_place.centroids(), copied.centroids())
    assert torch.equal(in_place.leaders().p, copied.leaders().p)


def test_streaming_greedy_merges_small_leader_chunks():
    """Blocks that each start a few groups leave O(log G) chunks, holding the leaders in order."""
    from vos.cluster.fast import _StreamingGreedy

    gen = torch.Generator().manual_seed(4)
    rows = torch.softmax(2 * torch.randn(64, 30, generator=gen, dtype=torch.float64), -1)  # all far apart
    stream = _StreamingGreedy(0.01)
    for block in torch.split(rows, [40, 8, 6, 4, 3, 2, 1]):
        stream.add(rows32(block))
    assert stream.num_groups == 64
    assert len(stream.leader_chunks) <= 3
    assert torch.equal(stream.leaders().p, rows)


@pytest.mark.parametrize("density", ["sparse", "dense"])
@pytest.mark.parametrize("chunk_bytes", [8 * 30 * 7, 2 ** 24])
def test_set_sums_from_window_attention_equal_the_float64_rows_sums(monkeypatch, density, chunk_bytes):
    """Attention with row sums is divided inside the product (a chunk of keys at a time: several,
    one partial, or all at once): the sums are those of the float64 rows attention / row sums, to
    float64 rounding."""
    import scipy.sparse

    import vos.cluster.fast
    from vos.cluster.fast import _sum_rows
    from vos.cluster.kl_search import attention_rows

    monkeypatch.setattr(vos.cluster.fast, "NEIGHBOUR_SUM_CHUNK_BYTES", chunk_bytes)  # 7 keys per chunk, or all
    gen = torch.Generator().manual_seed(6)
    attention = torch.rand(30, 40, generator=gen) * 3  # rows not normalised
    sums = attention.double().sum(1)
    members = torch.rand(12, 30, generator=gen) < (0.05 if density == "sparse" else 0.6)
    sets = scipy.sparse.csr_matrix(members.numpy().astype(np.float64))
    expected = members.double() @ (attention.double() / sums[:, None])
    max_density = DEFAULT_SETTINGS.sparse_neighbours_max_density
    got = _sum_rows(sets, attention_rows(attention, sums, None), max_density)
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(_sum_rows(sets, rows32(attention.double() / sums[:, None]), max_density), expected,
                               rtol=1e-14, atol=1e-15)


def test_tiled_cross_products_are_the_blocked_sums_and_keep_the_bound(monkeypatch):
    """tiled_cross_products computes cross_products' sums (float32 per key block, added in float64)
    tile by tile, both within the certified bound; with blocks the certified bound holds and is far tighter than one float32 sum."""
    from vos.cluster.kl_search import cross_products, float32_cross_error, tiled_cross_products
    monkeypatch.setattr(vos.cluster.kl_search, "PRODUCT_TILE_ROWS", 7)  # several tiles, a partial one
    num_keys = 3 * vos.cluster.kl_search.FLOAT32_BLOCK_KEYS + 40  # a partial last key block
    rows = rows_of(30, num_keys, 4, 3.0)
    dist = rows32(rows)
    exact = rows @ exact_rows(rows).log_p.T
    bound = float32_cross_error(num_keys) * exact.abs() + 1e-12
    # the same block sums, each a float32 product whose order BLAS may choose by the operands' shape
    for products in (tiled_cross_products(dist.p32, dist.log_p32), cross_products(dist.p32, dist.log_p32)):
        assert ((products - exact).abs() <= bound).all()
    d32, margin = self_float32_distances(dist)
    assert ((d32 - self_pairwise_kl(exact_rows(rows))).abs() <= margin).all()
    assert float32_cross_error(12_000) * 40 < float32_cross_error(12_000, block_keys=12_000)


def test_tiled_self_close_pairs_give_float64_decisions(monkeypatch):
    """The dense self path, computed by pairs of row tiles (several, one partial), decides every
    pair as the float64 distances do, at thresholds that float32 alone gets wrong."""
    from vos.cluster.kl_search import _full_product_self_close_pairs
    monkeypatch.setattr(vos.cluster.kl_search, "PRODUCT_TILE_ROWS", 7)
    rows = rows_of(40, 12, 2)
    dist = rows32(rows)
    d64 = self_pairwise_kl(exact_rows(rows))
    d32, _ = self_float32_distances(dist)
    plain_float32_wrong = 0
    for tau in adversarial_taus(d64):
        expected = d64 <= tau
        assert torch.equal(_full_product_self_close_pairs(dist, tau, DEFAULT_SETTINGS), expected), tau
        plain_float32_wrong += int((d32 <= tau).ne(expected).sum())
    assert plain_float32_wrong > 0


def test_window_workers_fit_the_window_memory(monkeypatch):
    """Fewer windows are in flight when their memory would exceed window_memory_bytes (at least
    one); the partition does not change."""
    import dataclasses

    import vos.cluster.fast
    from vos.cluster.settings import WINDOW_BYTES_PER_ENTRY, window_worker_limit
    settings = dataclasses.replace(DEFAULT_SETTINGS, max_window_workers=4, window_memory_bytes=3 * 2 ** 30)
    assert window_worker_limit(settings, 1800, 3000) == 4  # ViT-S/16, T = 50: 130 MB a window
    assert window_worker_limit(settings, 7200, 12_000) == 1  # ViT-S/8, T = 50: 2.1 GB a window
    assert window_worker_limit(dataclasses.replace(settings, window_memory_bytes=1), 6, 5) == 1
    attention, _ = structured_attention(9, 16, 48, 3, 20.0, seed=5)
    asked = []
    real = vos.cluster.fast.window_workers
    monkeypatch.setattr(vos.cluster.fast, "window_workers", lambda threads, most: asked.append(most) or real(threads, most))
    small = dataclasses.replace(DEFAULT_SETTINGS, window_memory_bytes=2 * WINDOW_BYTES_PER_ENTRY * 3 * 16 * 48)
    labels = cluster_streaming(lambda t0, t1: attention[t0:t1], 9, threads=4, settings=small).labels
    assert asked == [2, 2]
    assert torch.equal(labels, cluster_streaming(lambda t0, t1: attention[t0:t1], 9, threads=1).labels)
