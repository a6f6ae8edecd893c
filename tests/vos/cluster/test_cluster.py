"""Tests of vos.cluster's API on the CPU (the fast path) against a slow loop reference of the spec,
with extreme settings, and on hand-made partitions."""

import dataclasses
import inspect
import math
import threading

import numpy as np
import pytest
import scipy.stats
import torch

import vos.cluster
import vos.cluster.fast
import vos.cluster.kl_search
from tests.helpers.cluster_oracle import canonical, ref_cluster, structured_attention
from vos.cluster import DEFAULT_SETTINGS, ClusterResult, cluster_streaming, hierarchical_cluster, symmetric_kl
from vos.cluster.fast import _neighbourhood_average
from vos.cluster.kl_search import rows32
from vos.infra.errors import UserError


# ---------------------------------------------------------------- distance

def test_symmetric_kl_matches_scipy_entropy():
    rng = np.random.default_rng(1)
    a = rng.dirichlet(np.ones(7), size=3)
    b = rng.dirichlet(np.full(7, 0.5), size=5)
    expected = np.array([[scipy.stats.entropy(p, q) + scipy.stats.entropy(q, p) for q in b] for p in a])
    got = symmetric_kl(torch.tensor(a), torch.tensor(b))
    assert got.shape == (3, 5) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    # float32 inputs are computed in float32 and agree to float32 accuracy
    got32 = symmetric_kl(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_symmetric_kl_self_form_is_symmetric_with_zero_diagonal():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.dirichlet(np.ones(6), size=9))
    d = symmetric_kl(x, x)  # one-product path
    assert torch.equal(d, d.T)
    np.testing.assert_allclose(torch.diagonal(d).numpy(), 0.0, atol=1e-14)
    np.testing.assert_allclose(d.numpy(), symmetric_kl(x, x.clone()).numpy(), rtol=1e-12, atol=1e-14)


def test_symmetric_kl_hand_values():
    a = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    b = torch.tensor([[0.25, 0.5, 0.25]], dtype=torch.float64)
    # KL(a||b) = 1/2 ln 2 + 1/4 ln(1/2) = 1/4 ln 2, KL(b||a) = 1/4 ln 2
    assert symmetric_kl(a, b).item() == pytest.approx(0.5 * math.log(2), rel=1e-14)
    # disjoint supports: each KL is -ln(PROB_EPS) through the clamp, so the distance stays finite
    one_hot = torch.eye(2, dtype=torch.float64)
    assert symmetric_kl(one_hot[:1], one_hot[1:]).item() == pytest.approx(2 * math.log(1e10), rel=1e-12)


def test_symmetric_kl_rejects_mismatched_shapes():
    with pytest.raises(UserError, match="same K"):
        symmetric_kl(torch.ones(2, 3), torch.ones(2, 4))


# ---------------------------------------------------------------- against the slow reference

@pytest.mark.parametrize("seed, concentration, tau, window", [
    (0, 20.0, 0.5, 2),
    (1, 20.0, 1.0, 3),
    (2, 50.0, 0.5, 1),
    (3, 20.0, 0.7, 2),
    (4, 8.0, 2.0, 3),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_slow_reference(seed, concentration, tau, window, threads):
    attention, _ = structured_attention(5, 8, 12, 3, concentration, seed)
    ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), tau, window)
    assert 2 <= ref_labels.max() + 1 < ref_labels.size  # a non-trivial partition
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 5, tau, window, threads=threads)
    labels = hierarchical_cluster(attention, tau, window)
    assert labels.shape == (5, 8) and labels.dtype == torch.int64
    np.testing.assert_array_equal(canonical(labels.numpy()), canonical(ref_labels))
    # the spec fixes the numbering too (centroid order), not only the partition
    np.testing.assert_array_equal(labels.numpy(), ref_labels)
    assert torch.equal(result.labels, labels)
    np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("block_rows", [1, 3, 7])
def test_greedy_blocks_match_slow_reference(block_rows):
    # the greedy grouping walks greedy_block_rows rows per distance product; small blocks make
    # the groups span several blocks, as in real windows of 1800 rows
    settings = dataclasses.replace(DEFAULT_SETTINGS, greedy_block_rows=block_rows)
    attention, _ = structured_attention(6, 8, 12, 4, 20.0, 11)
    ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), 0.6, 3)
    assert 2 <= ref_labels.max() + 1 < ref_labels.size
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 6, 0.6, 3, settings=settings)
    np.testing.assert_array_equal(result.labels.numpy(), ref_labels)
    np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)


