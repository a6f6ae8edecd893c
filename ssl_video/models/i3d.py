"""I3D: Inception-v1 (GoogLeNet) inflated to 3D (Carreira & Zisserman 2017), computing what FAME's
I3D (``backbone/i3d.py`` of its release) computes.

Layer order and widths follow the original ``InceptionI3d`` up to ``Mixed_5c``; the logits layer is
replaced by a global average pool, (B, 3, T, H, W) -> (B, 1024). Padding is FAME's TensorFlow-style
"SAME": ``max(kernel - stride, 0)`` zeros per dimension, the smaller half before and the larger
after (so the 7x7x7 stride-2 stem pads 2 before and 3 after), independent of the input size;
max-pools pad the same way and round their output size up (``ceil_mode``). This equals
TensorFlow's "SAME" whenever every size is divisible by the stride (16x112x112 and 16x224x224
clips). BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1), as FAME's module does.

Parameter names are this module's (``features.<i>.conv`` / ``.bn``, branches ``b0``-``b3``);
:func:`from_fame_state_dict` renames FAME's (``conv3d_1a_7x7.conv3d``, ``mixed_3b.branch_1.0.batch3d``,
...) onto them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_video.models.registry import register_backbone
from vos.infra.errors import UserError


def same_padding(kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(before, after) zeros per dimension: ``max(k - s, 0)`` split with the extra one after."""
    pads = []
    for k, s in zip(kernel, stride):
        total = max(k - s, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _f_pad(pads: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """F.pad's order for (T, H, W) pads: last dimension first."""
    return tuple(p for before_after in reversed(pads) for p in before_after)


class Unit3D(nn.Module):
    """Conv3d (no bias, "SAME" padding) + BatchNorm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        pads = same_padding(kernel, stride)
        symmetric = all(before == after for before, after in pads)
        # asymmetric padding (the stride-2 stem) is applied before the convolution
        self.pre_pad = None if symmetric else _f_pad(pads)
        self.conv = nn.Conv3d(in_ch, out_ch, kernel, stride=stride, bias=False,
                              padding=tuple(before for before, _ in pads) if symmetric else 0)
        self.bn = nn.BatchNorm3d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return self.relu(self.bn(self.conv(x)))


class MaxPool3dSame(nn.Module):
    """Max-pool with "SAME" zero padding and ceil_mode (FAME's MaxPool3dTFPadding). Its inputs are
    ReLU outputs (>= 0), so zero padding never wins over a real value."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.pad = _f_pad(same_padding(kernel, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, self.pad), self.kernel, self.stride, ceil_mode=True)


class InceptionBlock3d(nn.Module):
    """Four branches: 1x1; 1x1->3x3; 1x1->3x3; 3x3 max-pool->1x1; concatenated over channels."""

    def __init__(self, in_ch: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.b0 = Unit3D(in_ch, b0)
        self.b1 = nn.Sequential(Unit3D(in_ch, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.b2 = nn.Sequential(Unit3D(in_ch, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.b3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_ch, b3))
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

# FAME's name of each layer with weights -> its index in I3D.features
FAME_LAYERS = {"conv3d_1a_7x7": 0, "conv3d_2b_1x1": 2, "conv3d_2c_3x3": 3, "mixed_3b": 5, "mixed_3c": 6,
               "mixed_4b": 8, "mixed_4c": 9, "mixed_4d": 10, "mixed_4e": 11, "mixed_4f": 12,
               "mixed_5b": 14, "mixed_5c": 15}
_FAME_PARTS = {"conv3d": "conv", "batch3d": "bn", "branch_0": "b0", "branch_1": "b1", "branch_2": "b2",
               "branch_3": "b3"}


class I3D(nn.Module):
    def __init__(self):
        super().__init__()

        def mixed(name: str) -> InceptionBlock3d:
            return InceptionBlock3d(*_MIXED[name])

        self.features = nn.Sequential(
            Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),                      # Conv3d_1a_7x7
            MaxPool3dSame((1, 3, 3), (1, 2, 2)),                      # MaxPool3d_2a_3x3
            Unit3D(64, 64),                                           # Conv3d_2b_1x1
            Unit3D(64, 192, (3, 3, 3)),                               # Conv3d_2c_3x3
            MaxPool3dSame((1, 3, 3), (1, 2, 2)),                      # MaxPool3d_3a_3x3
            mixed("Mixed_3b"), mixed("Mixed_3c"),
            MaxPool3dSame((3, 3, 3), (2, 2, 2)),                      # MaxPool3d_4a_3x3
            mixed("Mixed_4b"), mixed("Mixed_4c"), mixed("Mixed_4d"), mixed("Mixed_4e"), mixed("Mixed_4f"),
            MaxPool3dSame((2, 2, 2), (2, 2, 2)),                      # MaxPool3d_5a_2x2
            mixed("Mixed_5b"), mixed("Mixed_5c"),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # B 1024


def fame_key(name: str) -> str:
    """This module's name for FAME's I3D parameter ``name`` (e.g. ``mixed_3b.branch_1.0.conv3d.weight``
    -> ``features.5.b1.0.conv.weight``); UserError for a name FAME's trunk does not have."""
    layer, _, rest = name.partition(".")
    if layer not in FAME_LAYERS or not rest:
        raise UserError(f"{name!r} is not a parameter of FAME's I3D trunk")
    parts = [_FAME_PARTS.get(part, part) for part in rest.split(".")]
    return ".".join(["features", str(FAME_LAYERS[layer]), *parts])


def from_fame_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """FAME's I3D trunk weights (no head) renamed onto :class:`I3D`."""
    return {fame_key(name): value for name, value in state.items()}


@register_backbone("i3d")
def i3d() -> nn.Module:
    return I3D()
