"""Training clips: frame sampling, clip-wide photometric augmentation and the backbone feature cache.

A *clip* is ``frames`` frames of one video centred on a random index, ``gap`` frames apart (the
gap shrinks for videos too short for it), resized to the model input size. Its frozen-backbone
features are, per frame, the last-layer CLS token followed by the patch keys: ``(T, 1+P, C)``.

With a feature cache the backbone runs once per frame (and per cached augmentation variant): the
features go to one float16 ``.npy`` per video, memory-mapped when training reads them.
"""

from __future__ import annotations

import json
import logging
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from vos.infra.distributed import DistContext, barrier, shard
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_path, atomic_write_text, read_json
from vos.infra.progress import progress_bar
from vos.infra.schema import Dict, Int, Str, check
from vos.infra.video_reader import discover_videos, fitting_stride, open_video
from vos.models.backbone import IMAGENET_MEAN, IMAGENET_STD, KeyBackbone
from vos.train.config import AugmentConfig

log = logging.getLogger(__name__)

CACHE_FORMAT = "vos.train.feature_cache"
CACHE_VERSION = 1
CACHE_CHUNK = 8  # frames per backbone call while filling the cache


def resolve_video_root(data: str | Path) -> Path:
    """The folder whose entries are the training videos: a DAVIS root (``vos synth`` output) maps to
    ``JPEGImages/480p``, a YouTube-VOS/VIS split to ``JPEGImages``; anything else is used as is."""
    root = Path(data)
    for sub in ("JPEGImages/480p", "JPEGImages"):
        if (root / sub).is_dir():
            return root / sub
    return root


def clip_indices(length: int, frames: int, gap: int, centre: int) -> list[int]:
    """Frame indices of a clip centred on ``centre``; ``gap`` must already fit
    (:func:`vos.infra.video_reader.fitting_stride`)."""
    first = centre - (frames - 1) // 2 * gap
    return [first + i * gap for i in range(frames)]


