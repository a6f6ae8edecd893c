"""The trained spatio-temporal Transformer block and its versioned checkpoint format.

One pre-norm Transformer block (LN → MHSA → residual, LN → MLP → residual) runs over the DINO key
tokens of all frames of a clip at once, with no positional or temporal encoding: attention alone
relates patches across space and time. Its head-averaged attention is what gets clustered.

Checkpoint format (``format: "vos.block"``, ``version: 1``), a dict saved with ``torch.save``:
``block`` (dim, num_heads, mlp_ratio), ``state_dict`` (the block's weights), ``backbone`` (name
and weights tag of the frozen backbone it was trained on), ``iteration``. Training checkpoints
add optimiser/scheduler/RNG state and the config; ``vos segment --block`` reads only the above.
``vos segment --block`` and ``vos train --init-block`` also read the SSL-UVOS release file
(``checkpoint_dino-s-8.pth``), recognised by its keys (see ``read_block_checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp

from vos.infra.checkpoints import check_state_dict
from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file
from vos.infra.schema import Dict, Int, MapOf, Number, Str, Tensor, check

BLOCK_FORMAT = "vos.block"
BLOCK_VERSION = 1


class SpatioTemporalBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, mlp_ratio: float = 4.0,
                 proj_drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise UserError(f"block dim {dim} is not divisible by its {num_heads} heads")
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


# The SSL-UVOS release (``checkpoint_dino-s-8.pth``): {"model_state_dict": {"encoder.<DINO ViT key>",
# "temporal_transformer.0.<block key>"}, "iteration", "loss"}. Its block has 8 heads (a constant of
# the release's model code; head counts do not show in the weights) and no qkv bias.
RELEASE_FORMAT = "ssl-uvos"
RELEASE_BLOCK_PREFIX = "temporal_transformer.0."
RELEASE_NUM_HEADS = 8
# release block key prefix -> SpatioTemporalBlock key prefix
RELEASE_BLOCK_KEYS = {"norm1.": "norm1.", "attn.qkv.": "qkv.", "attn.proj.": "proj.", "norm2.": "norm2.",
                      "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."}
EXPECTED_FORMATS = (f"a 'vos train' checkpoint (format '{BLOCK_FORMAT}') or the SSL-UVOS release "
                    "(model_state_dict with encoder.* and temporal_transformer.0.*)")


@dataclass
class BlockCheckpoint:
    """A block checkpoint in either supported format, read and checked, not yet built."""

    path: Path
    format: str  # BLOCK_FORMAT or RELEASE_FORMAT
    dim: int
    num_heads: int
    mlp_ratio: float
    state_dict: dict  # SpatioTemporalBlock key names
    backbone: str  # the backbone the block was trained on
    backbone_weights: str  # its weights tag (vos.models.backbone.weights_tag)
    iteration: int
    has_encoder: bool  # the file holds the backbone's weights too (the release does)

    def build(self) -> SpatioTemporalBlock:
        block = SpatioTemporalBlock(self.dim, self.num_heads, self.mlp_ratio)
        block.load_state_dict(self.state_dict)
        return block.eval()


def _release_block_state(path: Path, model_state: dict) -> tuple[dict, int, float]:
    """The release's temporal block renamed to SpatioTemporalBlock keys, its dim and MLP ratio."""
    state = {}
    for key, value in model_state.items():
        if key.startswith(RELEASE_BLOCK_PREFIX):
            rest = key[len(RELEASE_BLOCK_PREFIX):]
            for theirs, ours in RELEASE_BLOCK_KEYS.items():
                if rest.startswith(theirs):
                    state[ours + rest[len(theirs):]] = value
    qkv = state.get("qkv.weight")
    fc1 = state.get("mlp.fc1.weight")
    if qkv is None or fc1 is None or qkv.ndim != 2 or fc1.ndim != 2 or qkv.shape[0] != 3 * qkv.shape[1] \
            or 0 in fc1.shape or fc1.shape[1] != qkv.shape[1]:
        raise UserError(f"{path}: {RELEASE_BLOCK_PREFIX}attn.qkv.weight must be a (3C, C) matrix and "
                       f"{RELEASE_BLOCK_PREFIX}mlp.fc1.weight a (hidden, C) matrix; got "
                       f"{None if qkv is None else tuple(qkv.shape)} and {None if fc1 is None else tuple(fc1.shape)}")
    dim = qkv.shape[1]
    mlp_ratio = fc1.shape[0] / dim
    if dim % RELEASE_NUM_HEADS:
        raise UserError(f"{path}: block width {dim} is not divisible by the release's {RELEASE_NUM_HEADS} heads")
    expected = _block_weights(dim, RELEASE_NUM_HEADS, mlp_ratio)
    for key, ref in expected.items():
        if key not in state or state[key].shape != ref.shape:
            theirs = next(t for t, o in RELEASE_BLOCK_KEYS.items() if key.startswith(o))
            got = tuple(state[key].shape) if key in state else "missing"
            raise UserError(f"{path}: {RELEASE_BLOCK_PREFIX}{theirs}{key[len(RELEASE_BLOCK_KEYS[theirs]):]} is "
                           f"{got}, expected {tuple(ref.shape)} (block width {dim})")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise UserError(f"{path}: unexpected block weight(s) {', '.join(extra[:4])} (e.g. a qkv bias); "
                       "the SSL-UVOS block has none")
    return state, dim, mlp_ratio


