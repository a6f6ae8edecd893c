"""Clip decoding, temporal sampling, clip-consistent augmentation and the three clip datasets.

A clip is ``frames`` frames taken every ``frame_stride`` frames of the video; datasets return it as
float32 ``(C, T, H, W)`` in [0, 1], *not* normalised (FAME needs [0, 1] colours; call
:func:`normalize_clips` on the batch before the backbone).

Short videos (fewer than ``(frames - 1) * frame_stride + 1`` frames): the stride is first reduced
so that the clip fits, and when even stride 1 does not fit the last frame is repeated (indices are
clamped, never looped: a loop would jump back in time and fake a burst of motion, which FAME's
frame differences would pick up as foreground).

Decoding goes through :mod:`vos.infra.video_reader` (torchcodec where it loads, else decord, else PyAV; PyAV
for frames the first two fail on; one thread per reader, so DataLoader workers provide the
parallelism), with its rules for display rotation and for files cut short.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset

from ssl_video.data.splits import VideoItem
from ssl_video.image_ops import adjust_hue, gaussian_blur
from vos.infra.errors import UserError
from vos.infra.progress import progress_bar
from vos.infra.video_reader import fitting_stride, open_video

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


# ----------------------------------------------------------------------------------------- decoding
class VideoFile:
    """Random access to the frames of one video: ``len(v)`` and ``v.get(indices)`` -> (N, H, W, 3).

    Read through :func:`vos.infra.video_reader.open_video` (``backend="auto"``: torchcodec, else decord,
    else PyAV; one decoder thread, as DataLoader workers are the parallelism), so both packages
    share its rules: frames upright by the display rotation, a file cut short gives the frames that
    decode, with a warning, and frames torchcodec or decord fail on are read with PyAV.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"video {self.path} does not exist")
        self._source = open_video(self.path, threads=1)

    def __len__(self) -> int:
        return self._source.num_frames

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` as uint8 (N, H, W, 3) RGB (each distinct index decoded once)."""
        uniq, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        return self._source.read_frames(uniq.tolist())[inverse]


class _OpenEach(Dataset):
    """Opens video ``i`` (header and frame count, no clip decoding): (error or None, warning texts)."""

    def __init__(self, items: Sequence[VideoItem]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str | None, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                VideoFile(self.items[index].path)
                error = None
            except UserError as exc:
                error = str(exc)
        return error, [str(w.message) for w in caught]


def check_videos(items: Sequence[VideoItem], workers: int = 0, report: bool = True) -> None:
    """Open every video before training (cheap: headers and frame counts, in ``workers`` processes).

    A video that cannot be read is a one-line :class:`UserError` naming it (and the count of bad
    ones) now, instead of a crash when training reaches it. Videos cut short are used with the
    frames that decode and, with ``report``, a warning each (the rule of :func:`vos.infra.video_reader.open_video`).
    """
    # its own generator: the check leaves the global RNG (and so the training run) untouched
    loader = DataLoader(_OpenEach(items), batch_size=None, num_workers=workers, generator=torch.Generator())
    bad = []
    for (error, notes), item in zip(progress_bar(loader, desc="checking videos", unit="video", leave=False,
                                                 disable=not report), items):
        if error is not None:
            bad.append((item.path, error))
        for note in notes if report else ():
            warnings.warn(note, stacklevel=2)
    if bad:
        others = [str(path) for path, _ in bad[1:4]] + (["…"] if len(bad) > 4 else [])
        raise UserError(f"{len(bad)} of {len(items)} videos cannot be read; remove or replace them before training. "
                       f"{bad[0][1]}" + (f" (also: {', '.join(others)})" if others else ""))


# -------------------------------------------------------------------------------- temporal sampling
def clip_indices(num_video_frames: int, frames: int, frame_stride: int, start: int) -> np.ndarray:
    """Frame indices of the clip starting at ``start``, with the short-video rule of the module doc."""
    stride = fitting_stride(num_video_frames, frames, frame_stride)
    return np.minimum(start + stride * np.arange(frames), num_video_frames - 1)


def num_clip_starts(num_video_frames: int, frames: int, frame_stride: int) -> int:
    """How many start frames give a clip that fits (at least 1)."""
    span = (frames - 1) * fitting_stride(num_video_frames, frames, frame_stride) + 1
    return max(1, num_video_frames - span + 1)


def uniform_clip_starts(num_video_frames: int, frames: int, frame_stride: int, num_clips: int) -> np.ndarray:
    """Start frames of ``num_clips`` clips spread uniformly from the first to the last possible start."""
    last = num_clip_starts(num_video_frames, frames, frame_stride) - 1
    return np.floor(np.linspace(0, last, num_clips) + 0.5).astype(np.int64)


# ----------------------------------------------------------------------------- spatial / photometric
def _to_float_tchw(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)


def random_resized_crop(clip: torch.Tensor, crop: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """One crop box (area fraction in ``scale``, aspect in ``ratio``) for all frames of (T, C, H, W)."""
    height, width = clip.shape[-2:]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(*scale))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)))
            left = int(torch.randint(0, width - w + 1, (1,)))
            return TF.resized_crop(clip, top, left, h, w, [crop, crop], antialias=True)
    # Like torchvision: fall back to the largest centred box of admissible aspect.
    return center_resize_crop(clip, crop)


def center_resize_crop(clip: torch.Tensor, crop: int) -> torch.Tensor:
    """Resize the short side of (T, C, H, W) to ``crop``, then take the centre crop x crop."""
    return TF.center_crop(TF.resize(clip, crop, antialias=True), [crop, crop])


COLOR_JITTER_MAGNITUDES = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue (MoCo v2 / FAME)
COLOR_JITTER_P = 0.8


def check_color_options(color_jitter: float, grayscale: float) -> None:
    # hue shifts are in turns and torchvision caps them at 0.5 turn: 0.1 x strength <= 0.5
    if not 0.0 <= color_jitter <= 5.0:
        raise UserError(f"--color-jitter is a strength multiplying the jitter magnitudes (0.4, 0.4, 0.4, 0.1), "
                       f"in [0, 5] (0 = off, 1 = the reference recipe); got {color_jitter}")
    if not 0.0 <= grayscale <= 1.0:
        raise UserError(f"--grayscale is a probability in [0, 1]; got {grayscale}")


def sample_color_jitter(strength: float = 1.0) -> tuple[torch.Tensor, float, list[int]]:
    """One colour-jitter draw: (brightness, contrast, saturation) factors, a hue shift in turns, op order.

    Factors are ``1 + m * strength * u`` with ``u ~ U(-1, 1)`` (floored at 0, as torchvision does), the
    hue shift ``0.1 * strength * u``: SimCLR's strength ``s`` scales all four magnitudes alike.
    """
    u = torch.empty(4).uniform_(-1.0, 1.0)
    magnitudes = torch.tensor(COLOR_JITTER_MAGNITUDES) * strength
    factors = (1.0 + magnitudes[:3] * u[:3]).clamp_min(0.0)
    return factors, float(magnitudes[3] * u[3]), torch.randperm(4).tolist()


def color_augment(clip: torch.Tensor, crop: int, color_jitter: float = 1.0, grayscale: float = 0.2) -> torch.Tensor:
    """FAME/MoCo photometric augmentation with one parameter draw for every frame of (T, 3, H, W).

    Colour jitter of strength ``color_jitter`` (1: magnitudes (0.4, 0.4, 0.4, 0.1), see
    :func:`sample_color_jitter`; 0: off) with p=0.8 in random order, grayscale with probability
    ``grayscale`` (0.2 in the reference recipe), Gaussian blur with kernel int(0.1*crop) made odd and
    sigma U(0.1, 2) p=0.5.
    """
    if color_jitter > 0 and float(torch.rand(1)) < COLOR_JITTER_P:
        factors, hue, order = sample_color_jitter(color_jitter)
        ops = (lambda x: TF.adjust_brightness(x, float(factors[0])),
               lambda x: TF.adjust_contrast(x, float(factors[1])),
               lambda x: TF.adjust_saturation(x, float(factors[2])),
               lambda x: adjust_hue(x, hue))
        for i in order:
            clip = ops[i](clip)
    if grayscale > 0 and float(torch.rand(1)) < grayscale:
        clip = TF.rgb_to_grayscale(clip, num_output_channels=3)
    if float(torch.rand(1)) < 0.5:
        kernel = int(0.1 * crop) // 2 * 2 + 1
        sigma = float(torch.empty(1).uniform_(0.1, 2.0))
        clip = gaussian_blur(clip, kernel, sigma)
    return clip.clamp(0, 1)


def hflip_random(clip: torch.Tensor) -> torch.Tensor:
    return clip.flip(-1) if float(torch.rand(1)) < 0.5 else clip


def normalize_clips(x: torch.Tensor) -> torch.Tensor:
    """Kinetics mean/std over the C axis of (..., C, T, H, W) float clips in [0, 1]."""
    if x.ndim < 4 or x.shape[-4] != 3:
        raise UserError(f"normalize_clips expects (..., 3, T, H, W), got shape {tuple(x.shape)}")
    mean = torch.tensor(KINETICS_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------------------- datasets
def _check_clip_options(frames: int, frame_stride: int, crop: int) -> None:
    if frames < 1:
        raise UserError(f"--frames must be at least 1, got {frames}")
    if frame_stride < 1:
        raise UserError(f"--frame-stride must be at least 1, got {frame_stride}")
    if crop < 8:
        raise UserError(f"--crop must be at least 8 pixels, got {crop}")


class _ClipDataset(Dataset):
    def __init__(self, items: Sequence[VideoItem], frames: int, frame_stride: int, crop: int) -> None:
        _check_clip_options(frames, frame_stride, crop)
        if len(items) == 0:
            raise UserError("the video list is empty; check --data-root, --split-dir and --split")
        self.items = list(items)
        self.frames, self.frame_stride, self.crop = frames, frame_stride, crop

    def __len__(self) -> int:
        return len(self.items)

    def _random_start(self, video: VideoFile, exclude: int | None = None) -> int:
        """A uniformly random start; with ``exclude`` a different one whenever the video allows."""
        n = num_clip_starts(len(video), self.frames, self.frame_stride)
        if exclude is None or n == 1:
            return int(torch.randint(0, n, (1,)))
        start = int(torch.randint(0, n - 1, (1,)))
        return start + (start >= exclude)

    def _frames_at(self, video: VideoFile, start: int) -> torch.Tensor:
        """float (T, 3, H, W) in [0, 1] for the clip starting at ``start``."""
        return _to_float_tchw(video.get(clip_indices(len(video), self.frames, self.frame_stride, start)))


class PretrainClips(_ClipDataset):
    """``(clip_q, clip_k)``: two clips of one video at different random times, augmented independently.

    Each clip is float32 (C, T, H, W) in [0, 1]: random resized crop (scale 0.2-1), horizontal flip
    and :func:`color_augment` (jitter strength ``color_jitter``, grayscale probability ``grayscale``),
    with one draw of the parameters for all frames of a clip.
    """

    def __init__(self, items: Sequence[VideoItem], frames: int = 16, frame_stride: int = 2, crop: int = 112,
                 color_jitter: float = 1.0, grayscale: float = 0.2) -> None:
        super().__init__(items, frames, frame_stride, crop)
        check_color_options(color_jitter, grayscale)
        self.color_jitter, self.grayscale = color_jitter, grayscale

    def _augment(self, clip: torch.Tensor) -> torch.Tensor:
        clip = hflip_random(random_resized_crop(clip, self.crop))
        clip = color_augment(clip, self.crop, self.color_jitter, self.grayscale)
        return clip.permute(1, 0, 2, 3).contiguous()  # T C H W -> C T H W

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        video = VideoFile(self.items[index].path)
        start_q = self._random_start(video)
        start_k = self._random_start(video, exclude=start_q)
        return self._augment(self._frames_at(video, start_q)), self._augment(self._frames_at(video, start_k))


class LabeledClips(_ClipDataset):
    """``(clip, label)``: one clip per video, float32 (C, T, H, W) in [0, 1].

    ``train=True``: a random clip, random resized crop (scale 0.2-1) and horizontal flip.
    ``train=False``: the middle clip, short side resized to ``crop`` and centre-cropped.
    """

    def __init__(self, items: Sequence[VideoItem], frames: int = 16, frame_stride: int = 2, crop: int = 112,
                 train: bool = True) -> None:
        super().__init__(items, frames, frame_stride, crop)
        self.train = train

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.items[index]
        video = VideoFile(item.path)
        if self.train:
            clip = hflip_random(random_resized_crop(self._frames_at(video, self._random_start(video)), self.crop))
        else:
            start = int(uniform_clip_starts(len(video), self.frames, self.frame_stride, 3)[1])
            clip = center_resize_crop(self._frames_at(video, start), self.crop)
        return clip.permute(1, 0, 2, 3).contiguous(), item.label  # T C H W -> C T H W


class MultiClipVideos(_ClipDataset):
    """``(clips, label)``: ``clips_per_video`` uniformly spaced clips, float32 (n, C, T, H, W) in [0, 1].

    The test protocol of FAME / torchvision: no augmentation, short side resized to ``crop``, centre
    crop. All clips of a video are decoded in one batched read.
    """

    def __init__(self, items: Sequence[VideoItem], frames: int = 16, frame_stride: int = 2, crop: int = 112,
                 clips_per_video: int = 10) -> None:
        super().__init__(items, frames, frame_stride, crop)
        if clips_per_video < 1:
            raise UserError(f"clips per video must be at least 1, got {clips_per_video}")
        self.clips_per_video = clips_per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.items[index]
        video = VideoFile(item.path)
        n = len(video)
        starts = uniform_clip_starts(n, self.frames, self.frame_stride, self.clips_per_video)
        indices = np.concatenate([clip_indices(n, self.frames, self.frame_stride, s) for s in starts])
        frames = center_resize_crop(_to_float_tchw(video.get(indices)), self.crop)  # (n*T) C H W
        clips = frames.view(self.clips_per_video, self.frames, *frames.shape[1:])  # n T C H W
        return clips.permute(0, 2, 1, 3, 4).contiguous(), item.label  # n C T H W
