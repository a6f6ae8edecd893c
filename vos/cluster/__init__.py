"""Hierarchical clustering of per-patch attention maps into object clusters.

Every query patch of every frame has an attention map: a distribution over K key patches.
Patches whose maps are close in symmetric KL divergence belong to the same object. The package
(see ``docs/cluster.md``):

* :mod:`vos.cluster.reference`: the algorithm, in plain device-agnostic torch; read it first;
* :mod:`vos.cluster.fast` (with :mod:`vos.cluster.kl_search` and :mod:`vos.cluster.window_workers`):
  the CPU fast path, the same partition and centroids with float64 decisions at float32 cost;
* :mod:`vos.cluster.settings`: the fast path's tunables, one frozen :class:`ClusterSettings`.

:func:`cluster_streaming` and :func:`hierarchical_cluster` choose the path by device: the
reference on a GPU (or any non-CPU device), the fast path on the CPU.
"""

from __future__ import annotations

import torch

from vos.cluster import fast, reference
from vos.cluster.checks import WindowAttention, check_arguments, check_row_sums, checked_window
from vos.cluster.fast import ClusterResult
from vos.cluster.kl_search import symmetric_kl
from vos.cluster.reference import PROB_EPS
from vos.cluster.settings import DEFAULT_SETTINGS, ClusterSettings
from vos.infra.errors import UserError

__all__ = ["DEFAULT_SETTINGS", "PROB_EPS", "ClusterResult", "ClusterSettings", "WindowAttention", "cluster_streaming",
           "hierarchical_cluster", "symmetric_kl"]


def _runs_fast_path(device: torch.device) -> bool:
    """The CPU fast path for the CPU; the reference (plain torch) anywhere else."""
    return device.type == "cpu"


def _with_first_window(first: torch.Tensor, window_attention: WindowAttention) -> WindowAttention:
    """``window_attention`` whose first call of window 0 returns ``first`` (fetched already to see
    its device), so that every window is still fetched exactly twice."""
    pending = [first]

    def fetch(t0: int, t1: int) -> torch.Tensor:
        if t0 == 0 and pending:
            return pending.pop()
        return window_attention(t0, t1)

    return fetch


@torch.no_grad()  # clustering is not differentiable; never build a graph over the attention
def cluster_streaming(window_attention: WindowAttention, num_frames: int, tau: float = 1.0, window: int = 3, *,
                      chunk_rows: int | None = None, threads: int | None = None,
                      device: torch.device | str | None = None,
                      settings: ClusterSettings = DEFAULT_SETTINGS) -> ClusterResult:
    """Cluster the attention maps of a video fetched one temporal window at a time.

    ``window_attention(t0, t1)`` returns the (t1-t0, N, K) attention of frames t0..t1-1
    (non-negative rows, L1-normalised here). It is called twice per window, (0, w), (w, 2w), ...,
    (.., T): once for the first hierarchy and once for the assignment (2 * ceil(T / window) calls).
    ``tau``: distance threshold (``d <= tau`` joins); ``window``: frames per first-hierarchy window.

    ``device``: where to cluster; default the device of the first window's attention. On the CPU
    the fast path runs (:func:`vos.cluster.fast.cluster_streaming`: ``chunk_rows``, ``threads``
    and ``settings`` apply; with several threads it sets torch's and BLAS's process-wide thread
    counts while it runs and restores them). On any other device (a GPU) the reference runs there
    (:func:`vos.cluster.reference.cluster_windows`, which holds a window's M x M distances; those
    arguments are ignored) and the labels and centroids are on that device.
    Returns labels (T N int64, ids 0..C-1) and centroids (C K float64; centroid c of id c): the
    same on either path.
    """
    tau = check_arguments(num_frames, tau, window, chunk_rows, threads)
    if device is None:
        first = window_attention(0, min(window, num_frames))
        device = first.device if isinstance(first, torch.Tensor) else "cpu"  # not a tensor: the check says so
        window_attention = _with_first_window(first, window_attention)
    device = torch.device(device)
    if _runs_fast_path(device):
        return fast.cluster_streaming(window_attention, num_frames, tau, window, chunk_rows=chunk_rows,
                                      threads=threads, settings=settings)
    known: list[tuple[int, int]] = []  # (N, K) of the first window

    def checked_on_device(t0: int, t1: int) -> torch.Tensor:
        attention = checked_window(window_attention, t0, t1, known[0] if known else None)
        known[:] = [tuple(attention.shape[1:])]
        check_row_sums(attention.sum(-1, dtype=torch.float64).reshape(-1), t0, attention.shape[1])
        return attention.to(device)

    labels, centroids = reference.cluster_windows(checked_on_device, num_frames, tau, window)
    return ClusterResult(labels=labels, centroids=centroids)


def hierarchical_cluster(attention: torch.Tensor, tau: float = 1.0, window: int = 3, *, threads: int | None = None,
                         settings: ClusterSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """Cluster attention maps ``attention`` (T N K, float, any device) into labels (T N int64,
    ids 0..C-1), on the attention's device: :func:`cluster_streaming` with the windows sliced
    from the tensor."""
    if not isinstance(attention, torch.Tensor) or attention.ndim != 3:
        shape = tuple(attention.shape) if isinstance(attention, torch.Tensor) else type(attention).__name__
        raise UserError(f"attention must be a (frames, patches, keys) tensor, got {shape}")
    if attention.shape[0] == 0:
        raise UserError("attention has 0 frames; need at least one frame to cluster")
    return cluster_streaming(lambda t0, t1: attention[t0:t1], attention.shape[0], tau, window, threads=threads,
                             device=attention.device, settings=settings).labels