def sample_clip_indices(length: int, frames: int, gap: int, generator: torch.Generator) -> list[int]:
    """A random clip of a video with ``length >= frames`` frames (uniform over valid centres)."""
    g = fitting_stride(length, frames, gap)
    lo = (frames - 1) // 2 * g
    hi = length - 1 - (frames - 1 - (frames - 1) // 2) * g
    centre = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    return clip_indices(length, frames, g, centre)


@dataclass(frozen=True)
class PhotometricParams:
    """One draw of the clip augmentation (applied identically to every frame)."""

    grayscale: bool
    jitter_order: tuple[int, ...] | None  # permutation of (brightness, contrast, saturation, hue); None: no jitter
    brightness: float
    contrast: float
    saturation: float
    hue: float
    blur_sigma: float | None  # None: no blur

    @staticmethod
    def draw(cfg: AugmentConfig, generator: torch.Generator) -> "PhotometricParams":
        u = torch.rand(8, generator=generator, dtype=torch.float64).tolist()  # fixed draw count per clip
        order = tuple(torch.randperm(4, generator=generator).tolist())

        def factor(x: float, strength: float) -> float:
            return 1.0 - strength + 2 * strength * x

        lo, hi = cfg.blur_sigma
        return PhotometricParams(
            grayscale=u[0] < cfg.grayscale_p,
            jitter_order=order if u[1] < cfg.jitter_p else None,
            brightness=factor(u[2], cfg.brightness),
            contrast=factor(u[3], cfg.contrast),
            saturation=factor(u[4], cfg.saturation),
            hue=(2 * u[5] - 1) * cfg.hue,
            blur_sigma=lo + (hi - lo) * u[7] if u[6] < cfg.blur_p else None,
        )


def apply_photometric(images: torch.Tensor, params: PhotometricParams, kernel_fraction: float) -> torch.Tensor:
    """images (T, 3, H, W) in [0, 1] -> same shape, every frame transformed with the same ``params``.

    Order as the reference: grayscale, colour jitter (in the drawn order), Gaussian blur.
    """
    if params.grayscale:
        images = TF.rgb_to_grayscale(images, num_output_channels=3)
    if params.jitter_order is not None:
        ops = (lambda x: TF.adjust_brightness(x, params.brightness),
               lambda x: TF.adjust_contrast(x, params.contrast),
               lambda x: TF.adjust_saturation(x, params.saturation),
               lambda x: TF.adjust_hue(x, params.hue))
        for i in params.jitter_order:
            images = ops[i](images)
    if params.blur_sigma is not None:
        k = int(kernel_fraction * min(images.shape[-2:])) // 2 * 2 + 1
        images = TF.gaussian_blur(images, [k, k], [params.blur_sigma, params.blur_sigma])
    return images.clamp(0, 1)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 RGB (T, H, W, 3) -> float (T, 3, h, w) in [0, 1] at ``size`` (antialiased bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images (T, 3, H, W) -> ImageNet-normalised, as the backbone expects."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def frame_tokens(backbone: KeyBackbone, images: torch.Tensor) -> torch.Tensor:
    """Normalised images (T, 3, H, W) -> per-frame tokens (T, 1+P, C) on the backbone's device: CLS, then
    the patch keys."""
    feats = backbone(images.to(next(backbone.parameters()).device))
    return torch.cat([feats.cls[:, None], feats.keys], dim=1)


class TrainingVideos:
    """The training videos of ``data`` (frame folders or video files), with their frame counts.

    Videos with fewer than ``frames`` frames cannot give a clip and are left out (logged).
    """

    def __init__(self, data: str | Path, frames: int):
        root = resolve_video_root(data)
        self.root = root
        sources = [open_video(p) for p in discover_videos(root)]
        self.videos = [v for v in sources if v.num_frames >= frames]
        short = [v.name for v in sources if v.num_frames < frames]
        if short:
            log.warning("%d video(s) shorter than %d frames are not used: %s", len(short), frames,
                        ", ".join(short[:5]) + (" …" if len(short) > 5 else ""))
        if not self.videos:
            raise UserError(f"{root}: no video has at least {frames} frames; lower --frames or add longer videos")

    def __len__(self) -> int:
        return len(self.videos)


def _cache_meta(videos: TrainingVideos, backbone_name: str, weights_tag: str, size: tuple[int, int],
                variants: int, augment: AugmentConfig, seed: int) -> dict:
    return {
        "format": CACHE_FORMAT, "version": CACHE_VERSION,
        "backbone": backbone_name, "weights": weights_tag, "size": list(size),
        "variants": variants, "augment": asdict(augment) if variants > 1 else None,
        "seed": seed if variants > 1 else None,
        "videos": [{"name": v.name, "frames": v.num_frames} for v in videos.videos],
    }


class FeatureCache:
    """Backbone tokens of every frame of every training video, memory-mapped from ``folder``.

    ``variants`` copies per video: copy 0 of the original frames, copies 1.. of the frames under
    one photometric draw per (video, copy), applied to all the video's frames, so that a clip read
    from any copy has the same augmentation on every frame. File ``<index>.npy`` holds
    float16 (variants, frames, 1+P, C). ``meta.json`` records what the features were computed
    with; a cache built for other settings is refused rather than silently reused, and so is one whose
    meta.json is damaged (the line says to delete the folder to rebuild it). A ``<index>.npy`` that is
    damaged (cut short, of another shape or dtype, not an array file) is computed again, with a warning.
    """

    def __init__(self, folder: str | Path, videos: TrainingVideos, backbone: KeyBackbone, backbone_name: str,
                 weights_tag: str, size: tuple[int, int], variants: int, augment: AugmentConfig, seed: int,
                 ctx: DistContext):
        if variants < 1:
            raise UserError(f"cache_variants must be >= 1, got {variants}")
        if variants > 1 and not augment.enabled:
            raise UserError("cache_variants > 1 needs augmentation (augment.enabled); the copies would be identical")
        self.folder = Path(folder)
        self.variants = variants
        # through JSON once so that tuples compare equal to the lists read back from meta.json
        meta = json.loads(json.dumps(_cache_meta(videos, backbone_name, weights_tag, size, variants, augment, seed)))
        meta_path = self.folder / "meta.json"
        if meta_path.exists():
            old = _read_cache_meta(meta_path)
            if old != meta:
                diff = sorted(k for k in meta if old.get(k) != meta[k])
                raise UserError(f"{self.folder}: feature cache was built with other settings ({', '.join(diff)} "
                               "differ); use another --cache-features folder or delete this one")
        elif ctx.is_main:
            atomic_write_text(meta_path, json.dumps(meta, indent=1))
        barrier(ctx)
        patches = (size[0] // backbone.patch_size) * (size[1] // backbone.patch_size)
        todo = []
        for i in shard(range(len(videos)), ctx):
            shape = (variants, videos.videos[i].num_frames, 1 + patches, backbone.dim)
            problem = _cached_array_problem(self._path(i), shape) if self._path(i).exists() else "absent"
            if problem != "absent" and problem is not None:
                log.warning("%s: %s; computing it again", self._path(i), problem)
            if problem is not None:
                todo.append(i)
        for i in progress_bar(todo, desc="caching features", unit="video", disable=not (todo and ctx.is_main)):
            self._fill(i, videos.videos[i], backbone, size, augment, seed)
        barrier(ctx)
        self._arrays = [np.load(self._path(i), mmap_mode="r") for i in range(len(videos))]

    def _path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.npy"

    def _fill(self, index: int, video, backbone: KeyBackbone, size: tuple[int, int],
              augment: AugmentConfig, seed: int) -> None:
        params = [None] + [PhotometricParams.draw(augment, torch.Generator().manual_seed(
            hash_seed(seed, index, v))) for v in range(1, self.variants)]
        first = True
        with atomic_path(self._path(index)) as tmp:
            for start in range(0, video.num_frames, CACHE_CHUNK):
                images = resize_frames(video.read_frames(range(start, min(start + CACHE_CHUNK,
                                                                            video.num_frames))), size)
                for v, p in enumerate(params):
                    x = images if p is None else apply_photometric(images, p, augment.blur_kernel_fraction)
                    tokens = frame_tokens(backbone, normalize(x)).cpu().numpy().astype(np.float16)  # n 1+P C
                    if first:
                        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                                        shape=(self.variants, video.num_frames) + tokens.shape[1:])
                        first = False
                    out[v, start:start + len(tokens)] = tokens
            out.flush()
            del out

    def clip(self, video_index: int, variant: int, indices: Sequence[int]) -> torch.Tensor:
        """Cached tokens (T, 1+P, C) float32 of frames ``indices`` of one video copy."""
        return torch.from_numpy(np.asarray(self._arrays[video_index][variant, list(indices)], dtype=np.float32))


def _read_cache_meta(path: Path) -> dict:
    """The settings a feature cache was built with; a damaged meta.json is refused, saying how to
    rebuild the cache (its features cannot be trusted without it)."""
    rebuild = f"delete {path.parent} to rebuild the cache, or pass another --cache-features folder"
    meta = read_json(path, f"the meta.json of a feature cache; {rebuild}")
    return check(meta, Dict({"format": Str((CACHE_FORMAT,)), "version": Int()}), path,
                 f"not the meta.json of a feature cache; {rebuild}")


def _cached_array_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    """What is wrong with a cached feature file, read from its header and size alone: None when it is
    a float16 array of ``shape`` with all its bytes (a file of an interrupted or foreign write is not)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            found, fortran_order, dtype = read_header(f)
            data_offset = f.tell()
    except (ValueError, SyntaxError, tokenize.TokenError, OSError) as exc:  # numpy's, for a header that is not one
        return f"damaged: not a numpy array file ({str(exc).splitlines()[0][:80]})"
    if dtype != np.float16 or tuple(found) != shape or fortran_order:
        return f"holds a {dtype} array of shape {tuple(found)}, expected float16 {shape}"
    expected_size = data_offset + int(np.prod(shape)) * 2
    if path.stat().st_size != expected_size:
        return f"damaged: {path.stat().st_size} bytes, expected {expected_size} (cut short)"
    return None


def hash_seed(*values: int) -> int:
    """A 63-bit seed mixing ``values`` (stable across runs and processes, unlike ``hash``)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class ClipSampler:
    """Draws batches of clip tokens (B, T, 1+P, C) from the videos, through the cache if there is one."""

    def __init__(self, videos: TrainingVideos, backbone: KeyBackbone, size: tuple[int, int], frames: int,
                 gap: int, augment: AugmentConfig, cache: FeatureCache | None = None):
        self.videos, self.backbone, self.size = videos, backbone, size
        self.frames, self.gap, self.augment, self.cache = frames, gap, augment, cache

    def clip_tokens(self, generator: torch.Generator) -> torch.Tensor:
        """One random clip's tokens (T, 1+P, C)."""
        i = int(torch.randint(len(self.videos), (1,), generator=generator))
        video = self.videos.videos[i]
        indices = sample_clip_indices(video.num_frames, self.frames, self.gap, generator)
        if self.cache is not None:
            variant = int(torch.randint(self.cache.variants, (1,), generator=generator))
            return self.cache.clip(i, variant, indices)
        images = resize_frames(video.read_frames(indices), self.size)
        if self.augment.enabled:
            params = PhotometricParams.draw(self.augment, generator)
            images = apply_photometric(images, params, self.augment.blur_kernel_fraction)
        return frame_tokens(self.backbone, normalize(images))

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return torch.stack([self.clip_tokens(generator) for _ in range(batch_size)])  # B T 1+P C


def check_clip_fits(grid: tuple[int, int], loss_cfg) -> None:
    """Refuse top/bottom-k counts that do not fit in one frame's patches (they would overlap)."""
    patches = grid[0] * grid[1]
    for name, c in (("semantic", loss_cfg.semantic), ("motion", loss_cfg.motion)):
        if c.positives + c.negatives > patches:
            raise UserError(f"loss.{name}: {c.positives} positives + {c.negatives} negatives exceed the "
                           f"{patches} patches of a {grid[0]}x{grid[1]} frame; raise --resolution or lower them")
    if loss_cfg.queries > patches:
        raise UserError(f"loss.queries={loss_cfg.queries} exceeds the {patches} patches per frame")