def _block_weights(dim: int, num_heads: int, mlp_ratio: float) -> dict[str, torch.Tensor]:
    """The weights of a block of these sizes, on the meta device (their names, shapes and dtypes;
    no memory is taken, whatever sizes a file claims)."""
    with torch.device("meta"):
        return SpatioTemporalBlock(dim, num_heads, mlp_ratio).state_dict()


# What each format must hold (vos.infra.schema); the weights are checked against the block's own.
_WEIGHTS = MapOf(Tensor(floating=True))
_BLOCK_FILE = Dict({
    "block": Dict({"dim": Int(min=1), "num_heads": Int(min=1), "mlp_ratio": Number(min=1e-3, max=1e3)}),
    "state_dict": _WEIGHTS,
    "backbone": Dict({"name": Str(), "weights": Str()}),
    "iteration": Int(min=0),
})
_RELEASE_FILE = Dict({"model_state_dict": _WEIGHTS, "iteration": Int(min=0), "loss": Number()},
                     optional=("iteration", "loss"))
# what to do about a block checkpoint that is damaged
_DAMAGED = "the file is damaged: copy it again, or train a new block with 'vos train'"
# what to do about a path that is not there, per option
_NOT_FOUND = {"--block": "train one with 'vos train', or omit --block for the training-free mode",
              "--init-block": "pass OUT/last.pt of 'vos train' or the SSL-UVOS release checkpoint, or omit "
                              "--init-block to start from random weights"}


