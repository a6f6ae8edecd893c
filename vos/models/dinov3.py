"""DINOv3 ViTs with rotary position embeddings (timm's ``vit_*_patch16_dinov3_qkvb.lvd1689m``).

Tokens as DINOv3's ``prepare_tokens_with_masks``: [CLS, 4 storage (register) tokens, patches], no
absolute position embedding. Every attention rotates the queries and keys of the patches (not of
the prefix tokens) by :func:`dinov3_rope`, DINOv3's ``RopePositionEmbedding`` at inference:
patch centres normalised to [-1, 1] separately along each axis, so any grid covers the same range.

The keys returned are the last layer's key projection **before** the rotation: the rotation only
makes sense inside q·k (it turns the dot product into a function of relative position), while
the key projection is what the patch says about its content, as DINO's keys are.

timm's ``_qkvb`` variants are used because they hold every official weight: the official ViT-S/16
and ViT-B/16 have a qkv bias whose key part is masked to zero (``mask_k_bias``); timm keeps the
query and value biases (``q_bias``, ``v_bias``), while its variants without ``_qkvb`` drop them.

Official files (``dinov3_vits16_pretrain_lvd1689m-08c60483.pth``, ...) differ from timm's layout in
``storage_tokens`` (timm: ``reg_token``), ``ls1/ls2.gamma`` (``gamma_1/2``), the fused
``attn.qkv.bias`` with its ``bias_mask`` (timm: ``q_bias``/``v_bias``), ``mask_token`` (training
only) and ``rope_embed.periods``, which timm recomputes (float32) rather than loads. The periods of
an official file are used as stored, as the official model loads them.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn

from vos.infra.checkpoints import load_state_strict
from vos.infra.errors import UserError
from vos.models.vit_keys import BackboneSpec, Family, KeyBackbone

OFFICIAL_SOURCE = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/ (access on request)"

BACKBONES: dict[str, BackboneSpec] = {
    "dinov3_vits16": BackboneSpec("vit_small_patch16_dinov3_qkvb.lvd1689m", 16,
                                  "dinov3_vits16_pretrain_lvd1689m-08c60483.pth", family="dinov3",
                                  official_url=OFFICIAL_SOURCE),
    "dinov3_vitb16": BackboneSpec("vit_base_patch16_dinov3_qkvb.lvd1689m", 16,
                                  "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth", family="dinov3",
                                  official_url=OFFICIAL_SOURCE),
    # A 2-block, 64-d DINOv3 layout (4 registers, RoPE), random weights only (tests and quick experiments).
    "test_dinov3_tiny16": BackboneSpec("vit_small_patch16_dinov3_qkvb", 16, None,
                                       dict(embed_dim=64, depth=2, num_heads=4), family="dinov3"),
}


def dinov3_rope(grid: tuple[int, int], periods: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DINOv3's rotary embedding of a (h, w) patch grid at inference: (sin, cos), each (h·w, head_dim).

    Patch (i, j) sits at y = 2 (i + 0.5) / h - 1, x = 2 (j + 0.5) / w - 1; with P = head_dim / 4
    periods p_k, its angles are 2π y / p_k (k < P) then 2π x / p_k, and that half is repeated to
    fill head_dim (the rotate-half layout: dimension d pairs with d + head_dim / 2).
    """
    h, w = grid
    periods = periods.float()
    ys = torch.arange(0.5, h, device=periods.device, dtype=torch.float32) / h
    xs = torch.arange(0.5, w, device=periods.device, dtype=torch.float32) / w
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flatten(0, 1) * 2.0 - 1.0  # hw 2
    angles = (2 * math.pi * coords[:, :, None] / periods).flatten(1)  # hw 2P
    angles = torch.cat([angles, angles], dim=-1)  # hw head_dim
    return angles.sin(), angles.cos()


class Dinov3KeyBackbone(KeyBackbone):
    """DINOv3's tokens [CLS, registers, patches] and its rotary embedding, passed to every block."""

    def tokens(self, images: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, int, dict]:
        vit = self.vit
        B = images.shape[0]
        patches = vit.patch_embed(images).reshape(B, grid[0] * grid[1], -1)  # B hw C
        prefix = torch.cat([vit.cls_token, vit.reg_token], dim=1).expand(B, -1, -1)  # B 1+regs C
        x = vit.norm_pre(vit.pos_drop(torch.cat([prefix, patches], dim=1)))  # B 1+regs+hw C
        sin, cos = dinov3_rope(grid, vit.rope.periods)
        return x, prefix.shape[1], {"rope": torch.cat([sin, cos], dim=-1)}  # timm's layout: hw 2·head_dim


QKV_BIAS = re.compile(r"^(blocks\.\d+\.attn\.)qkv\.bias$")
OFFICIAL_RENAMES = (("storage_tokens", "reg_token"), (".ls1.gamma", ".gamma_1"), (".ls2.gamma", ".gamma_2"),
                    ("rope_embed.periods", "rope.periods"))


def official_to_timm(state: dict, where: str) -> dict:
    """An official DINOv3 state dict (recognised by its ``storage_tokens``) with timm's key names;
    ``rope.periods`` is kept for :func:`load_state`. Other states are returned as they are."""
    if "storage_tokens" not in state:
        return state
    out = {}
    for key, value in state.items():
        if key == "mask_token" or key.endswith(".bias_mask"):
            continue
        qkv = QKV_BIAS.match(key)
        if qkv:
            mask = state.get(key + "_mask")
            q, k, v = (value * mask.to(value.dtype) if mask is not None else value).chunk(3)
            if mask is not None and bool(mask.chunk(3)[1].any()):
                raise UserError(f"{where}: {key}_mask does not mask the key bias; timm's DINOv3 (and the "
                                "official ViT-S/16 and ViT-B/16) fix it at zero")
            out[qkv.group(1) + "q_bias"], out[qkv.group(1) + "v_bias"] = q, v
            continue
        for theirs, ours in OFFICIAL_RENAMES:
            key = key.replace(theirs, ours)
        out[key] = value
    return out


def load_state(vit: nn.Module, state: dict, where: str) -> None:
    """Load timm-named DINOv3 weights; ``rope.periods``, when given (official files), replaces timm's."""
    periods = state.get("rope.periods")
    expected = vit.state_dict()
    load_state_strict(vit, {k: v for k, v in state.items() if k in expected}, "this --backbone", where)
    if periods is not None:
        if tuple(periods.shape) != tuple(vit.rope.periods.shape):
            raise UserError(f"{where}: rope_embed.periods has shape {tuple(periods.shape)}, the backbone expects "
                           f"{tuple(vit.rope.periods.shape)}; the file does not match this --backbone")
        with torch.no_grad():
            vit.rope.periods.copy_(periods.float())


FAMILY = Family(Dinov3KeyBackbone, official_to_timm, load_state)
