"""The trained spatio-temporal Transformer block and its versioned checkpoint format.

One pre-norm Transformer block (LN → MHSA → residual, LN → MLP → residual) runs over the DINO key
tokens of all frames of a clip at once, with no positional or temporal encoding: attention alone
relates patches across space and time. Its head-averaged attention is what gets clustered.

Checkpoint format (``format: "vos.block"``, ``version: 1``), a dict saved with ``torch.save``:
``block`` (dim, num_heads, mlp_ratio), ``state_dict`` (the block's weights), ``backbone`` (name
and weights tag of the frozen backbone it was trained on), ``iteration``. Training checkpoints
add optimiser/scheduler/RNG state and the config; ``vos segment --block`` reads only the above.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp

from vos.errors import VosError
from vos.fileio import load_torch_file

BLOCK_FORMAT = "vos.block"
BLOCK_VERSION = 1


class SpatioTemporalBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, mlp_ratio: float = 4.0,
                 proj_drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise VosError(f"block dim {dim} is not divisible by its {num_heads} heads")
        self.dim, self.num_heads, self.mlp_ratio = dim, num_heads, mlp_ratio
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # B heads N hd

    def queries_keys(self, x: torch.Tensor, keys_of=slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled queries of tokens ``x`` (B, N, C), (B, heads, N, head_dim), and the keys of the
        sequences ``keys_of`` (an index along B; default all), (B', heads, N, head_dim).

        LN and the projection act per token, so frames can be projected independently and their
        queries/keys combined later (the inference path never builds the N x N matrix at once);
        the values, and keys nobody asks for, are not computed.
        """
        x = self.norm1(x)
        C = x.shape[-1]
        q = self._project(x, slice(0, C))  # the qkv rows of the queries, then of the keys
        k = self._project(x[keys_of], slice(C, 2 * C))
        return self._split_heads(q) * self.scale, self._split_heads(k)

    def _project(self, x: torch.Tensor, rows: slice) -> torch.Tensor:
        """x (B, N, C) through the qkv rows ``rows``; an identity projection (the training-free
        block's) returns x itself, which is exactly its product."""
        weight, bias = self.qkv.weight[rows], None if self.qkv.bias is None else self.qkv.bias[rows]
        if bias is None and weight.shape[0] == weight.shape[1] and \
                torch.equal(weight, torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)):
            return x
        return F.linear(x, weight, bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, N, C) -> (output tokens (B, N, C), head-averaged attention (B, N, N))."""
        B, N, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = self._split_heads(q) * self.scale, self._split_heads(k), self._split_heads(v)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)  # B heads N N
        out = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj_drop(self.proj(out))
        x = x + self.mlp(self.norm2(x))
        return x, attn.mean(dim=1)


def training_free_block(dim: int, num_heads: int = 8) -> SpatioTemporalBlock:
    """A block whose query/key projections are the identity: attention = softmax of the scaled
    dot products of layer-normalised DINO keys (per head, then averaged over heads)."""
    block = SpatioTemporalBlock(dim, num_heads)
    with torch.no_grad():
        eye = torch.eye(dim)
        block.qkv.weight.copy_(torch.cat([eye, eye, eye], dim=0))
    return block.eval()


def block_checkpoint(block: SpatioTemporalBlock, backbone: str, backbone_weights: str, iteration: int) -> dict:
    """The part of a checkpoint that ``load_block`` reads (training adds its own state beside it)."""
    return {
        "format": BLOCK_FORMAT,
        "version": BLOCK_VERSION,
        "block": {"dim": block.dim, "num_heads": block.num_heads, "mlp_ratio": block.mlp_ratio},
        "state_dict": {k: v.detach().cpu() for k, v in block.state_dict().items()},
        "backbone": {"name": backbone, "weights": backbone_weights},
        "iteration": iteration,
    }


def load_block(path: str | Path, backbone: str, backbone_dim: int) -> tuple[SpatioTemporalBlock, dict]:
    """Load a trained block for ``backbone``; returns (block in eval mode, checkpoint metadata)."""
    path = Path(path)
    if not path.is_file():
        raise VosError(f"{path}: block checkpoint not found (train one with 'vos train', or omit --block "
                       "for the training-free mode)")
    ckpt = load_torch_file(path, "a vos block checkpoint (written by 'vos train')")
    if not isinstance(ckpt, dict) or ckpt.get("format") != BLOCK_FORMAT:
        raise VosError(f"{path}: not a vos block checkpoint (no format '{BLOCK_FORMAT}'); "
                       "pass a checkpoint written by 'vos train'")
    if ckpt.get("version") != BLOCK_VERSION:
        raise VosError(f"{path}: block checkpoint version {ckpt.get('version')} is not supported "
                       f"(this vos reads version {BLOCK_VERSION})")
    trained_on = ckpt["backbone"]["name"]
    if trained_on != backbone:
        raise VosError(f"{path}: block was trained on backbone {trained_on}, not {backbone}; "
                       f"pass --backbone {trained_on}")
    hp = ckpt["block"]
    if hp["dim"] != backbone_dim:
        raise VosError(f"{path}: block dim {hp['dim']} does not match the backbone dim {backbone_dim}")
    block = SpatioTemporalBlock(hp["dim"], hp["num_heads"], hp["mlp_ratio"])
    block.load_state_dict(ckpt["state_dict"])
    meta = {k: ckpt[k] for k in ("backbone", "iteration")}
    return block.eval(), meta
