"""What every backbone family shares: its registry entry and the last-layer key extraction.

A key backbone is a frozen timm ViT run block by block. Its features are the **keys** of the last
attention layer (heads concatenated, ``C`` = embed dim) of the patch tokens only (class and
register tokens left out), computed from the tokens entering the last block: its ``norm1`` and the
key rows of ``attn.qkv``, whose output is laid out (B, N, 3, heads, head_dim). The CLS output is the
last block's output through the final norm. Each family (vos.models.dino, dinov2, dinov3) builds
the tokens entering the blocks (position handling as its official code does) and the per-block
arguments (DINOv3's rotary embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from vos.infra.errors import UserError


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    patch_size: int
    official_file: str | None  # the official backbone file, for messages (None: no weights exist)
    timm_kwargs: dict = field(default_factory=dict)
    family: str = "dino"  # vos.models.<family>: its KeyBackbone and official key format
    # Where the official file can be downloaded by hand, for messages (None: timm's pretrained URL).
    official_url: str | None = None


class KeyFeatures(NamedTuple):
    keys: torch.Tensor  # B HW C  last-layer attention keys of the patches (heads concatenated)
    cls: torch.Tensor | None  # B C  last-layer (normed) CLS token; None when not asked for
    grid: tuple[int, int]  # (h, w) patch grid


def key_projection(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The key rows of a timm attention's fused ``qkv`` applied to tokens x (B, N, C): (B, N, C).

    timm's ViT keeps the bias in ``qkv.bias``; its EVA/DINOv3 attention keeps ``q_bias`` and
    ``v_bias`` apart and a key bias fixed at zero (``k_bias``, DINOv3's masked key bias)."""
    C = x.shape[-1]
    weight = attn.qkv.weight[C:2 * C]
    if attn.qkv.bias is not None:
        bias = attn.qkv.bias[C:2 * C]
    else:
        bias = getattr(attn, "k_bias", None)
    return F.linear(x, weight, bias)


class KeyBackbone(nn.Module):
    """A frozen ViT that maps normalised images (B, 3, H, W) to :class:`KeyFeatures`.

    Families define :meth:`tokens`: the token sequence entering the first block, the number of
    prefix (class and register) tokens at its start, and keyword arguments for every block."""

    def __init__(self, vit: nn.Module, patch_size: int):
        super().__init__()
        self.vit = vit
        self.patch_size = patch_size
        self.dim = vit.embed_dim
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # Always frozen: dropout and the like stay in eval mode whatever the caller does.
        return super().train(False)

    def tokens(self, images: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, int, dict]:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images: torch.Tensor, with_cls: bool = True) -> KeyFeatures:
        """Keys of the last block: its LayerNorm and key projection applied to the patch tokens that
        enter it (both act on each token alone). ``with_cls=False`` stops there: the last block's
        attention and MLP and the final norm only shape the CLS output, so they are skipped (1/12
        of a 12-block ViT); with the CLS token the key projection of the patches runs once more
        than inside the block (~1% of the forward)."""
        _, _, H, W = images.shape
        if H % self.patch_size or W % self.patch_size:
            raise UserError(f"input size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        grid = (H // self.patch_size, W // self.patch_size)
        x, prefix, block_kwargs = self.tokens(images, grid)  # B prefix+hw C
        for blk in self.vit.blocks[:-1]:
            x = blk(x, **block_kwargs)
        last = self.vit.blocks[-1]
        keys = key_projection(last.attn, last.norm1(x[:, prefix:]))  # B HW C
        cls = self.vit.norm(last(x, **block_kwargs))[:, 0] if with_cls else None  # B C
        return KeyFeatures(keys=keys, cls=cls, grid=grid)


@dataclass(frozen=True)
class Family:
    """How one family builds its key extractor and reads the official files' key format."""

    key_backbone: type[KeyBackbone]
    # official key names -> timm's (identity where they are timm's already); (state, where) -> state
    official_to_timm: Callable[[dict, str], dict]
    # loads a timm-named state into the timm model (after the shape checks); (vit, state, where)
    load_state: Callable[[nn.Module, dict, str], None]
