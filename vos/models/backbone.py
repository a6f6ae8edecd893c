"""Frozen DINO ViT backbones (timm) that return the last block's attention keys per patch.

The features the method uses are the **keys** of the last attention layer (heads concatenated,
``C`` = embed dim) for every patch, plus the CLS token of the last (normed) layer output. They
are computed from the patch tokens entering the last block (the blocks run one by one):
its ``norm1`` and ``attn.qkv``, whose output is laid out (B, N, 3, heads, head_dim), so the keys
are the middle third; this works with fused attention too. Position embeddings are adapted to the
input's patch grid as DINO's own ``interpolate_pos_encoding`` does (:func:`dino_pos_embed`), not
by timm's resampling: the official DINO weights define their features through DINO's code.

Weights, in order of precedence:
* ``weights=None``: the official DINO weights through timm's pretrained mechanism (downloaded once,
  cached by huggingface_hub). When the hub cannot be reached (one quick connection attempt), the
  cached copy is used, and without one the error comes at once instead of after a minute of retries.
* ``weights="random"``: a seeded random initialisation (tests and benchmarks only).
* ``weights=PATH``: a local file: the official DINO backbone file (timm key names), the official
  *full* DINO checkpoint (teacher weights; ``module.``/``backbone.`` stripped, DINO head dropped),
  a timm / safetensors state dict, or the SSL-UVOS release checkpoint (its ``encoder.*``). Every
  backbone key must be present, with this backbone's shape (position embeddings: any square grid).
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from vos.infra.checkpoints import load_state_strict
from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file
from vos.infra.schema import Anything, MapOf, check

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_SEED = 0
# The SSL-UVOS release stores the DINO ViT under this prefix of its model_state_dict.
RELEASE_ENCODER_PREFIX = "encoder."


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    patch_size: int
    official_file: str | None  # the official DINO backbone file, for messages (None: no weights exist)
    timm_kwargs: dict = field(default_factory=dict)


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


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def official_url(name: str) -> str | None:
    cfg = timm.models.get_pretrained_cfg(backbone_spec(name).timm_name)
    return getattr(cfg, "url", None) if cfg is not None else None


class KeyFeatures(NamedTuple):
    keys: torch.Tensor  # B HW C  last-layer attention keys of the patches (heads concatenated)
    cls: torch.Tensor | None  # B C  last-layer (normed) CLS token; None when not asked for
    grid: tuple[int, int]  # (h, w) patch grid


class DinoKeyBackbone(nn.Module):
    """A frozen ViT that maps normalised images (B, 3, H, W) to :class:`KeyFeatures`."""

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

    @torch.no_grad()
    def forward(self, images: torch.Tensor, with_cls: bool = True) -> KeyFeatures:
        """Keys of the last block: its LayerNorm and key projection applied to the patch tokens that
        enter it (both act on each token alone). ``with_cls=False`` stops there: the last block's
        attention and MLP and the final norm only shape the CLS output, so they are skipped (1/12
        of ViT-S's blocks); with the CLS token the key projection of the patches runs once more
        than inside the block (~1% of the forward). Position embeddings are resampled to the input's
        patch grid as DINO does (:func:`dino_pos_embed`), not as timm does."""
        B, _, H, W = images.shape
        if H % self.patch_size or W % self.patch_size:
            raise UserError(f"input size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        vit = self.vit
        patches = vit.patch_embed(images)  # B h w C (dynamic image size) or B hw C
        grid = (H // self.patch_size, W // self.patch_size)
        x = torch.cat([vit.cls_token.expand(B, -1, -1), patches.reshape(B, grid[0] * grid[1], -1)], dim=1)
        x = vit.norm_pre(vit.patch_drop(vit.pos_drop(x + dino_pos_embed(vit.pos_embed, grid))))  # B 1+hw C
        for blk in vit.blocks[:-1]:
            x = blk(x)
        last = vit.blocks[-1]
        keys = last.attn.qkv(last.norm1(x[:, 1:]))[..., self.dim : 2 * self.dim]  # B HW C
        cls = vit.norm(last(x))[:, 0] if with_cls else None  # B C
        return KeyFeatures(keys=keys, cls=cls, grid=grid)


def dino_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """DINO's position embeddings (1, 1+n·n, C), trained on an n x n patch grid, for a (h, w) grid:
    (1, 1+h·w, C), computed as DINO's ``interpolate_pos_encoding`` computes them.

    The patch embeddings are upsampled bicubically (a = -0.75, half-pixel centres) with the scale
    factors (h + 0.1) / n and (w + 0.1) / n, which also set the sampling positions: output row i
    samples the source at (i + 0.5) · n / (h + 0.1) - 0.5, not at (i + 0.5) · n / h - 0.5 as a
    resize to a given size (timm's ``resample_abs_pos_embed``, which also antialiases) would. The
    n x n grid itself is returned unchanged. The CLS embedding is kept as is.
    """
    n = math.isqrt(pos_embed.shape[1] - 1)
    if n * n != pos_embed.shape[1] - 1:
        raise UserError(f"position embeddings of {pos_embed.shape[1] - 1} patches are not a square grid")
    h, w = grid
    if (h, w) == (n, n):
        return pos_embed
    C = pos_embed.shape[-1]
    square = pos_embed[:, 1:].reshape(1, n, n, C).permute(0, 3, 1, 2)  # 1 C n n
    resized = F.interpolate(square, scale_factor=((h + 0.1) / n, (w + 0.1) / n), mode="bicubic",
                            align_corners=False)  # 1 C h w
    return torch.cat([pos_embed[:, :1], resized.permute(0, 2, 3, 1).reshape(1, h * w, C)], dim=1)


def model_input_size(resolution: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """``resolution`` (H, W) rounded to the nearest multiples of the patch size (at least one patch)."""
    return tuple(max(patch_size, int(round(s / patch_size)) * patch_size) for s in resolution)  # type: ignore[return-value]


# How frames are resized to the model input (see preprocess_frames).
RESIZE_MODES = ("antialias", "bilinear")


def preprocess_frames(frames: np.ndarray, size: tuple[int, int], device: torch.device | str = "cpu",
                      normalisation: tuple[tuple[float, ...], tuple[float, ...]] = (IMAGENET_MEAN, IMAGENET_STD),
                      resize: str = "antialias") -> torch.Tensor:
    """uint8 RGB frames (n, H, W, 3) -> normalised float32 tensor (n, 3, h, w) at ``size``.

    ``normalisation`` is (mean, std) per channel of the [0, 1] image: ImageNet's by default, as
    DINO was trained. ``resize``: "antialias" resizes float32 [0, 1] images bilinearly with an
    antialiasing filter when shrinking (every input pixel contributes); "bilinear" resizes float64
    [0, 1] images bilinearly without antialiasing (each output pixel interpolates its 4 nearest
    input pixels) and then rounds to float32, as the SSL-UVOS release does (OpenCV INTER_LINEAR
    on float64 images).
    """
    if resize not in RESIZE_MODES:
        raise UserError(f"unknown resize mode {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2)  # n 3 H W uint8
    x = x.double().div_(255) if resize == "bilinear" else x.float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=resize == "antialias")
    x = x.float()
    mean, std = (torch.tensor(v, dtype=torch.float32, device=x.device).view(1, 3, 1, 1) for v in normalisation)
    return (x - mean) / std


def _create_vit(spec: BackboneSpec, pretrained: bool, cached_file: str | None = None) -> nn.Module:
    # cached_file: the official weights already in the local Hugging Face cache, loaded through
    # timm's pretrained mechanism like a download (same key filtering), without contacting the hub
    overlay = dict(file=cached_file) if cached_file is not None else None
    return timm.create_model(spec.timm_name, pretrained=pretrained, num_classes=0, dynamic_img_size=True,
                             pretrained_cfg_overlay=overlay, **spec.timm_kwargs)


# The official weights come from the Hugging Face Hub. Unreachable, huggingface_hub retries for about
# a minute before failing; one TCP connection attempt tells in seconds.
HUB_PROBE_TIMEOUT_S = 3.0
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's order: safetensors first


def hub_address() -> tuple[str, int]:
    """(host, port) that a download connects to first: the HTTPS proxy if one is set, else the hub."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies

    from huggingface_hub import constants

    url = urlsplit(getproxies().get("https") or constants.ENDPOINT)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to :func:`hub_address` opens within ``timeout`` seconds (False when
    huggingface_hub is set offline, HF_HUB_OFFLINE=1)."""
    import socket

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        with socket.create_connection(hub_address(), timeout=timeout):
            return True
    except OSError:  # name resolution, refused, unreachable, timed out
        return False


def cached_official_file(spec: BackboneSpec) -> str | None:
    """The official weights of ``spec`` in the local Hugging Face cache, if they are there."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(spec.timm_name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in HUB_WEIGHT_FILES:
        path = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(path, str):
            return path
    return None


WEIGHT_FILES = "DINO/timm backbone weights (.pth or .safetensors)"


def _read_state_dict(path: Path) -> dict:
    """The dict of string keys that a weights file holds (its layout is sorted out by
    backbone_state_dict); a one-line UserError for anything else."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error type and OSError; all are the file's
            cut = "IncompleteBuffer" in str(exc) or "incomplete" in str(exc).lower()
            raise UserError(f"{path}: damaged: cut short; copy or download it again" if cut else
                            f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:160]})") from None
    # The official full DINO checkpoint pickles its argparse.Namespace of training arguments.
    raw = load_torch_file(path, WEIGHT_FILES, safe_globals=[argparse.Namespace])
    return check(raw, MapOf(Anything()), path, f"expected {WEIGHT_FILES}")


def backbone_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The backbone weights inside any supported checkpoint layout, with timm key names."""
    if isinstance(checkpoint.get("model_state_dict"), dict):  # SSL-UVOS release: the DINO ViT is its encoder
        checkpoint = {k[len(RELEASE_ENCODER_PREFIX):]: v for k, v in checkpoint["model_state_dict"].items()
                      if k.startswith(RELEASE_ENCODER_PREFIX)}
    if "teacher" in checkpoint and isinstance(checkpoint["teacher"], dict):
        checkpoint = checkpoint["teacher"]  # full DINO checkpoint: the teacher is the model DINO evaluates
    for wrapper in ("state_dict", "model"):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], dict):
            checkpoint = checkpoint[wrapper]
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor) or not isinstance(key, str):
            continue  # optimiser states, training arguments and the like
        for prefix in ("module.", "_orig_mod.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("head."):
            continue  # DINO projection head, not part of the backbone
        state[key] = value
    return state


def backbone_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Shapes of every weight of backbone ``name`` (a model on the meta device: nothing is computed)."""
    spec = backbone_spec(name)
    with torch.device("meta"):
        vit = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, **spec.timm_kwargs)
    return {k: tuple(v.shape) for k, v in vit.state_dict().items()}


def describe_vit_weights(state: dict[str, torch.Tensor]) -> str:
    """'patch P, width C, D blocks' of a ViT state dict with timm/DINO key names, for messages."""
    proj = state.get("patch_embed.proj.weight")
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    if proj is None or proj.ndim != 4:
        return f"no patch embedding, {depth} blocks"
    return f"patch {proj.shape[-1]}, width {proj.shape[0]}, {depth} blocks"


def infer_backbone(state: dict[str, torch.Tensor]) -> str | None:
    """The backbone whose weights ``state`` (timm/DINO key names) holds: every weight present with
    its shape (the position embeddings may be of any square grid, see load_backbone_weights), and
    nothing else. None when no backbone fits. (Head counts do not show in the shapes; the known
    backbones differ in width, so they are told apart anyway.)"""
    for name in BACKBONES:
        shapes = backbone_shapes(name)
        if set(state) != set(shapes):
            continue
        if all(tuple(state[k].shape) == shape for k, shape in shapes.items() if k != "pos_embed") and \
                state["pos_embed"].ndim == 3 and state["pos_embed"].shape[-1] == shapes["pos_embed"][-1]:
            return name
    return None


def load_backbone_weights(vit: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint into ``vit``; every backbone key must be found, with the right shape."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found (pass --weights PATH to a DINO checkpoint, or omit it to download)")
    state = backbone_state_dict(_read_state_dict(path))
    expected = vit.state_dict()
    matched = set(state) & set(expected)
    if not matched:
        raise UserError(f"{path}: no backbone weights found (none of its {len(state)} tensors matches a ViT key "
                       "such as 'blocks.0.attn.qkv.weight'); is this a DINO ViT checkpoint?")
    # Every weight but the position embeddings must have this backbone's shape as stored: timm's
    # filter below would silently resample a patch kernel of another size (a patch-8 file loaded
    # as a patch-16 backbone).
    for k in sorted(matched - {"pos_embed"}):
        if state[k].shape != expected[k].shape:
            raise UserError(f"{path}: weight {k} has shape {tuple(state[k].shape)}, the backbone expects "
                           f"{tuple(expected[k].shape)}; the file ({describe_vit_weights(state)}) does not match "
                           "this --backbone")
    if "pos_embed" in matched:
        pos, width = state["pos_embed"], expected["pos_embed"].shape[-1]
        grid = math.isqrt(max(pos.shape[1] - 1, 0)) if pos.ndim == 3 else 0
        if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != width or grid < 1 or grid * grid != pos.shape[1] - 1:
            raise UserError(f"{path}: weight pos_embed has shape {tuple(pos.shape)}, the backbone expects (1, 1 + n*n, "
                           f"{width}) for a square grid of n x n patches; the file is damaged or of another model")
    # timm's filter resamples position embeddings to this model's grid.
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn({k: state[k] for k in matched}, vit)
    load_state_strict(vit, state, "this --backbone", path)


def build_backbone(name: str = "dino_vits16", weights: str | None = None) -> DinoKeyBackbone:
    """Build the frozen key extractor ``name`` with ``weights`` (None: official, 'random', or a path)."""
    spec = backbone_spec(name)
    if weights == "random":
        warnings.warn(f"backbone {name} uses random weights (seed {RANDOM_WEIGHTS_SEED}): "
                      "for tests and benchmarks only, the masks are not meaningful", stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            vit = _create_vit(spec, pretrained=False)
    elif weights is not None:
        vit = _create_vit(spec, pretrained=False)
        load_backbone_weights(vit, weights)
    else:
        if spec.official_file is None:
            raise UserError(f"backbone {name} has no official weights; use --weights random or --weights PATH")
        way_out = (f"download {official_url(name)} ({spec.official_file}) and pass --weights PATH, or run "
                   "with --weights random for a smoke test (random backbone, meaningless masks)")
        if hub_reachable():
            try:
                vit = _create_vit(spec, pretrained=True)
            except Exception as exc:
                raise UserError(f"cannot get the official weights of {name} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120]}); {way_out}") from exc
        else:
            cached = cached_official_file(spec)
            if cached is None:
                host, port = hub_address()
                raise UserError(f"cannot reach {host}:{port} to download the official weights of {name} (offline?) "
                               f"and they are not in the local cache; {way_out}")
            vit = _create_vit(spec, pretrained=True, cached_file=cached)
    return DinoKeyBackbone(vit, spec.patch_size)


def weights_tag(weights: str | None) -> str:
    """How a block checkpoint records the backbone weights it was trained on."""
    if weights is None:
        return "official"
    if weights == "random":
        return f"random(seed={RANDOM_WEIGHTS_SEED})"
    return f"file:{Path(weights).name}"
