"""What every video source promises: frames after stride/max_frames selection, in chunks, by index."""

from __future__ import annotations

import abc
import math
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vos.infra.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# Frame folders carry no timing; 24 fps is the usual rate of DAVIS / YouTube-VOS sources.
FRAME_FOLDER_FPS = 24.0


def check_stride(stride: int, max_frames: int | None) -> None:
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise UserError(f"stride must be a positive integer, got {stride!r}")
    if max_frames is not None and (not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
        raise UserError(f"max_frames must be a positive integer or None, got {max_frames!r}")


def check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise UserError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def selected_count(total: int, stride: int, max_frames: int | None) -> int:
    count = math.ceil(total / stride)
    return count if max_frames is None else min(count, max_frames)


def fitting_stride(num_frames: int, clip_frames: int, stride: int) -> int:
    """``stride``, reduced (down to 1) so that a clip of ``clip_frames`` frames taken every
    ``stride`` frames fits in a video of ``num_frames`` frames; a one-frame clip keeps it."""
    if clip_frames <= 1:
        return stride
    return max(1, min(stride, (num_frames - 1) // (clip_frames - 1)))


def warn_short_video(path: Path, decodable: int, announced: int) -> None:
    warnings.warn(f"{path}: only {decodable} of the {announced} frames its header announces can be decoded "
                  f"(cut short or damaged); using those {decodable}", stacklevel=3)


class VideoSource(abc.ABC):
    """Frames of one video after stride/max_frames selection.

    Attributes: ``name`` (file stem or folder name), ``path``, ``backend`` ("torchcodec", "decord",
    "pyav" or "pil"), ``num_frames`` (selected frames), ``height``, ``width``, ``fps`` (rate of the
    selected frames, i.e. source rate / stride), ``stride``, ``frame_names`` (one per selected
    frame: the file stem for frame folders, the zero-padded original index ``00012`` for video
    files, so results can be written with DAVIS file names).
    """

    backend: str

    def __init__(self, path: Path, total_frames: int, height: int, width: int, source_fps: float,
                 stride: int, max_frames: int | None):
        if total_frames <= 0:
            raise UserError(f"{path}: the video has no frames; check the file (re-encode or re-export it)")
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        self.stride = stride
        self.num_frames = selected_count(total_frames, stride, max_frames)
        self.height, self.width = height, width
        self.fps = source_fps / stride
        self.source_indices = np.arange(self.num_frames) * stride  # original index of each frame

    @property
    def frame_names(self) -> list[str]:
        return [f"{i:05d}" for i in self.source_indices]

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, frames={self.num_frames}, size={self.height}x{self.width}, "
                f"fps={self.fps:g}, backend={self.backend!r})")

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Yield consecutive selected frames as uint8 RGB arrays (n, H, W, 3), n <= chunk_size."""
        check_chunk_size(chunk_size)
        for start in range(0, self.num_frames, chunk_size):
            yield self.read_frames(range(start, min(start + chunk_size, self.num_frames)))

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Selected frames ``indices`` (positions after stride) as uint8 RGB (n, H, W, 3)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise UserError(f"{self.path}: frame index {bad[0]} out of range 0..{self.num_frames - 1}")
        if not indices:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        return self._read_source_frames([int(self.source_indices[i]) for i in indices])

    @abc.abstractmethod
    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        """Original frames ``source_indices`` (in the given order) as uint8 RGB (n, H, W, 3)."""

    def _check_shape(self, frames: np.ndarray, where: str) -> np.ndarray:
        if frames.shape[1:] != (self.height, self.width, 3):
            raise UserError(f"{self.path}: {where} decoded as {frames.shape[1:3]}, expected "
                           f"{(self.height, self.width)}; re-encode the video with a fixed frame size")
        return frames
