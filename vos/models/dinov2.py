"""DINOv2 ViTs, with and without registers (timm's ``vit_*_patch14[_reg4]_dinov2.lvd142m``).

Tokens as DINOv2's ``prepare_tokens_with_masks``: [CLS, patches] plus position embeddings resampled
to the input's grid, then the registers inserted after the CLS token (they have no position
embedding). The official models resample with offset 0.1 and no antialiasing without registers,
and to the exact size with antialiasing with registers (their hub constructors'
``interpolate_offset``/``interpolate_antialias``); :func:`resample_patch_pos_embed` does both.
timm resamples every DINOv2 by size with antialiasing, which differs for the models without
registers, so the blocks are run here.

Official files (``dinov2_vits14_pretrain.pth``, ``dinov2_vits14_reg4_pretrain.pth``, ...) differ from
timm's layout in ``register_tokens`` (timm: ``reg_token``), ``mask_token`` (training only) and, with
registers, in where the CLS position embedding lives: timm's register models keep no CLS entry in
``pos_embed`` and hold it added to ``cls_token`` (exactly what the official model adds).
"""

from __future__ import annotations

import re

import torch

from vos.models.dino import load_vit_state, resample_patch_pos_embed
from vos.models.vit_keys import BackboneSpec, Family, KeyBackbone

OFFICIAL_URL = "https://dl.fbaipublicfiles.com/dinov2/{arch}/{file}"


def _spec(timm_name: str, arch: str, registers: bool) -> BackboneSpec:
    file = f"{arch}{'_reg4' if registers else ''}_pretrain.pth"
    return BackboneSpec(timm_name, 14, file, family="dinov2", official_url=OFFICIAL_URL.format(arch=arch, file=file))


# A 2-block, 64-d ViT of each layout, random weights only (tests and quick experiments).
TINY = dict(embed_dim=64, depth=2, num_heads=4)

BACKBONES: dict[str, BackboneSpec] = {
    "dinov2_vits14": _spec("vit_small_patch14_dinov2.lvd142m", "dinov2_vits14", registers=False),
    "dinov2_vits14_reg": _spec("vit_small_patch14_reg4_dinov2.lvd142m", "dinov2_vits14", registers=True),
    "dinov2_vitb14": _spec("vit_base_patch14_dinov2.lvd142m", "dinov2_vitb14", registers=False),
    "dinov2_vitb14_reg": _spec("vit_base_patch14_reg4_dinov2.lvd142m", "dinov2_vitb14", registers=True),
    "test_dinov2_tiny14": BackboneSpec("vit_small_patch14_dinov2", 14, None, TINY, family="dinov2"),
    "test_dinov2_reg_tiny14": BackboneSpec("vit_small_patch14_reg4_dinov2", 14, None, TINY, family="dinov2"),
}


class Dinov2KeyBackbone(KeyBackbone):
    """DINOv2's tokens: [CLS, registers, patches], position embeddings on CLS and patches only."""

    def tokens(self, images: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, int, dict]:
        vit = self.vit
        B = images.shape[0]
        patches = vit.patch_embed(images).reshape(B, grid[0] * grid[1], -1)  # B hw C
        registers = vit.reg_token is not None
        if vit.no_embed_class:  # timm's register layout: the CLS position embedding is inside cls_token
            cls, patch_pos = vit.cls_token, vit.pos_embed  # 1 1 C, 1 n·n C
        else:
            cls, patch_pos = vit.cls_token + vit.pos_embed[:, :1], vit.pos_embed[:, 1:]
        patches = patches + resample_patch_pos_embed(patch_pos, grid, offset=0.0 if registers else 0.1,
                                                     antialias=registers)
        prefix = torch.cat([cls] + ([vit.reg_token] if registers else []), dim=1).expand(B, -1, -1)  # B 1+regs C
        x = vit.norm_pre(vit.patch_drop(vit.pos_drop(torch.cat([prefix, patches], dim=1))))  # B 1+regs+hw C
        return x, prefix.shape[1], {}


# Training checkpoints with block_chunks > 0 nest the blocks as blocks.<chunk>.<index> (the index is global).
CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.")


def official_to_timm(state: dict, where: str) -> dict:
    """An official DINOv2 state dict (recognised by its ``mask_token`` or ``register_tokens``) with
    timm's key names; other states are returned as they are."""
    if "mask_token" not in state and "register_tokens" not in state:
        return state
    out = {CHUNKED_BLOCK.sub(r"blocks.\1.", k): v for k, v in state.items() if k != "mask_token"}
    if "register_tokens" in out:
        out["reg_token"] = out.pop("register_tokens")
        if "cls_token" in out and "pos_embed" in out:
            pos = out.pop("pos_embed")
            out["cls_token"] = out["cls_token"] + pos[:, :1]
            out["pos_embed"] = pos[:, 1:]
    return out


FAMILY = Family(Dinov2KeyBackbone, official_to_timm, load_vit_state)
