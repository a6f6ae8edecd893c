"""Small video fixtures for the ssldata tests (data splits, clips, FAME, synth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_video.synth import write_video

LEVEL_STEP = 8  # grey level of frame i is LEVEL0 + LEVEL_STEP * i: the frame index is readable back
LEVEL0 = 16


def index_frames(num_frames: int, height: int = 32, width: int = 32) -> np.ndarray:
    """uint8 (N, H, W, 3) uniform grey frames whose level encodes the frame index."""
    assert LEVEL0 + LEVEL_STEP * (num_frames - 1) <= 255
    levels = LEVEL0 + LEVEL_STEP * np.arange(num_frames)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).astype(np.uint8)


def write_index_video(path: Path, num_frames: int, height: int = 32, width: int = 32) -> Path:
    write_video(Path(path), index_frames(num_frames, height, width))
    return Path(path)


def frame_index_of(level: float) -> int:
    """Inverse of :func:`index_frames` for a decoded (slightly lossy) grey level in 0..255."""
    return int(round((level - LEVEL0) / LEVEL_STEP))


def textured_frames(num_frames: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (N, size, size, 3): one random smooth-ish texture repeated in every frame (a still video)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    frame = np.repeat(np.repeat(small, 4, 0), 4, 1)
    return np.repeat(frame[None], num_frames, 0)