def test_chunked_averaging_gives_the_same_result():
    attention, _ = structured_attention(4, 9, 10, 3, 20.0, 5)
    whole = cluster_streaming(lambda t0, t1: attention[t0:t1], 4, 0.6, 3)
    assert whole.labels.max() >= 2
    for chunk_rows in (1, 4, 26):
        chunked = cluster_streaming(lambda t0, t1: attention[t0:t1], 4, 0.6, 3, chunk_rows=chunk_rows)
        assert torch.equal(chunked.labels, whole.labels)
        torch.testing.assert_close(chunked.centroids, whole.centroids, rtol=1e-12, atol=1e-15)


# every tunable far from its default: tiny blocks, chunks, batches and samples, pruning always on
EXTREME_SETTINGS = vos.cluster.ClusterSettings(
    neighbour_chunk_rows=5, sparse_neighbours_max_density=0.5, greedy_block_rows=1, greedy_max_block_rows=2,
    repair_max_fraction=0.5, repair_batch_elements=7, key_groups=4, prune_min_keys_per_group=1,
    prune_max_fraction=1.0, prune_probe_rows=1, self_bound_block_rows=3, component_max_work=1.0,
    component_block_rows=4, key_group_sample_rows=5, key_group_iterations=1, max_window_workers=2)


@pytest.mark.parametrize("seed, concentration, tau", [(0, 20.0, 0.5), (4, 8.0, 2.0)])
def test_extreme_settings_give_the_reference_result(seed, concentration, tau):
    attention, _ = structured_attention(5, 8, 12, 3, concentration, seed)
    ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), tau, 2)
    assert 2 <= ref_labels.max() + 1 < ref_labels.size
    for threads in (1, 2):
        result = cluster_streaming(lambda t0, t1: attention[t0:t1], 5, tau, 2, threads=threads,
                                   settings=EXTREME_SETTINGS)
        np.testing.assert_array_equal(result.labels.numpy(), ref_labels)
        np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)


def test_the_settings_passed_in_reach_every_function(monkeypatch):
    """No function of the fast path falls back to the default settings when cluster_streaming is
    given settings: every default DEFAULT_SETTINGS is replaced by an object that fails on use."""
    class Unusable:
        def __getattr__(self, name):
            raise AssertionError(f"the default settings were used ({name})")

    replaced = 0
    for module in (vos.cluster.fast, vos.cluster.kl_search):
        for value in list(vars(module).values()):
            functions = [value] if inspect.isfunction(value) else \
                [f for f in vars(value).values() if inspect.isfunction(f)] if inspect.isclass(value) else []
            for function in functions:
                if function.__module__ == module.__name__ and any(d is DEFAULT_SETTINGS for d in function.__defaults__ or ()):
                    defaults = tuple(Unusable() if d is DEFAULT_SETTINGS else d for d in function.__defaults__)
                    monkeypatch.setattr(function, "__defaults__", defaults)
                    replaced += 1
    assert replaced >= 15
    gen = torch.Generator().manual_seed(11)
    queries, keys = torch.randn(5, 32, 16, generator=gen), torch.randn(64, 16, generator=gen)
    many_small, one = (torch.softmax(queries @ keys.T * scale, -1) for scale in (1.5, 0.05))
    a_few_large, _ = structured_attention(5, 32, 64, 3, 300.0, 1)
    pruned = dataclasses.replace(DEFAULT_SETTINGS, key_groups=8, prune_min_keys_per_group=1, prune_probe_rows=4)
    chunked = dataclasses.replace(pruned, neighbour_chunk_rows=50)
    unpruned = dataclasses.replace(chunked, prune_min_keys_per_group=10 ** 9)
    # the sampled, dense and component paths, whole windows and chunks, the merge rounds
    for attention, settings in ((many_small, chunked), (one, chunked), (a_few_large, pruned), (many_small, unpruned),
                                (one, unpruned), (many_small, EXTREME_SETTINGS), (one, EXTREME_SETTINGS)):
        for threads in (1, 2):
            cluster_streaming(lambda t0, t1: attention[t0:t1], 5, 1.0, 3, threads=threads, settings=settings)
    with pytest.raises(AssertionError, match="default settings were used"):  # the replacement does bite
        vos.cluster.kl_search.nearest(rows32(attention[0].double()), rows32(attention[1].double()))


# ---------------------------------------------------------------- hand-made partitions

