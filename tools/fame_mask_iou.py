"""How well FAME masks cover a known moving object, for four ways of combining seed and colour maps.

    python tools/fame_mask_iou.py [--videos-per-motion 10] [--size 64] [--frames 16] [--object-size 0.25]

Mean and minimum IoU between the mask and the object's region over the clip (union of its
per-frame masks; beta = that region's area fraction) on two kinds of clips:

* ``synth``: ``ssl_video.synth.render_video`` clips (every motion class, random backgrounds);
* ``noise``: a textured square moving over a uniform-noise background, where colour statistics
  cannot tell object from background.

This is the evidence behind ``foreground_mask`` averaging the seed and colour maps (docs/ssl_video_data.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ssl_video.fame import (color_probability, gaussian_blur, gaussian_kernel_size, minmax_normalize,  # noqa: E402
                            motion_seed, top_fraction_mask)
from ssl_video.synth import MOTIONS, render_video  # noqa: E402

COMBINATIONS = {
    "seed only": lambda seed, color: seed,
    "colour only": lambda seed, color: color,
    "(seed + colour) / 2 (used)": lambda seed, color: (seed + color) / 2,
    "seed * colour": lambda seed, color: seed * color,
}


def mask_with(clip: torch.Tensor, beta: float, combine) -> torch.Tensor:
    """foreground_mask's steps with a different seed/colour combination; clip (1, 3, T, H, W)."""
    kernel = gaussian_kernel_size(min(clip.shape[-2:]))
    seed = minmax_normalize(gaussian_blur(motion_seed(clip), kernel))
    color = color_probability(clip.mean(2), seed)
    return top_fraction_mask(minmax_normalize(gaussian_blur(combine(seed, color), kernel)), beta)[0]


def synth_clips(per_motion: int, frames: int, size: int, object_size: float):
    for motion in MOTIONS:
        for i in range(per_motion):
            video, masks = render_video(motion, i % 5, 5, frames, size, np.random.default_rng(1000 + i), object_size)
            yield torch.from_numpy(video).permute(3, 0, 1, 2)[None].float() / 255, torch.from_numpy(masks.any(0))


def noise_clips(count: int, frames: int, size: int):
    g = torch.Generator().manual_seed(0)
    side = size // 4
    for i in range(count):
        clip = torch.rand(1, 3, 1, size, size, generator=g).expand(1, 3, frames, size, size).clone()
        texture = torch.rand(3, side, side, generator=g)
        truth = torch.zeros(size, size, dtype=torch.bool)
        y = int(torch.randint(0, size - side, (1,), generator=g))
        step = (size - side - 2) / max(1, frames - 1)
        for t in range(frames):
            x = int(1 + step * t)
            clip[0, :, t, y:y + side, x:x + side] = texture
            truth[y:y + side, x:x + side] = True
        yield clip, truth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-motion", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--object-size", type=float, default=0.25, help="synth clips: object side / frame side")
    args = parser.parse_args(argv)
    sets = {"synth": list(synth_clips(args.videos_per_motion, args.frames, args.size, args.object_size)),
            "noise": list(noise_clips(args.videos_per_motion * 2, args.frames, args.size))}
    print("| combination | " + " | ".join(f"{name} IoU mean / min ({len(c)} clips)" for name, c in sets.items()) + " |")
    print("|---|" + "---|" * len(sets))
    for label, combine in COMBINATIONS.items():
        cells = []
        for clips in sets.values():
            ious = []
            for clip, truth in clips:
                truth = truth.float()
                mask = mask_with(clip, float(truth.mean()), combine)
                ious.append(float((mask * truth).sum() / ((mask + truth) > 0).sum()))
            cells.append(f"{np.mean(ious):.3f} / {np.min(ious):.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
