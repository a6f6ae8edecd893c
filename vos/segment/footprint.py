"""The full mode's memory, estimated before a video is decoded, and the check that refuses a run
that cannot fit (``--compat ssl-uvos`` runs the full mode at any length, as the release does).

The full mode holds every frame's queries and the key frames' keys, keeps the first clustering
pass's window attention for the second pass (``--attention-cache-mib``), and clusters windows of
``window`` frames, each (window·N)×K floats, one per worker thread in flight. Measured on the CPU
path with ViT-S/16 (docs/benchmarks.md#memory-of-the-full-mode), the clustering's working set
is ``WINDOWS_IN_FLIGHT + WINDOWS_PER_WORKER · workers`` window attentions' worth plus
``BYTES_PER_PATCH`` for every patch of the video (what the assignment keeps per row); the
estimate of a run is that plus the queries, keys and attention cache, on top of what the process
holds once the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vos.infra.errors import UserError

FLOAT_BYTES = 4
# The clustering's working set, fitted (least squares) to the peaks of seven full-mode runs: T = 25,
# 50, 100 at 320×480 with one and two threads, T = 200 at 240×320 with two; the estimates are within
# 1% of the measured peaks from T = 50 on, 7–8% (25 MiB) below them at T = 25.
WINDOWS_IN_FLIGHT = 0.4  # window attentions (window·N·K floats)
WINDOWS_PER_WORKER = 3.5
BYTES_PER_PATCH = 7532  # per patch of every frame
# What the estimate must leave free of the available memory (other programs, the page cache).
HEADROOM = 0.9


@dataclass(frozen=True)
class FullModeShape:
    frames: int  # T
    patches: int  # N, per frame
    keys: int  # K, patches of all key frames
    channels: int  # C, query/key channels (all heads)
    window: int  # frames per clustering window
    workers: int  # clustering windows in flight at once (vos.cluster.window_workers)
    cache_bytes: int  # --attention-cache-mib


def full_mode_bytes(shape: FullModeShape) -> int:
    """Estimated memory (bytes) of a full-mode segmentation beyond the loaded model."""
    T, N, K = shape.frames, shape.patches, shape.keys
    window_attention = min(shape.window, T) * N * K * FLOAT_BYTES  # one window's (window·N)×K floats
    queries = T * N * shape.channels * FLOAT_BYTES
    keys = K * shape.channels * FLOAT_BYTES
    # the first pass's attention of every window (the last may be shorter) as far as the budget goes
    cache = min(shape.cache_bytes, T * N * K * FLOAT_BYTES)
    clustering = (WINDOWS_IN_FLIGHT + WINDOWS_PER_WORKER * shape.workers) * window_attention + BYTES_PER_PATCH * T * N
    return int(queries + keys + cache + clustering)


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (memory that can be used without swapping); None elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_full_mode_fits(shape: FullModeShape, frames_that_fit, where: str, available: int | None) -> None:
    """A one-line UserError when the full mode's estimate exceeds ``HEADROOM`` of ``available``
    bytes (None: unknown, no check), naming the flags that avoid it. ``frames_that_fit(T)`` gives the
    shape of a T-frame run, to say how many frames would fit."""
    if available is None:
        return
    need = full_mode_bytes(shape)
    budget = HEADROOM * available
    if need <= budget:
        return
    low, high = 0, shape.frames  # the longest run that fits: full_mode_bytes grows with T
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if full_mode_bytes(frames_that_fit(mid)) <= budget else (low, mid - 1)
    fits = f"--max-frames {low} fits" if low else "no length fits"
    raise UserError(f"{where}: the full mode (every frame attends to the key frames of the whole video) needs about "
                    f"{need / 2 ** 30:.1f} GiB for {shape.frames} frames, {available / 2 ** 30:.1f} GiB is available; "
                    f"use --mode chunked (memory independent of the length; with --compat, not the release's "
                    f"whole-video clustering), or {fits}")