def test_near_one_hot_key_blocks_give_one_cluster_per_block():
    rng = np.random.default_rng(7)
    num_blocks, block = 4, 5
    blocks = rng.integers(0, num_blocks, size=(7, 10))  # T N: which key block each patch attends to
    attention = np.full((7, 10, num_blocks * block), 0.01 / (num_blocks * block))
    for (t, n), b in np.ndenumerate(blocks):
        attention[t, n, b * block:(b + 1) * block] += 0.99 * rng.dirichlet(np.full(block, 200.0))
    labels = hierarchical_cluster(torch.tensor(attention, dtype=torch.float32), tau=1.0, window=3)
    assert labels.max().item() + 1 == len(np.unique(blocks))
    np.testing.assert_array_equal(canonical(labels.numpy()), canonical(blocks))


def test_identical_rows_give_one_cluster_with_that_centroid():
    row = torch.tensor([3.0, 1.0, 0.0, 4.0])
    attention = row.expand(5, 6, 4).clone()
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 5, 1.0, 3)
    assert torch.equal(result.labels, torch.zeros(5, 6, dtype=torch.int64))
    torch.testing.assert_close(result.centroids, (row / 8).double()[None], rtol=1e-14, atol=0.0)


def test_threshold_is_inclusive():
    pair = torch.tensor([[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]], dtype=torch.float64)  # T=1, N=2
    computed = symmetric_kl(pair[0], pair[0])[0, 1].item()  # the very value the clustering compares
    assert computed == pytest.approx(0.5 * math.log(2), rel=1e-14)
    for tau in (computed, 0.5 * math.log(2) * (1 + 1e-12)):  # at tau (up to rounding): one cluster
        assert hierarchical_cluster(pair, tau=tau).tolist() == [[0, 0]]
    for tau in (computed * (1 - 1e-9), 0.5 * math.log(2) * 0.999):  # just below the distance: two
        assert hierarchical_cluster(pair, tau=tau).tolist() == [[0, 1]]


def test_threshold_is_inclusive_in_each_step():
    # In the test above either step alone would join the pair; here each step is tested alone.
    a, b = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]], dtype=torch.float64)
    pair = torch.stack([a, b])
    at_tau = symmetric_kl(pair, pair)[0, 1].item()
    # neighbourhood averaging: at tau both rows become their mean, just below they stay as they are
    averaged = _neighbourhood_average(rows32(pair), at_tau)  # one distinct average, twice
    torch.testing.assert_close(averaged.rows, ((a + b) / 2)[None], rtol=1e-15, atol=0.0)
    assert averaged.counts.tolist() == [2] and averaged.of_row.tolist() == [0, 0]
    apart = _neighbourhood_average(rows32(pair), at_tau * (1 - 1e-9))
    torch.testing.assert_close(apart.rows[apart.of_row], pair, rtol=0.0, atol=0.0)
    # greedy grouping alone: one row per frame and window=1 make the averaging a no-op, so only the
    # next-hierarchy grouping of the two window centroids a and b can join them
    frames = pair[:, None, :]  # T=2, N=1, K=3
    assert hierarchical_cluster(frames, tau=at_tau, window=1).tolist() == [[0], [0]]
    assert hierarchical_cluster(frames, tau=at_tau * (1 - 1e-9), window=1).tolist() == [[0], [1]]


def test_tiny_tau_keeps_every_row_apart():
    # d(x, x) computed by matrix products is a rounding error of either sign (~1e-15); a row must
    # still count as its own neighbour and group member, or its average would be 0/0.
    rng = np.random.default_rng(8)
    attention = torch.tensor(rng.dirichlet(np.ones(50), size=(4, 10)))
    diagonal = torch.diagonal(symmetric_kl(attention[:3].reshape(-1, 50), attention[:3].reshape(-1, 50)))
    assert (diagonal > 1e-300).any()  # the case this test is about does occur
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 4, tau=1e-300, window=3)
    assert torch.equal(result.labels, torch.arange(40).view(4, 10))
    torch.testing.assert_close(result.centroids, attention.reshape(40, 50), rtol=1e-14, atol=0.0)


def test_next_hierarchies_repeat_until_stable():
    # Bernoulli maps [q, 1-q]: d = (q1 - q2)(logit q1 - logit q2). With tau = 0.35:
    # d(.5, .7) = .169 and d(.7, .85) = .133 join, d(.5, .85) = .607 does not, so the first round
    # gives {.5, .7} -> mean .6 and {.85}; d(.6, .85) = .332 joins them in the second round.
    q = torch.tensor([0.5, 0.7, 0.85], dtype=torch.float64)
    attention = torch.stack([q, 1 - q], dim=-1)[:, None, :]  # T=3 frames, N=1, K=2
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 3, tau=0.35, window=1)
    assert result.labels.tolist() == [[0], [0], [0]]
    torch.testing.assert_close(result.centroids, torch.tensor([[0.725, 0.275]], dtype=torch.float64))
    # with a threshold below .332 the second round cannot merge: .5 and .7 stay together, .85 alone
    assert hierarchical_cluster(attention, tau=0.3, window=1).tolist() == [[0], [0], [1]]


