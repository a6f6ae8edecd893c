"""Tiny training data and configs for the `vos train` tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vos.infra.config import load_config
from vos.train.config import TrainConfig

SIZE = (64, 80)  # H W: a 4x5 grid of 16-px patches for the test backbone


def make_frame_folders(root: Path, videos: int = 3, frames: int = 8, seed: int = 0) -> Path:
    """``root/vid_k/00000.jpg …``: a coloured square moving over a noisy background."""
    rng = np.random.default_rng(seed)
    H, W = SIZE
    for v in range(videos):
        folder = root / f"vid_{v}"
        folder.mkdir(parents=True)
        background = rng.integers(0, 90, (H, W, 3), dtype=np.uint8)
        colour = rng.integers(150, 256, 3, dtype=np.uint8)
        y, x = rng.integers(0, H - 24), rng.integers(0, W - 40)
        for t in range(frames):
            img = background.copy()
            img[y:y + 24, x + 2 * t:x + 2 * t + 24] = colour
            Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return root


def tiny_config(data: Path, out: Path, **overrides) -> TrainConfig:
    """The test backbone on SIZE frames, k-counts scaled to its 20 patches per frame."""
    values = {
        "data": str(data), "out": str(out), "backbone": "test_vit_tiny16", "weights": "random",
        "resolution": list(SIZE), "frames": 3, "gap": 2, "iterations": 6, "checkpoint_every": 3, "log_every": 1,
        "optim.lr": 1e-3, "optim.min_lr": 1e-4, "loss.queries": 4,
        "loss.semantic.positives": 3, "loss.semantic.negatives": 8,
        "loss.motion.positives": 2, "loss.motion.negatives": 6, "device": "cpu",
    }
    values.update(overrides)
    return load_config(TrainConfig, None, values)


def read_log(out: Path) -> list[dict]:
    import csv

    with (Path(out) / "log.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
