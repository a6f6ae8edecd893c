"""Batched hue rotation and separable Gaussian blur against torchvision's reference implementations."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from ssl_video.image_ops import adjust_hue, gaussian_blur, rgb_hue_turns


@pytest.mark.parametrize("shift", [-0.5, -0.1, 0.0, 0.03, 0.25, 0.5])
def test_adjust_hue_matches_torchvision(shift):
    x = torch.rand(4, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    x[0, :, :3] = 0.5  # grey pixels keep their value
    x[1, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(adjust_hue(x, shift), TF.adjust_hue(x, shift), atol=1e-5, rtol=0)


def test_hue_of_primaries():
    rgb = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(rgb_hue_turns(rgb.T.reshape(3, 1, 5)).flatten(),
                               torch.tensor([0, 1 / 6, 1 / 3, 2 / 3, 0], dtype=torch.float64))


@pytest.mark.parametrize("kernel, sigma", [(11, 1.3), (7, 0.1), (5, 2.0)])
def test_gaussian_blur_matches_torchvision(kernel, sigma):
    x = torch.rand(2, 5, 3, 20, 17, generator=torch.Generator().manual_seed(1))
    expected = TF.gaussian_blur(x.flatten(0, 1), [kernel, kernel], [sigma, sigma]).view_as(x)
    torch.testing.assert_close(gaussian_blur(x, kernel, sigma), expected, atol=1e-5, rtol=0)
    assert gaussian_blur(x, 1, 1.0) is x
