"""The key names and shapes of the official DINOv2 and DINOv3 backbone files, and seeded random weights
in that layout (the references in test_backbone_families.py were computed by the official model code
from exactly these weights: its strict load also checked the names and shapes listed here)."""

from __future__ import annotations

import torch


def _block_shapes(depth: int, C: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (C,), b + "norm1.bias": (C,),
                       b + "attn.qkv.weight": (3 * C, C), b + "attn.qkv.bias": (3 * C,),
                       b + "attn.proj.weight": (C, C), b + "attn.proj.bias": (C,), b + "ls1.gamma": (C,),
                       b + "norm2.weight": (C,), b + "norm2.bias": (C,),
                       b + "mlp.fc1.weight": (4 * C, C), b + "mlp.fc1.bias": (4 * C,),
                       b + "mlp.fc2.weight": (C, 4 * C), b + "mlp.fc2.bias": (C,), b + "ls2.gamma": (C,)})
    return shapes


def dinov2_official_shapes(C: int, depth: int = 12, registers: int = 0, patch: int = 14,
                           grid: int = 37) -> dict[str, tuple[int, ...]]:
    """dinov2_vit?14[_reg4]_pretrain.pth: 518-px position embeddings (37 x 37 patches) with a CLS entry."""
    shapes = {"cls_token": (1, 1, C), "pos_embed": (1, 1 + grid * grid, C), "mask_token": (1, C)}
    if registers:
        shapes["register_tokens"] = (1, registers, C)
    shapes.update({"patch_embed.proj.weight": (C, 3, patch, patch), "patch_embed.proj.bias": (C,)})
    shapes.update(_block_shapes(depth, C))
    shapes.update({"norm.weight": (C,), "norm.bias": (C,)})
    return shapes


def dinov3_official_shapes(C: int, heads: int, depth: int = 12, patch: int = 16) -> dict[str, tuple[int, ...]]:
    """dinov3_vit?16_pretrain_lvd1689m-*.pth: 4 storage tokens, RoPE periods, masked key bias."""
    shapes = {"cls_token": (1, 1, C), "storage_tokens": (1, 4, C), "mask_token": (1, C),
              "patch_embed.proj.weight": (C, 3, patch, patch), "patch_embed.proj.bias": (C,),
              "rope_embed.periods": (C // heads // 4,)}
    for key, shape in _block_shapes(depth, C).items():
        shapes[key] = shape
        if key.endswith("attn.qkv.bias"):
            shapes[key + "_mask"] = shape
    shapes.update({"norm.weight": (C,), "norm.bias": (C,)})
    return shapes


def random_official_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights of these shapes, scaled so that every layer matters: linear and patch kernels
    ~ N(0, 1/fan_in), biases and tokens ~ N(0, 0.1²)/N(0, 0.5²), norm weights and layer scales ~ 1 + N(0, 0.1²),
    RoPE periods log-uniform in [1, 100] (not DINOv3's own schedule, so that the file's are seen to be
    used), key-bias masks as DINOv3's (1 for queries and values, 0 for keys)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("bias_mask"):
            value = torch.ones(shape)
            value[shape[0] // 3:2 * shape[0] // 3] = 0
        elif key == "rope_embed.periods":
            value = 100 ** torch.rand(shape, generator=g)
        elif key.endswith(("norm1.weight", "norm2.weight", "norm.weight", "gamma")):
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith(".weight"):
            fan_in = int(torch.tensor(shape[1:]).prod())
            value = torch.randn(shape, generator=g) / fan_in ** 0.5
        elif key.endswith(".bias"):
            value = 0.1 * torch.randn(shape, generator=g)
        else:  # cls/register/storage/mask tokens, position embeddings
            value = 0.5 * torch.randn(shape, generator=g)
        state[key] = value
    return state


def reference_input(size: tuple[int, int], seed: int) -> torch.Tensor:
    """A seeded normalised image (1, 3, H, W)."""
    return torch.randn((1, 3) + tuple(size), generator=torch.Generator().manual_seed(seed))