def read_block_checkpoint(path: str | Path, flag: str = "--block") -> BlockCheckpoint:
    """Read a block checkpoint in either format (recognised by its keys); errors name the file and,
    for a missing file, what to pass as ``flag`` instead."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: block checkpoint not found; {_NOT_FOUND.get(flag, _NOT_FOUND['--block'])}")
    ckpt = load_torch_file(path, EXPECTED_FORMATS)
    if _is_block_file(ckpt):
        return check_block_file(path, ckpt)
    model_state = ckpt.get("model_state_dict") if isinstance(ckpt, dict) else None
    if not (isinstance(model_state, dict) and any(isinstance(k, str) and k.startswith(RELEASE_BLOCK_PREFIX)
                                                  for k in model_state)):
        raise UserError(f"{path}: not a block checkpoint; expected {EXPECTED_FORMATS}")
    return _read_release(path, check(ckpt, _RELEASE_FILE, path, _DAMAGED))


def _is_block_file(ckpt) -> bool:
    return isinstance(ckpt, dict) and isinstance(ckpt.get("format"), str) and ckpt["format"] == BLOCK_FORMAT


def check_block_file(path: Path, ckpt) -> BlockCheckpoint:
    """The block of a checkpoint of this toolkit's format (``ckpt``, loaded from ``path``), checked:
    version, sizes, backbone and every weight; a one-line UserError names what does not fit."""
    if not _is_block_file(ckpt):
        raise UserError(f"{path}: not a block checkpoint (no format {BLOCK_FORMAT!r}); {_DAMAGED}")
    version = check(ckpt, Dict({"version": Int()}), path, _DAMAGED)["version"]
    if version != BLOCK_VERSION:
        raise UserError(f"{path}: block checkpoint version {version} is not supported "
                       f"(this vos reads version {BLOCK_VERSION})")
    from vos.models.backbone import BACKBONES

    check(ckpt, _BLOCK_FILE, path, _DAMAGED)
    if ckpt["backbone"]["name"] not in BACKBONES:
        raise UserError(f"{path}: ['backbone']['name'] is {ckpt['backbone']['name']!r}, none of the known backbones "
                       f"({', '.join(BACKBONES)}); {_DAMAGED}")
    hp = ckpt["block"]
    if hp["dim"] % hp["num_heads"] or int(hp["dim"] * hp["mlp_ratio"]) < 1:
        raise UserError(f"{path}: ['block'] {hp} is no block (dim must be divisible by num_heads, dim x mlp_ratio "
                       f">= 1); {_DAMAGED}")
    check_state_dict(_block_weights(hp["dim"], hp["num_heads"], hp["mlp_ratio"]), ckpt["state_dict"],
                     f"its ['block'] {hp}", path)
    return BlockCheckpoint(path, BLOCK_FORMAT, hp["dim"], hp["num_heads"], hp["mlp_ratio"], ckpt["state_dict"],
                           ckpt["backbone"]["name"], ckpt["backbone"]["weights"], ckpt["iteration"], False)


def _read_release(path: Path, ckpt: dict) -> BlockCheckpoint:
    from vos.models.backbone import backbone_shapes, backbone_state_dict, describe_vit_weights, infer_backbone

    state, dim, mlp_ratio = _release_block_state(path, ckpt["model_state_dict"])
    encoder = backbone_state_dict(ckpt)
    backbone = infer_backbone(encoder)
    if backbone is None:
        raise UserError(f"{path}: its encoder ({describe_vit_weights(encoder)}) is none of the known backbones; "
                       "expected DINO ViT weights under encoder.* (dino_vits8 in the release)")
    width = backbone_shapes(backbone)["cls_token"][-1]
    if width != dim:
        raise UserError(f"{path}: block width {dim} does not match its encoder's width {width}")
    return BlockCheckpoint(path, RELEASE_FORMAT, dim, RELEASE_NUM_HEADS, mlp_ratio, state, backbone,
                           f"file:{path.name}", ckpt.get("iteration", 0), True)


def resolve_block(block_path: str | Path, backbone: str | None, weights: str | None, flag: str = "--block"
                  ) -> tuple[BlockCheckpoint, str, str | None]:
    """The block checkpoint, the backbone to run it on and that backbone's weights.

    The backbone is the checkpoint's; a different ``backbone`` is an error naming both. Without
    ``weights``, a checkpoint that holds the encoder (the SSL-UVOS release) provides them, so nothing
    is downloaded. ``flag`` names the option the path came from, in errors."""
    ckpt = read_block_checkpoint(block_path, flag)
    if backbone is not None and backbone != ckpt.backbone:
        what = "its encoder is" if ckpt.has_encoder else "the block was trained on"
        raise UserError(f"{ckpt.path}: {what} {ckpt.backbone}, not --backbone {backbone}; "
                       f"omit --backbone or pass --backbone {ckpt.backbone}")
    if weights is None and ckpt.has_encoder:
        weights = str(ckpt.path)
    return ckpt, ckpt.backbone, weights


def load_block(path: str | Path, backbone: str, backbone_dim: int) -> tuple[SpatioTemporalBlock, dict]:
    """Load a trained block (either format) for ``backbone``; returns (block in eval mode, metadata)."""
    ckpt, _, _ = resolve_block(path, backbone, "unused")
    if ckpt.dim != backbone_dim:
        raise UserError(f"{path}: block dim {ckpt.dim} does not match the backbone dim {backbone_dim}")
    meta = {"backbone": {"name": ckpt.backbone, "weights": ckpt.backbone_weights}, "iteration": ckpt.iteration}
    return ckpt.build(), meta
