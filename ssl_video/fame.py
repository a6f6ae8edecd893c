"""FAME: foreground masks from motion + colour statistics, and foreground-background merging.

:func:`foreground_mask` follows FAME (CVPR 2022) as its release's ``moco/loader.py`` computes it, vectorised over the batch:

1. seed ``S`` = mean over t of ``sum_c |x[c, t+1] - x[c, t]|``, Gaussian-blurred and min-max
   normalised per clip;
2. colour refinement: the time-averaged clip in HSV, hue taken as an angle (``h`` in turns, angle
   ``2*pi*h``), colour-wheel coordinates ``hx = (s cos 2πh + 1)/2``, ``hy = (s sin 2πh + 1)/2`` and
   ``v``, each in 10 bins (1,000 colours). A foreground histogram from the top 50% pixels of the
   seed, a background histogram from the bottom 10% with +1 smoothing, both normalised to
   probabilities; per pixel ``p_fg / (p_fg + p_bg)``.
   (The official code multiplies a hue that is already in radians by 2π again, so its colour wheel
   wraps about six times and unrelated hues share bins; this module does not reproduce that.)
3. the two maps are averaged: ``(seed + colour) / 2``. The average keeps a moving object whose
   colours also occur in the background (the seed carries it) and a part of the object that does
   not move much but has the object's colours (the colour map carries it); a product would let
   either map veto the other;
4. Gaussian blur with kernel ``int(0.1 * crop) // 2 * 2 + 1`` (crop = min(H, W)), sigma kernel/3,
   reflect padding (:func:`ssl_video.image_ops.gaussian_blur`); min-max normalisation;
5. the top ``floor(beta * H * W)`` pixels become 1, the rest 0. Ties are broken by the row-major
   pixel index (lower index first), so the count is exact.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from ssl_video.image_ops import gaussian_blur, rgb_hue_turns
from vos.infra.errors import UserError

COLOR_BINS = 10
SEED_FG_FRACTION = 0.5
SEED_BG_FRACTION = 0.1


def _check_clips(clips: torch.Tensor) -> None:
    if not isinstance(clips, torch.Tensor) or not clips.is_floating_point():
        raise UserError("FAME expects a float tensor of clips (B, C, T, H, W) with values in [0, 1]")
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise UserError(f"FAME expects clips of shape (B, 3, T, H, W), got {tuple(clips.shape)}")
    if clips.shape[2] < 2:
        raise UserError(f"FAME needs at least 2 frames per clip for frame differences, got T={clips.shape[2]}")
    if clips.shape[0] == 0 or clips.shape[3] == 0 or clips.shape[4] == 0:
        raise UserError(f"FAME got an empty batch or empty frames: shape {tuple(clips.shape)}")
    lo, hi = float(clips.min()), float(clips.max())
    if not (lo >= -1e-4 and hi <= 1 + 1e-4):  # also rejects NaN
        raise UserError(f"FAME expects clip values in [0, 1], got [{lo:.3g}, {hi:.3g}]; "
                       "apply FAME before normalize_clips")


def foreground_count(beta: float, num_pixels: int) -> int:
    """``floor(beta * num_pixels)``, with beta read as a decimal (0.29 * 100 gives 29, not 28)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0.0 <= beta <= 1.0):
        raise UserError(f"the foreground ratio beta must be a number in [0, 1], got {beta!r}")
    return math.floor(Fraction(beta).limit_denominator(10**6) * num_pixels)


def gaussian_kernel_size(crop: int) -> int:
    """FAME's blur kernel: ``int(0.1 * crop)`` made odd (11 for 112 px, 23 for 224 px)."""
    return int(0.1 * crop) // 2 * 2 + 1


def minmax_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max to [0, 1] over (B, H, W); a constant map becomes all zeros."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    return ((flat - lo) / span.clamp_min(1e-12)).view_as(maps)


def motion_seed(clips: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, H, W): mean over t of the channel-summed |x_{t+1} - x_t|."""
    return (clips[:, :, 1:] - clips[:, :, :-1]).abs().sum(1).mean(1)


def color_bins(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, H, W) long colour-bin index in [0, 1000).

    HSV with hue in turns; bins of hx = (s cos 2πh + 1)/2, hy = (s sin 2πh + 1)/2 and v.
    """
    v = images.amax(1)
    s = torch.where(v > 0, (v - images.amin(1)) / v.clamp_min(1e-12), torch.zeros_like(v))
    hue = rgb_hue_turns(images)
    angle = 2 * math.pi * hue
    hx = (s * torch.cos(angle) + 1) / 2
    hy = (s * torch.sin(angle) + 1) / 2

    def quantise(x: torch.Tensor) -> torch.Tensor:
        return (x * COLOR_BINS).long().clamp_(0, COLOR_BINS - 1)

    return (quantise(hx) * COLOR_BINS + quantise(hy)) * COLOR_BINS + quantise(v)


