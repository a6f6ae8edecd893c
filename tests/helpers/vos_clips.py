"""Small synthetic inputs for the segmentation tests: clips with a moving square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY = ["--backbone", "test_vit_tiny16", "--weights", "random"]


def moving_square_frames(frames: int = 8, size: tuple[int, int] = (96, 128), seed: int = 0) -> np.ndarray:
    """uint8 RGB (T, H, W, 3): a red square moving right over a noisy green background."""
    rng = np.random.default_rng(seed)
    H, W = size
    video = np.empty((frames, H, W, 3), np.uint8)
    for t in range(frames):
        frame = np.full((H, W, 3), (40, 110, 40), np.int16) + rng.integers(0, 30, (H, W, 3))
        top, left = H // 4, W // 8 + 3 * t
        frame[top:top + H // 2, left:left + H // 2] = (220, 40, 30)
        video[t] = frame.clip(0, 255)
    return video


def write_mp4(path: Path, video: np.ndarray, fps: float = 10) -> Path:
    from vos.infra.video_writer import VideoWriter

    with VideoWriter(path, fps=fps) as writer:
        for frame in video:
            writer.write(frame)
    return path


def write_frame_folder(folder: Path, video: np.ndarray, mode: str = "RGB", suffix: str = ".jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video):
        image = Image.fromarray(frame).convert(mode)
        image.save(folder / f"{t:05d}{suffix}", quality=95) if suffix == ".jpg" else image.save(folder / f"{t:05d}{suffix}")
    return folder
