"""Tests of vos.cluster.reference, the plain torch statement of the algorithm: it follows the loop
specification (ids and centroids), the CPU fast path gives its partition, and vos.cluster runs it
on any device other than the CPU (the meta device stands in for a GPU)."""

import numpy as np
import pytest
import torch

import vos.cluster
import vos.cluster.fast
import vos.cluster.reference
from tests.helpers.cluster_oracle import ref_cluster, structured_attention
from vos.cluster import cluster_streaming, hierarchical_cluster
from vos.infra.errors import UserError


@pytest.mark.parametrize("seed, concentration, tau, window", [
    (0, 20.0, 0.5, 2),
    (1, 20.0, 1.0, 3),
    (2, 50.0, 0.5, 1),
    (4, 8.0, 2.0, 3),
])
def test_reference_implementation_follows_the_loop_spec(seed, concentration, tau, window):
    attention, _ = structured_attention(5, 8, 12, 3, concentration, seed)
    ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), tau, window)
    assert 2 <= ref_labels.max() + 1 < ref_labels.size
    labels, centroids = vos.cluster.reference.cluster_windows(lambda t0, t1: attention[t0:t1], 5, tau, window)
    np.testing.assert_array_equal(labels.numpy(), ref_labels)  # the same ids, not only the partition
    np.testing.assert_allclose(centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("seed, num_objects, concentration, tau, window", [
    (21, 4, 50.0, 1.5, 3),  # 8 clusters
    (22, 6, 60.0, 1.2, 2),  # 20
    (23, 3, 100.0, 0.7, 3),  # 22
])
def test_fast_path_gives_the_reference_partition(seed, num_objects, concentration, tau, window):
    # larger than the loop reference affords: 9 frames x 40 patches over 64 keys
    attention, _ = structured_attention(9, 40, 64, num_objects, concentration, seed)
    ref_labels, ref_centroids = vos.cluster.reference.cluster_windows(lambda t0, t1: attention[t0:t1], 9, tau, window)
    assert 2 <= ref_labels.max() + 1 < ref_labels.numel()
    result = cluster_streaming(lambda t0, t1: attention[t0:t1], 9, tau, window)
    assert torch.equal(result.labels, ref_labels)
    torch.testing.assert_close(result.centroids, ref_centroids, rtol=1e-10, atol=1e-13)
    assert torch.equal(vos.cluster.reference.hierarchical_cluster(attention, tau, window), ref_labels)


def reference_run_on_the_cpu(monkeypatch, attention):
    """Make vos.cluster.reference.cluster_windows compute on the CPU attention ``attention``
    whatever device its windows arrive on (a meta tensor has no values); returns the devices they
    arrived on."""
    devices = []
    original = vos.cluster.reference.cluster_windows

    def on_the_cpu(window_attention, num_frames, tau, window):
        def window_on_cpu(t0, t1):
            devices.append(window_attention(t0, t1).device)  # checked and moved by vos.cluster
            return attention[t0:t1]
        return original(window_on_cpu, num_frames, tau, window)

    monkeypatch.setattr(vos.cluster.reference, "cluster_windows", on_the_cpu)
    return devices


def test_a_non_cpu_device_runs_the_reference_there(monkeypatch):
    """cluster_streaming(device=...) off the CPU hands the reference its windows on that device
    (the meta device stands in for a GPU here); the CPU runs the fast path."""
    attention, _ = structured_attention(7, 40, 64, 4, 50.0, 21)
    fast_calls = []
    original_fast = vos.cluster.fast.cluster_streaming
    monkeypatch.setattr(vos.cluster.fast, "cluster_streaming",
                        lambda *a, **k: fast_calls.append(1) or original_fast(*a, **k))
    devices = reference_run_on_the_cpu(monkeypatch, attention)
    on_cpu = cluster_streaming(lambda t0, t1: attention[t0:t1], 7, 1.5, 3)
    assert fast_calls == [1] and not devices
    off_cpu = cluster_streaming(lambda t0, t1: attention[t0:t1], 7, 1.5, 3, device="meta")
    assert fast_calls == [1] and set(devices) == {torch.device("meta")} and len(devices) == 6
    assert on_cpu.labels.max() >= 3
    assert torch.equal(off_cpu.labels, on_cpu.labels)
    torch.testing.assert_close(off_cpu.centroids, on_cpu.centroids, rtol=1e-10, atol=1e-13)


def test_the_device_of_the_first_window_chooses_the_path(monkeypatch):
    """Without ``device``, the first window's device decides, and that window is not fetched again."""
    attention, _ = structured_attention(5, 8, 12, 3, 20.0, 0)
    monkeypatch.setattr(vos.cluster, "_runs_fast_path", lambda device: device.type == "meta")  # the CPU as a GPU
    devices = reference_run_on_the_cpu(monkeypatch, attention)
    calls = []

    def window_attention(t0, t1):
        calls.append((t0, t1))
        return attention[t0:t1]

    result = cluster_streaming(window_attention, 5, 0.5, 2)
    assert calls == [(0, 2), (2, 4), (4, 5)] * 2 and len(devices) == 6
    ref_labels, ref_centroids = ref_cluster(attention.double().numpy(), 0.5, 2)
    np.testing.assert_array_equal(result.labels.numpy(), ref_labels)
    np.testing.assert_allclose(result.centroids.numpy(), ref_centroids, rtol=1e-10, atol=1e-13)
    assert torch.equal(hierarchical_cluster(attention, 0.5, 2), result.labels)


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "patch 2 of frame 4 has a non-finite value"),
    (-1.0, "patch 2 of frame 4 has a negative value"),
    (0.0, "patch 2 of frame 4 has an all-zero attention map"),
])
def test_the_reference_path_checks_its_input(monkeypatch, bad, message):
    attention = torch.rand(6, 3, 4)
    attention[4, 2] = bad if bad != 0.0 else 0.0
    reference_run_on_the_cpu(monkeypatch, attention)
    with pytest.raises(UserError, match=message):
        cluster_streaming(lambda t0, t1: attention[t0:t1], 6, device="meta")
