"""DINO (v1) ViTs: absolute position embeddings resampled as DINO's ``interpolate_pos_encoding``.

The official DINO backbone files use timm's key names, so no key conversion is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vos.infra.checkpoints import load_state_strict
from vos.infra.errors import UserError
from vos.models.vit_keys import BackboneSpec, Family, KeyBackbone

BACKBONES: dict[str, BackboneSpec] = {
    "dino_vits16": BackboneSpec("vit_small_patch16_224.dino", 16, "dino_deitsmall16_pretrain.pth"),
    "dino_vits8": BackboneSpec("vit_small_patch8_224.dino", 8, "dino_deitsmall8_pretrain.pth"),
    "dino_vitb16": BackboneSpec("vit_base_patch16_224.dino", 16, "dino_vitbase16_pretrain.pth"),
    "dino_vitb8": BackboneSpec("vit_base_patch8_224.dino", 8, "dino_vitbase8_pretrain.pth"),
    # A 2-block, 64-d ViT with the DINO layout: random weights only, for tests and quick experiments.
    "test_vit_tiny16": BackboneSpec("vit_small_patch16_224", 16, None,
                                    dict(embed_dim=64, depth=2, num_heads=4)),
    # The same with patch 8, as the SSL-UVOS release's ViT-S/8 (tests of that format).
    "test_vit_tiny8": BackboneSpec("vit_small_patch8_224", 8, None, dict(embed_dim=64, depth=2, num_heads=4)),
}


def resample_patch_pos_embed(patch_pos: torch.Tensor, grid: tuple[int, int], offset: float = 0.1,
                             antialias: bool = False) -> torch.Tensor:
    """Patch position embeddings (1, n·n, C) of an n x n grid resampled to a (h, w) grid: (1, h·w, C),
    bicubically (half-pixel centres) as DINO's and DINOv2's ``interpolate_pos_encoding`` do.

    ``offset`` > 0 (DINO; DINOv2 without registers: 0.1) resizes with the scale factors
    (h + offset) / n and (w + offset) / n, which also set the sampling positions: output row i
    samples the source at (i + 0.5) · n / (h + 0.1) - 0.5, not at (i + 0.5) · n / h - 0.5 as a
    resize to a given size would. ``offset`` 0 (DINOv2 with registers) resizes to the size (h, w).
    ``antialias`` (DINOv2 with registers) widens the kernel when shrinking, and PyTorch's
    antialiased bicubic kernel has a = -0.5 where the plain one has a = -0.75. The n x n grid itself
    is returned unchanged (no resampling at all, as the official code does).
    """
    n = math.isqrt(patch_pos.shape[1])
    if n * n != patch_pos.shape[1]:
        raise UserError(f"position embeddings of {patch_pos.shape[1]} patches are not a square grid")
    h, w = grid
    if (h, w) == (n, n):
        return patch_pos
    C = patch_pos.shape[-1]
    square = patch_pos.reshape(1, n, n, C).permute(0, 3, 1, 2)  # 1 C n n
    if offset:
        resized = F.interpolate(square, scale_factor=((h + offset) / n, (w + offset) / n), mode="bicubic",
                                align_corners=False, antialias=antialias)  # 1 C h w
    else:
        resized = F.interpolate(square, size=(h, w), mode="bicubic", align_corners=False, antialias=antialias)
    return resized.permute(0, 2, 3, 1).reshape(1, h * w, C)


def dino_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """DINO's position embeddings (1, 1+n·n, C), trained on an n x n patch grid, for a (h, w) grid:
    (1, 1+h·w, C), computed as DINO's ``interpolate_pos_encoding`` computes them (offset 0.1, no
    antialiasing: :func:`resample_patch_pos_embed`). The CLS embedding is kept as is; on the n x n
    grid ``pos_embed`` itself is returned."""
    if pos_embed.shape[1] - 1 == grid[0] * grid[1] and grid[0] == grid[1]:
        return pos_embed
    return torch.cat([pos_embed[:, :1], resample_patch_pos_embed(pos_embed[:, 1:], grid)], dim=1)


class DinoKeyBackbone(KeyBackbone):
    """DINO's tokens: [CLS, patches] plus position embeddings resampled by :func:`dino_pos_embed`."""

    def tokens(self, images: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, int, dict]:
        vit = self.vit
        B = images.shape[0]
        patches = vit.patch_embed(images).reshape(B, grid[0] * grid[1], -1)  # B hw C
        x = torch.cat([vit.cls_token.expand(B, -1, -1), patches], dim=1)
        x = vit.norm_pre(vit.patch_drop(vit.pos_drop(x + dino_pos_embed(vit.pos_embed, grid))))  # B 1+hw C
        return x, 1, {}


def load_vit_state(vit: nn.Module, state: dict, where: str) -> None:
    """Load timm-named ViT weights; position embeddings of another grid are resampled (timm's filter)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    if "pos_embed" in state:  # the filter resamples a square grid of patch positions, after the prefix tokens
        pos, width = state["pos_embed"], vit.pos_embed.shape[-1]
        prefix = 0 if getattr(vit, "no_embed_class", False) else vit.num_prefix_tokens
        grid = math.isqrt(max(pos.shape[1] - prefix, 0)) if pos.ndim == 3 else 0
        if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != width or grid < 1 or grid * grid != pos.shape[1] - prefix:
            raise UserError(f"{where}: weight pos_embed has shape {tuple(pos.shape)}, the backbone expects "
                            f"(1, {prefix} + n*n, {width}) for a square grid of n x n patches; the file is damaged or "
                            "of another model")
    load_state_strict(vit, checkpoint_filter_fn(state, vit), "this --backbone", where)


def official_to_timm(state: dict, where: str) -> dict:
    return state  # the official DINO files use timm's key names


FAMILY = Family(DinoKeyBackbone, official_to_timm, load_vit_state)