def test_attention_that_requires_grad_and_other_float_dtypes():
    attention, _ = structured_attention(4, 6, 9, 3, 20.0, 12)
    expected = hierarchical_cluster(attention, 0.6)
    leaf = attention.clone().requires_grad_()
    result = cluster_streaming(lambda t0, t1: leaf[t0:t1], 4, 0.6)
    assert not result.centroids.requires_grad and torch.equal(result.labels, expected)
    # every dtype is converted to float64 before any distance: float32 -> float64 is exact
    assert torch.equal(hierarchical_cluster(attention.double(), 0.6), expected)
    for half in (torch.float16, torch.bfloat16):  # the same as their exact float32 values
        rounded = attention.to(half)
        assert torch.equal(hierarchical_cluster(rounded, 0.6), hierarchical_cluster(rounded.float(), 0.6))


def test_single_key_gives_one_cluster():
    attention = torch.rand(4, 5, 1) + 0.1  # K = 1: every map is the distribution [1]
    assert torch.equal(hierarchical_cluster(attention), torch.zeros(4, 5, dtype=torch.int64))


def test_single_frame_and_partial_last_window_match_reference():
    for num_frames, window in ((1, 3), (7, 3), (5, 4)):
        attention, _ = structured_attention(num_frames, 6, 9, 3, 20.0, 10 + num_frames)
        ref_labels, _ = ref_cluster(attention.double().numpy(), 0.6, window)
        np.testing.assert_array_equal(hierarchical_cluster(attention, 0.6, window).numpy(), ref_labels)


def test_unused_centroids_are_dropped_and_ids_follow_centroid_order():
    # Centroids lie within tau of their members, so with the same attention in both passes an
    # empty centroid is rare (none in 20,000 random small cases). A window_attention whose second
    # (assignment) pass differs from the first isolates the dropping and renumbering step.
    a, b, c = torch.eye(3, dtype=torch.float64)  # pairwise d ~ 46 >> tau: three centroids a, b, c
    first, second = torch.stack([a, b, c])[None], torch.stack([c, a, c])[None]  # T=1, N=3
    calls = []

    def window_attention(t0, t1):
        calls.append((t0, t1))
        return first if len(calls) == 1 else second

    result = cluster_streaming(window_attention, 1, tau=1.0, window=3)
    assert result.labels.tolist() == [[1, 0, 1]]  # centroid b is dropped; a -> 0, c -> 1
    torch.testing.assert_close(result.centroids, torch.stack([a, c]))


def test_every_patch_is_at_its_nearest_returned_centroid():
    attention, _ = structured_attention(6, 7, 8, 4, 10.0, 3)
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 6, 1.5, 2)
    assert torch.equal(torch.unique(result.labels), torch.arange(result.centroids.shape[0]))
    rows = (attention / attention.sum(-1, keepdim=True)).reshape(-1, 8).double()
    assert torch.equal(symmetric_kl(rows, result.centroids).argmin(1), result.labels.reshape(-1))


# ---------------------------------------------------------------- streaming API

