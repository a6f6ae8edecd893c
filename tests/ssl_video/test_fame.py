"""FAME foreground masks and foreground-background merging."""

import colorsys
import math

import numpy as np
import pytest
import torch

from ssl_video.fame import (background_permutation, color_bins, color_probability, fame_merge, foreground_count,
                            foreground_mask, gaussian_kernel_size)
from ssl_video.image_ops import gaussian_blur
from ssl_video.synth import MOTIONS, render_video
from vos.infra.errors import UserError


def to_clip(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [0, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / ((a + b) > 0).sum())


@pytest.mark.parametrize("motion", MOTIONS)
def test_mask_covers_the_moving_object(motion):
    # The object's region over the clip (union of its per-frame masks) is the foreground. With beta
    # equal to its area fraction a random mask scores IoU ~ beta / (2 - beta): below 0.3 here.
    ious = []
    for seed in range(3):
        frames, masks = render_video(motion, seed % 4, 4, 16, 64, np.random.default_rng(seed))
        truth = torch.from_numpy(masks.any(0)).float()
        beta = float(truth.mean())
        assert beta / (2 - beta) < 0.3
        mask = foreground_mask(to_clip(frames), beta)[0]
        ious.append(iou(mask, truth))
    assert min(ious) > 0.7, ious


def test_mask_finds_a_textured_square_on_a_noise_background():
    # Colours cannot separate object and background here (both uniform noise): motion must.
    g = torch.Generator().manual_seed(0)
    T, H, W, side = 8, 64, 64, 14
    clips = torch.rand(3, 3, 1, H, W, generator=g).expand(3, 3, T, H, W).clone()
    truth = torch.zeros(3, H, W)
    for b in range(3):
        texture = torch.rand(3, side, side, generator=g)
        for t in range(T):
            x, y = 6 + 4 * t, 10 + 12 * b
            clips[b, :, t, y:y + side, x:x + side] = texture
            truth[b, y:y + side, x:x + side] = 1
    beta = float(truth[0].mean())
    masks = foreground_mask(clips, beta)
    assert [iou(m, t) > 0.7 for m, t in zip(masks, truth)] == [True] * 3


@pytest.mark.parametrize("shape", [(2, 3, 4, 16, 16), (3, 3, 2, 9, 13), (1, 3, 5, 1, 7)])
@pytest.mark.parametrize("beta", [0.0, 0.01, 0.29, 0.5, 0.7, 1.0])
def test_exact_number_of_ones(shape, beta):
    clips = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    mask = foreground_mask(clips, beta)
    B, _, _, H, W = shape
    assert mask.shape == (B, H, W) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    expected = {0.0: 0, 0.01: math.floor(0.01 * H * W), 0.29: (29 * H * W) // 100, 0.5: (H * W) // 2,
                0.7: (7 * H * W) // 10, 1.0: H * W}[beta]
    assert mask.sum((1, 2)).tolist() == [float(expected)] * B


def test_dtype_follows_the_clips_and_beta_rounds_as_a_decimal():
    mask = foreground_mask(torch.rand(1, 3, 3, 10, 10, dtype=torch.float64), 0.29)
    assert mask.dtype == torch.float64 and int(mask.sum()) == 29  # 0.29 * 100 is 28.999... in floats
    assert foreground_count(0.29, 100) == 29 and foreground_count(1 / 3, 10) == 3 and foreground_count(0.05, 10) == 0


def test_ties_are_broken_by_pixel_order():
    # A still, uniform clip gives a constant map: the first floor(beta*H*W) pixels in row-major order win.
    clips = torch.full((2, 3, 4, 5, 6), 0.4)
    mask = foreground_mask(clips, 0.4)
    expected = torch.zeros(30)
    expected[:12] = 1
    assert torch.equal(mask, expected.view(1, 5, 6).expand(2, 5, 6))


@pytest.mark.parametrize("clips, beta, message", [
    (torch.rand(2, 3, 4, 8, 8), -0.1, "beta must be a number in"),
    (torch.rand(2, 3, 4, 8, 8), 1.5, "beta must be a number in"),
    (torch.rand(2, 3, 4, 8, 8), float("nan"), "beta must be a number in"),
    (torch.rand(2, 3, 4, 8, 8), "0.5", "beta must be a number in"),
    (torch.rand(3, 4, 8, 8), 0.5, r"shape \(B, 3, T, H, W\)"),
    (torch.rand(2, 1, 4, 8, 8), 0.5, r"shape \(B, 3, T, H, W\)"),
    (torch.rand(2, 3, 1, 8, 8), 0.5, "at least 2 frames"),
    (torch.rand(0, 3, 4, 8, 8), 0.5, "empty batch"),
    (torch.rand(2, 3, 4, 8, 8) * 4 - 2, 0.5, r"values in \[0, 1\].*before normalize_clips"),
    (torch.full((2, 3, 4, 8, 8), float("nan")), 0.5, r"values in \[0, 1\]"),
    (torch.randint(0, 255, (2, 3, 4, 8, 8)), 0.5, "float tensor"),
])
def test_bad_input(clips, beta, message):
    with pytest.raises(UserError, match=message):
        foreground_mask(clips, beta)


def test_color_bins_treat_hue_as_an_angle():
    # Independent reference: colorsys HSV (hue in turns) and the colour-wheel formula.
    rgb = np.random.default_rng(0).random((500, 3))
    expected = []
    for r, g, b in rgb:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        hx, hy = (s * math.cos(2 * math.pi * h) + 1) / 2, (s * math.sin(2 * math.pi * h) + 1) / 2
        expected.append(100 * min(int(hx * 10), 9) + 10 * min(int(hy * 10), 9) + min(int(v * 10), 9))
    got = color_bins(torch.from_numpy(rgb).T.reshape(1, 3, 1, 500))
    assert got.flatten().tolist() == expected
    # pure red (h=0), green (h=1/3), blue (h=2/3), black and white
    pure = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=torch.float64)
    assert color_bins(pure.T.reshape(1, 3, 1, 5)).flatten().tolist() == [959, 299, 209, 550, 559]


def test_color_probability_by_hand():
    # 10 pixels: 5 red ones move (top 50% of the seed), 5 blue ones are still (bottom 10% = 1 pixel).
    image = torch.zeros(1, 3, 1, 10, dtype=torch.float64)
    image[0, 0, 0, :5] = 1
    image[0, 2, 0, 5:] = 1
    seed = torch.tensor([[[1.0] * 5 + [0.0] * 5]], dtype=torch.float64)
    prob = color_probability(image, seed)
    # p_fg(red) = 5/5, p_bg(red) = 1/(1+1000) (smoothing only); p_fg(blue) = 0
    p_red = 1 / (1 + 1 / 1001)
    torch.testing.assert_close(prob.flatten(), torch.tensor([p_red] * 5 + [0.0] * 5, dtype=torch.float64))


def test_gaussian_blur_kernel_and_mass():
    assert [gaussian_kernel_size(c) for c in (112, 224, 64, 9)] == [11, 23, 7, 1]
    maps = torch.zeros(1, 21, 21, dtype=torch.float64)
    maps[0, 10, 10] = 1
    out = gaussian_blur(maps, 7)
    assert float(out.sum()) == pytest.approx(1.0)
    x = torch.arange(7, dtype=torch.float64) - 3
    w = torch.exp(-0.5 * (x / (7 / 3)) ** 2)
    w = w / w.sum()
    torch.testing.assert_close(out[0, 7:14, 7:14], w[:, None] * w[None, :])


def test_background_permutation_has_no_fixed_points():
    for batch in range(2, 9):
        for seed in range(20):
            perm = background_permutation(batch, torch.Generator().manual_seed(seed))
            assert sorted(perm.tolist()) == list(range(batch))
            assert all(p != i for i, p in enumerate(perm.tolist()))
    assert background_permutation(1).tolist() == [0]


def test_fame_merge_keeps_foreground_and_takes_background_from_another_clip():
    B, T, H, W = 4, 6, 24, 24
    clips = torch.empty(B, 3, T, H, W)
    for b in range(B):  # clip b: background level 0.1*(b+1) on every channel, moving bright square
        clips[b] = 0.1 * (b + 1)
        for t in range(T):
            clips[b, :, t, 4 + b * 4:10 + b * 4, 2 + 3 * t:8 + 3 * t] = 0.9
    merged, mask = fame_merge(clips, beta=0.3, generator=torch.Generator().manual_seed(3))
    assert merged.shape == clips.shape and mask.shape == (B, H, W)
    assert mask.sum((1, 2)).tolist() == [float(int(0.3 * H * W))] * B
    torch.testing.assert_close(mask, foreground_mask(clips, 0.3))
    m = mask[:, None, None].expand_as(clips).bool()
    assert torch.equal(merged[m], clips[m])  # foreground pixels come from the clip itself
    sources = []
    for b in range(B):
        # background pixels: the constant level of exactly one other clip (its own square may show through)
        bg = merged[b][~m[b]]
        levels = {round(float(v), 3) for v in bg.unique()}
        source = [j for j in range(B) if round(0.1 * (j + 1), 3) in levels]
        assert len(source) == 1 and source[0] != b
        j = source[0]
        assert torch.equal(bg, clips[j][~m[b]])
        sources.append(j)
    assert sorted(sources) == list(range(B))  # a permutation of the batch


def test_fame_merge_with_one_clip_is_the_identity():
    clips = torch.rand(1, 3, 4, 16, 16)
    merged, mask = fame_merge(clips, 0.5)
    assert torch.equal(merged, clips) and int(mask.sum()) == 128
