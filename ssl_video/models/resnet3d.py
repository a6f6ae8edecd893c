"""3D ResNets: torchvision's r3d_18 / mc3_18 / r2plus1d_18 / s3d without their classifiers, and
``r3d_tiny``, a narrow R3D for CPU tests and the synthetic evidence runs."""

from __future__ import annotations

import torch
import torchvision.models.video as tvv
from torch import nn

from ssl_video.models.registry import register_backbone


class TorchvisionResNet3d(nn.Module):
    """A torchvision VideoResNet whose ``fc`` is removed: (B, C, T, H, W) -> (B, 512)."""

    def __init__(self, net: tvv.VideoResNet):
        super().__init__()
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # B D


@register_backbone("r3d_18")
def r3d_18() -> nn.Module:
    return TorchvisionResNet3d(tvv.r3d_18(weights=None))


@register_backbone("mc3_18")
def mc3_18() -> nn.Module:
    return TorchvisionResNet3d(tvv.mc3_18(weights=None))


@register_backbone("r2plus1d_18")
def r2plus1d_18() -> nn.Module:
    return TorchvisionResNet3d(tvv.r2plus1d_18(weights=None))


class S3DFeatures(nn.Module):
    """torchvision S3D trunk + global average pool: (B, C, T, H, W) -> (B, 1024).

    torchvision's fixed (2, 7, 7) average pool assumes 224 px inputs; a global pool works for any
    clip size.
    """

    def __init__(self):
        super().__init__()
        self.features = tvv.s3d(weights=None).features
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # B 1024


@register_backbone("s3d")
def s3d() -> nn.Module:
    return S3DFeatures()


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions with a residual connection (R3D block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_ch)
        self.conv2 = nn.Conv3d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm3d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class R3DTiny(nn.Module):
    """R3D-style net with one block per stage and narrow widths (16, 32, 64, 128).

    Same layout as r3d_18 (stem (3, 7, 7) stride (1, 2, 2); stages 2-4 halve T, H and W) with about
    1/35 of its parameters (0.9 M), so that CPU tests and the synthetic evidence runs take minutes.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, widths[0], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        stages, in_ch = [], widths[0]
        for i, width in enumerate(widths):
            stages.append(BasicBlock3d(in_ch, width, stride=1 if i == 0 else 2))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)  # B D


@register_backbone("r3d_tiny")
def r3d_tiny() -> nn.Module:
    return R3DTiny()
