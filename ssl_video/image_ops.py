"""Batched image operations on float tensors shared by clip augmentation and FAME.

Both work on any leading shape (..., H, W) or (..., 3, H, W), so a whole clip (T, 3, H, W) or a
batch of maps (B, H, W) is processed in one call, with the same parameters for every image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, kernel: int, sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur of (..., H, W) with reflect padding; sigma defaults to kernel / 3.

    Two 1-D passes cost 2k multiply-adds per pixel instead of the k^2 of a 2-D kernel.
    """
    if kernel <= 1:
        return images
    sigma = kernel / 3 if sigma is None else sigma
    x = torch.arange(kernel, dtype=images.dtype, device=images.device) - (kernel - 1) / 2
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    weights = weights / weights.sum()
    pad = kernel // 2
    height, width = images.shape[-2:]
    # All images as channels of one grouped (depthwise) convolution: much faster on CPU than a
    # batch of single-channel images.
    out = images.reshape(1, -1, height, width)
    channels = out.shape[1]
    # Reflect padding needs pad < size; tiny images fall back to replicate.
    mode = "reflect" if min(height, width) > pad else "replicate"
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode=mode), weights.view(1, 1, 1, kernel).expand(channels, 1, 1, kernel),
                   groups=channels)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode=mode), weights.view(1, 1, kernel, 1).expand(channels, 1, kernel, 1),
                   groups=channels)
    return out.view(images.shape)

def rgb_hue_turns(images: torch.Tensor) -> torch.Tensor:
    """Hue in turns [0, 1) of (..., 3, H, W) RGB; 0 for grey pixels."""
    r, g, b = images.unbind(-3)
    maxc, minc = images.amax(-3), images.amin(-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return torch.where(delta > 0, hue / 6, torch.zeros_like(hue))


def adjust_hue(images: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the HSV hue of (..., 3, H, W) RGB in [0, 1] by ``shift`` turns (value, saturation kept).

    Same result as torchvision's ``adjust_hue`` without the full HSV round trip: with V = max,
    V*S = max - min and k = (n + 6h) mod 6, channel n in (R=5, G=3, B=1) is
    V - V*S * clamp(min(k, 4 - k), 0, 1).
    """
    maxc, minc = images.amax(-3, keepdim=True), images.amin(-3, keepdim=True)
    hue6 = 6 * ((rgb_hue_turns(images).unsqueeze(-3) + shift) % 1.0)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device).view(3, 1, 1)
    k = (n + hue6) % 6
    return maxc - (maxc - minc) * torch.minimum(k, 4 - k).clamp(0, 1)