def test_streaming_calls_each_window_twice_in_order():
    attention, _ = structured_attention(7, 5, 6, 2, 20.0, 4)
    calls = []

    def window_attention(t0, t1):
        calls.append((t0, t1))
        return attention[t0:t1].clone()

    result = cluster_streaming(window_attention, 7, tau=0.8, window=3, threads=1)
    assert isinstance(result, ClusterResult)
    assert calls == [(0, 3), (3, 6), (6, 7)] * 2
    assert torch.equal(result.labels, hierarchical_cluster(attention, 0.8, 3))
    assert result.centroids.shape == (result.labels.max().item() + 1, 6)
    np.testing.assert_allclose(result.centroids.sum(1).numpy(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("threads", [2, 3])
def test_streaming_in_worker_threads_gives_the_one_thread_result(threads):
    attention, _ = structured_attention(14, 9, 12, 4, 20.0, 8)
    calls = []

    def window_attention(t0, t1):
        calls.append(((t0, t1), threading.current_thread().name))
        return attention[t0:t1].clone()

    torch_threads = torch.get_num_threads()
    alone = cluster_streaming(window_attention, 14, tau=0.6, window=2, threads=1)
    assert {name for _, name in calls} == {threading.current_thread().name}
    calls.clear()
    workers = cluster_streaming(window_attention, 14, tau=0.6, window=2, threads=threads)
    assert alone.labels.max() >= 3
    assert torch.equal(workers.labels, alone.labels)
    assert torch.equal(workers.centroids, alone.centroids)
    spans = [(t0, t0 + 2) for t0 in range(0, 14, 2)]
    # each pass asks for every window once, the first pass before the assignment
    assert sorted(span for span, _ in calls[:7]) == spans and sorted(span for span, _ in calls[7:]) == spans
    # every window but the first (which groups the keys) came from the workers
    assert calls[0][1] == threading.current_thread().name
    assert {name for _, name in calls[1:]} <= {f"vos-window_{i}" for i in range(threads)}
    assert len({name for _, name in calls[1:]}) >= 2
    assert torch.get_num_threads() == torch_threads


def test_error_in_a_worker_window_is_raised_and_threads_are_restored():
    attention = attention_with((12, 3, 4), (7, 2, 1), float("nan"))
    torch_threads = torch.get_num_threads()
    with pytest.raises(UserError, match="frames 6..8: patch 2 of frame 7 has a non-finite"):
        cluster_streaming(lambda t0, t1: attention[t0:t1], 12, window=3, threads=2)
    assert torch.get_num_threads() == torch_threads


def test_streaming_rejects_inconsistent_windows():
    with pytest.raises(UserError, match=r"frames 3\.\.5.*\(6, 4\).*\(5, 4\)"):
        cluster_streaming(lambda t0, t1: torch.rand(t1 - t0, 5 if t0 == 0 else 6, 4), 6)
    with pytest.raises(UserError, match=r"expected shape \(3, patches, keys\)"):
        cluster_streaming(lambda t0, t1: torch.rand(2, 5, 4), 6)
    with pytest.raises(UserError, match="float tensor"):
        cluster_streaming(lambda t0, t1: np.ones((t1 - t0, 5, 4)), 6)


# ---------------------------------------------------------------- bad input

def attention_with(shape, index, value):
    """Valid attention (all entries in [0.5, 1)) of this shape with ``value`` written at ``index``."""
    attention = 0.5 + 0.5 * torch.rand(shape, generator=torch.Generator().manual_seed(0))
    attention[index] = value
    return attention


@pytest.mark.parametrize("attention, kwargs, message", [
    (torch.rand(4, 5), {}, r"\(frames, patches, keys\)"),
    ([[[1.0]]], {}, r"\(frames, patches, keys\)"),
    (torch.rand(0, 5, 4), {}, "0 frames"),
    (torch.rand(2, 5, 0), {}, "0 keys"),
    (torch.rand(2, 0, 4), {}, "0 patches"),
    (torch.ones(2, 3, 4, dtype=torch.int64), {}, "float tensor"),
    (attention_with((2, 3, 4), (1, 2, 0), float("nan")), {}, "patch 2 of frame 1 has a non-finite"),
    (attention_with((2, 3, 4), (0, 1, 3), float("inf")), {}, "patch 1 of frame 0 has a non-finite"),
    (attention_with((5, 3, 4), (4, 0, 1), -0.1), {}, "patch 0 of frame 4 has a negative"),
    (attention_with((2, 3, 4), (1, 1), 0.0), {}, "patch 1 of frame 1 has an all-zero"),
    (torch.rand(2, 3, 4), {"tau": 0.0}, "tau"),
    (torch.rand(2, 3, 4), {"tau": -1.0}, "tau"),
    (torch.rand(2, 3, 4), {"tau": float("nan")}, "tau"),
    (torch.rand(2, 3, 4), {"tau": float("inf")}, "tau"),
    (torch.rand(2, 3, 4), {"window": 0}, "window"),
    (torch.rand(2, 3, 4), {"window": 1.5}, "window"),
])
def test_bad_input_raises_vos_error(attention, kwargs, message):
    with pytest.raises(UserError, match=message):
        hierarchical_cluster(attention, **kwargs)


def test_streaming_rejects_bad_frame_count_and_chunk():
    with pytest.raises(UserError, match="num_frames"):
        cluster_streaming(lambda t0, t1: torch.rand(t1 - t0, 2, 2), 0)
    with pytest.raises(UserError, match="chunk_rows"):
        cluster_streaming(lambda t0, t1: torch.rand(t1 - t0, 2, 2), 3, chunk_rows=0)
    for threads in (0, 1.5, True):
        with pytest.raises(UserError, match="threads must be an integer >= 1"):
            cluster_streaming(lambda t0, t1: torch.rand(t1 - t0, 2, 2), 3, threads=threads)
