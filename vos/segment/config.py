"""Settings of `vos segment` (importable without torch) and the rule for the backbone input size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from vos.segment.conventions import COMPAT_MODES, conventions
from vos.infra.config_flags import config_field
from vos.infra.errors import UserError
from vos.models import BACKBONE_NAMES, WEIGHTS_DEFAULT_HELP, WEIGHTS_HELP

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
        raise UserError(f"--resolution takes two positive sizes H W, got {tuple(resolution)}")
    h, w = resolution
    if max(h, w) > MAX_INPUT_SIDE or h * w > MAX_INPUT_PIXELS:
        raise UserError(f"--resolution {h} {w} is too large: at most {MAX_INPUT_SIDE} pixels a side and "
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
        raise UserError(f"frame size {frame_height}x{frame_width} has no pixels")
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
    """Settings of `vos segment`; each field is also a flag (vos.infra.config_flags), its help written here.
    Checked when made (:meth:`validate`); a field changed afterwards is not checked again."""

    backbone: Optional[str] = config_field(
        None, help="frozen ViT backbone (DINO, DINOv2, DINOv3; see docs/backbones.md)", choices=BACKBONE_NAMES,
        default_help=f"the --block checkpoint's, else {DEFAULT_BACKBONE}")
    weights: Optional[str] = config_field(
        None, metavar="PATH|random", help=WEIGHTS_HELP, default_help=WEIGHTS_DEFAULT_HELP)
    block: Optional[str] = config_field(
        None, metavar="CKPT",
        help="trained block: a checkpoint from 'vos train', or the SSL-UVOS release (checkpoint_dino-s-8.pth, "
             "whose encoder is also the backbone unless --weights is given)",
        default_help="training-free mode")
    resolution: Optional[tuple[int, int]] = config_field(
        None, metavar=("H", "W"), help="backbone input size, rounded to the patch size, used as given",
        default_help=f"per video, {describe_resolution(None)}; see docs/io.md")
    key_every: int = config_field(10, help="key frame interval")
    tau: float = config_field(1.0, help="clustering threshold (symmetric KL)")
    window: int = config_field(3, help="frames per clustering window")
    max_objects: int = config_field(20, help="object limit")
    stride: int = config_field(1, help="use every STRIDE-th frame")
    max_frames: Optional[int] = config_field(None, help="use at most this many frames per video")
    batch_frames: int = config_field(8, help="frames per backbone pass (bounds activation memory)")
    attention_cache_mib: int = config_field(
        1024, metavar="MIB",
        help="memory for keeping window attention between the clustering and assignment passes instead of "
             "recomputing it; 0 recomputes all")
    compat: Optional[str] = config_field(
        None, choices=COMPAT_MODES,
        help="reproduce a release's inference conventions: 'ssl-uvos' = Kinetics mean/std, key frames "
             "arange(T // k) * k, bilinear resize without antialiasing (docs/ssl_uvos_compat.md)",
        default_help="this toolkit's")
    mode: str = config_field(
        "auto", choices=SEGMENT_MODES,
        help="full: every frame attends to the key frames of the whole video (the reference method; time per "
             "frame grows with the length, memory too); chunked: chunks of --chunk-frames frames, each with its "
             "own key frames, objects linked across chunks (time per frame and memory independent of the "
             "length); auto: full for videos of at most --full-max-frames frames (counted after "
             "--stride/--max-frames), chunked above; with --compat, full at any length")
    # DAVIS-2017 val videos have at most 104 frames: all are segmented in full mode by default
    full_max_frames: int = config_field(
        120, metavar="N",
        help="longest video that --mode auto segments in full mode")
    chunk_frames: int = config_field(
        30, metavar="N", help="frames per chunk in chunked mode")
    link_similarity: float = config_field(
        0.5, metavar="COS",
        help="chunked mode: cosine similarity of object prototypes from which a chunk's object takes an "
             "existing id rather than a new one")

    def __post_init__(self) -> None:
        # the one check of the settings, where they enter the library: every SegmentConfig (from
        # defaults, a --config file and flags, code, or dataclasses.replace) is valid once made
        self.validate()

    def validate(self) -> None:
        """A one-line error for the first setting out of its range."""
        if self.mode not in SEGMENT_MODES:
            raise UserError(f"--mode must be one of {', '.join(SEGMENT_MODES)}, got {self.mode!r}")
        if not -1 <= self.link_similarity <= 1:
            raise UserError(f"--link-similarity is a cosine similarity in -1..1, got {self.link_similarity}")
        for name in ("key_every", "window", "stride", "batch_frames", "full_max_frames", "chunk_frames"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.attention_cache_mib < 0:
            raise UserError(f"--attention-cache-mib must be >= 0, got {self.attention_cache_mib}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.resolution is not None:
            check_resolution(tuple(self.resolution))
        if not self.tau > 0:
            raise UserError(f"--tau must be > 0, got {self.tau}")
        if self.compat is not None:  # None is this toolkit's (checking it would import torch)
            conventions(self.compat)  # an unknown mode is an error
