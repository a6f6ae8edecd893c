"""Settings of `vos segment` (importable without torch) and the rule for the backbone input size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from vos.compat import conventions
from vos.errors import VosError

DEFAULT_BACKBONE = "dino_vits16"  # without --backbone and without a --block file that names one
SEGMENT_MODES = ("auto", "full", "chunked")

# H W of the backbone input for landscape videos: the DAVIS protocol of the reference inference.
DEFAULT_RESOLUTION = (320, 480)
# Width/height from which a video counts as landscape (height/width: portrait); 4:3, 16:9 and the
# wider DAVIS sequences (854x480, 910x480, 1152x480) are all landscape.
LANDSCAPE_ASPECT = 4 / 3


# Largest backbone input accepted. The ViT's attention per frame grows with the square of the patch
# count: at 2048x2048 (16384 patches of 16 px) one frame's attention maps already take 6 GB (6 heads,
# float32), so larger inputs can only run out of memory.
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = 2048 * 2048


def check_resolution(resolution: tuple[int, int]) -> None:
    """A one-line error for a backbone input size (H, W) that is not positive or exceeds the bounds above."""
    if len(resolution) != 2 or min(resolution) < 1:
        raise VosError(f"--resolution takes two positive sizes H W, got {tuple(resolution)}")
    h, w = resolution
    if max(h, w) > MAX_INPUT_SIDE or h * w > MAX_INPUT_PIXELS:
        raise VosError(f"--resolution {h} {w} is too large: at most {MAX_INPUT_SIDE} pixels a side and "
                       f"{MAX_INPUT_PIXELS} pixels in all (e.g. 2048 2048; the backbone's memory grows with the "
                       "square of the pixel count); the default for landscape videos, 320 480, is the DAVIS setting")


def input_resolution(frame_height: int, frame_width: int,
                     resolution: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """Backbone input (H, W) for frames of ``frame_height`` x ``frame_width`` (before rounding to
    the patch size).

    An explicit ``resolution`` is used as given. Otherwise: landscape frames (width/height >= 4/3)
    get ``DEFAULT_RESOLUTION`` (320, 480) exactly as the DAVIS protocol does; portrait frames
    (height/width >= 4/3) get it transposed, (480, 320); frames in between (near square) keep their
    aspect ratio at the same pixel count, 320 * 480.
    """
    if resolution is not None:
        return int(resolution[0]), int(resolution[1])
    if frame_height < 1 or frame_width < 1:
        raise VosError(f"frame size {frame_height}x{frame_width} has no pixels")
    height, width = DEFAULT_RESOLUTION
    if frame_width >= LANDSCAPE_ASPECT * frame_height:
        return height, width
    if frame_height >= LANDSCAPE_ASPECT * frame_width:
        return width, height
    scale = math.sqrt(height * width / (frame_height * frame_width))
    return round(frame_height * scale), round(frame_width * scale)


def describe_resolution(resolution: Optional[tuple[int, int]]) -> str:
    """The input size rule in a few words, for the run's header line."""
    if resolution is not None:
        return f"{resolution[0]}x{resolution[1]}"
    height, width = DEFAULT_RESOLUTION
    return f"{height}x{width} landscape, {width}x{height} portrait, aspect kept when near square"


@dataclass
class SegmentConfig:
    backbone: Optional[str] = None  # None: the block checkpoint's backbone, else DEFAULT_BACKBONE
    weights: Optional[str] = None  # None: official (download/cache), "random", or a file
    block: Optional[str] = None  # trained block checkpoint; None: training-free mode
    # H W fed to the backbone (rounded to the patch size); None: per video, by input_resolution
    resolution: Optional[tuple[int, int]] = None
    key_every: int = 10  # every key_every-th frame provides keys
    tau: float = 1.0  # clustering threshold (symmetric KL)
    window: int = 3  # frames per first-hierarchy window
    max_objects: int = 20
    stride: int = 1
    max_frames: Optional[int] = None
    batch_frames: int = 8  # frames per backbone forward pass (bounds activation memory)
    attention_cache_mib: int = 1024  # first-pass window attention kept for the assignment pass
    compat: Optional[str] = None  # "ssl-uvos": the release's inference conventions (vos.compat)
    mode: str = "auto"  # "full": keys from the whole video; "chunked": see chunk_frames; "auto": see full_max_frames
    full_max_frames: int = 120  # auto: full mode up to this many frames (DAVIS-2017 val: at most 104), chunked above
    chunk_frames: int = 30  # chunked: frames per chunk (its key frames: every key_every-th from its start)
    link_similarity: float = 0.5  # chunked: cosine similarity from which a chunk's object is a known object

    def validate(self) -> None:
        if self.mode not in SEGMENT_MODES:
            raise VosError(f"--mode must be one of {', '.join(SEGMENT_MODES)}, got {self.mode!r}")
        if not -1 <= self.link_similarity <= 1:
            raise VosError(f"--link-similarity is a cosine similarity in -1..1, got {self.link_similarity}")
        for name in ("key_every", "window", "stride", "batch_frames", "full_max_frames", "chunk_frames"):
            if getattr(self, name) < 1:
                raise VosError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.attention_cache_mib < 0:
            raise VosError(f"--attention-cache-mib must be >= 0, got {self.attention_cache_mib}")
        if self.max_frames is not None and self.max_frames < 1:
            raise VosError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.resolution is not None:
            check_resolution(tuple(self.resolution))
        if not self.tau > 0:
            raise VosError(f"--tau must be > 0, got {self.tau}")
        conventions(self.compat)  # an unknown mode is an error
