"""I3D: Inception-v1 (GoogLeNet) inflated to 3D (Carreira & Zisserman 2017), as used by FAME.

Layer names and widths follow the original ``InceptionI3d`` up to ``Mixed_5c``; the logits layer
is replaced by a global average pool, (B, 3, T, H, W) -> (B, 1024). Padding is symmetric
(``kernel // 2``) instead of TensorFlow's "SAME", which only matters for loading TF weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ssl_video.models.registry import register_backbone


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.conv = nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(out_ch, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionBlock3d(nn.Module):
    """Four branches: 1x1; 1x1->3x3; 1x1->3x3; 3x3 max-pool->1x1; concatenated over channels."""

    def __init__(self, in_ch: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.b0 = Unit3D(in_ch, b0)
        self.b1 = nn.Sequential(Unit3D(in_ch, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.b2 = nn.Sequential(Unit3D(in_ch, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), Unit3D(in_ch, b3))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


# (name, input channels, branch widths) of the Inception blocks, in order.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class I3D(nn.Module):
    def __init__(self):
        super().__init__()

        def mixed(name: str) -> InceptionBlock3d:
            return InceptionBlock3d(*_MIXED[name])

        self.features = nn.Sequential(
            Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),                      # Conv3d_1a_7x7
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),    # MaxPool3d_2a_3x3
            Unit3D(64, 64),                                           # Conv3d_2b_1x1
            Unit3D(64, 192, (3, 3, 3)),                               # Conv3d_2c_3x3
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),    # MaxPool3d_3a_3x3
            mixed("Mixed_3b"), mixed("Mixed_3c"),
            nn.MaxPool3d(3, 2, padding=1),                            # MaxPool3d_4a_3x3
            mixed("Mixed_4b"), mixed("Mixed_4c"), mixed("Mixed_4d"), mixed("Mixed_4e"), mixed("Mixed_4f"),
            nn.MaxPool3d(2, 2, ceil_mode=True),                       # MaxPool3d_5a_2x2
            mixed("Mixed_5b"), mixed("Mixed_5c"),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # B 1024


@register_backbone("i3d")
def i3d() -> nn.Module:
    return I3D()