def color_probability(mean_frames: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Per-pixel p_fg / (p_fg + p_bg) from colour histograms of the seed's top 50% / bottom 10%.

    mean_frames (B, 3, H, W) in [0, 1]; seed (B, H, W). Returns (B, H, W) in [0, 1].
    """
    batch, hw = seed.shape[0], seed.shape[1] * seed.shape[2]
    bins = color_bins(mean_frames).flatten(1)  # B HW
    order = seed.flatten(1).argsort(dim=1, descending=True, stable=True)  # B HW, most moving first
    n_fg = max(1, int(SEED_FG_FRACTION * hw))
    n_bg = max(1, int(SEED_BG_FRACTION * hw))
    num_colors = COLOR_BINS ** 3
    dtype = seed.dtype
    ones = torch.ones(batch, max(n_fg, n_bg), dtype=dtype, device=seed.device)
    hist_fg = torch.zeros(batch, num_colors, dtype=dtype, device=seed.device)
    hist_fg.scatter_add_(1, bins.gather(1, order[:, :n_fg]), ones[:, :n_fg])
    hist_bg = torch.ones(batch, num_colors, dtype=dtype, device=seed.device)  # +1 smoothing
    hist_bg.scatter_add_(1, bins.gather(1, order[:, hw - n_bg:]), ones[:, :n_bg])
    p_fg = (hist_fg / n_fg).gather(1, bins)
    p_bg = (hist_bg / (n_bg + num_colors)).gather(1, bins)
    return (p_fg / (p_fg + p_bg)).view_as(seed)


def top_fraction_mask(maps: torch.Tensor, beta: float) -> torch.Tensor:
    """(B, H, W) -> (B, H, W) with exactly floor(beta*H*W) ones per map at its largest values.

    Ties go to the lower row-major index (stable sort), so the result is deterministic.
    """
    flat = maps.flatten(1)
    count = foreground_count(beta, flat.shape[1])
    order = flat.argsort(dim=1, descending=True, stable=True)
    mask = torch.zeros_like(flat)
    mask.scatter_(1, order[:, :count], 1.0)
    return mask.view_as(maps)


@torch.no_grad()
def foreground_mask(clips: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """FAME foreground mask: clips (B, C, T, H, W) float in [0, 1] -> mask (B, H, W) of 0/1.

    Each mask has exactly floor(beta * H * W) ones; the dtype and device are those of ``clips``.
    """
    _check_clips(clips)
    foreground_count(beta, 1)  # validates beta before any work
    height, width = clips.shape[-2:]
    kernel = gaussian_kernel_size(min(height, width))
    seed = minmax_normalize(gaussian_blur(motion_seed(clips), kernel))  # B H W
    color = color_probability(clips.mean(2), seed)  # B H W
    soft = minmax_normalize(gaussian_blur((seed + color) / 2, kernel))
    return top_fraction_mask(soft, beta)


def background_permutation(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation without fixed points (for batch >= 2): clip i takes its background from
    clip perm[i] != i. Built as a random cycle, so it is uniform over cyclic orders, not over all
    derangements. With batch 1 the only choice is the clip itself."""
    order = torch.randperm(batch, generator=generator)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


@torch.no_grad()
def fame_merge(clips: torch.Tensor, beta: float = 0.5,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each clip's foreground over the background of another clip of the batch.

    clips (B, C, T, H, W) in [0, 1] -> (merged (B, C, T, H, W), mask (B, H, W)), with
    ``merged[i] = clips[i] * mask[i] + clips[perm[i]] * (1 - mask[i])`` (same mask on every frame),
    ``perm`` from :func:`background_permutation` (never the clip itself when B >= 2; the official
    code's plain ``randperm`` keeps a clip's own background with probability about 1/B).
    """
    mask = foreground_mask(clips, beta)
    perm = background_permutation(clips.shape[0], generator).to(clips.device)
    # A select instead of clips*m + bg*(1-m): the same values for a 0/1 mask, half the memory traffic.
    merged = torch.where(mask[:, None, None].bool(), clips, clips[perm])  # B C T H W
    return merged, mask
