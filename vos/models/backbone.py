"""Frozen DINO ViT backbones (timm) that return the last block's attention keys per patch.

The features the method uses are the **keys** of the last attention layer (heads concatenated,
``C`` = embed dim) for every patch, plus the CLS token of the last (normed) layer output. They
are computed from the patch tokens entering the last block (timm's ``forward_intermediates``):
its ``norm1`` and ``attn.qkv``, whose output is laid out (B, N, 3, heads, head_dim), so the keys
are the middle third; this works with fused attention too.

Weights, in order of precedence:
* ``weights=None``: the official DINO weights through timm's pretrained mechanism (downloaded once,
  cached by huggingface_hub). When the hub cannot be reached (one quick connection attempt), the
  cached copy is used, and without one the error comes at once instead of after a minute of retries.
* ``weights="random"``: a seeded random initialisation (tests and benchmarks only).
* ``weights=PATH``: a local file: the official DINO backbone file (timm key names), the official
  *full* DINO checkpoint (teacher weights; ``module.``/``backbone.`` stripped, DINO head dropped),
  or a timm / safetensors state dict. Every backbone key must be present.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from vos.errors import VosError
from vos.fileio import load_torch_file

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_SEED = 0


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
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise VosError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
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
        than inside the block (~1% of the forward)."""
        B, _, H, W = images.shape
        if H % self.patch_size or W % self.patch_size:
            raise VosError(f"input size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        out = self.vit.forward_intermediates(images, indices=[len(self.vit.blocks) - 2], stop_early=not with_cls,
                                             output_fmt="NLC", intermediates_only=not with_cls)
        tokens, (entering,) = out if with_cls else (None, out)  # B 1+HW C (final, normed), B HW C
        last = self.vit.blocks[-1]
        keys = last.attn.qkv(last.norm1(entering))[..., self.dim : 2 * self.dim]  # B HW C
        return KeyFeatures(keys=keys, cls=None if tokens is None else tokens[:, 0],
                           grid=(H // self.patch_size, W // self.patch_size))


def model_input_size(resolution: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """``resolution`` (H, W) rounded to the nearest multiples of the patch size (at least one patch)."""
    return tuple(max(patch_size, int(round(s / patch_size)) * patch_size) for s in resolution)  # type: ignore[return-value]


def preprocess_frames(frames: np.ndarray, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB frames (n, H, W, 3) -> ImageNet-normalised float tensor (n, 3, h, w) at ``size``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
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


def _read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise VosError(f"{path}: not a readable safetensors file ({exc})") from exc
    # The official full DINO checkpoint pickles its argparse.Namespace of training arguments.
    return load_torch_file(path, "DINO/timm backbone weights (.pth or .safetensors)", safe_globals=[argparse.Namespace])


def backbone_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The backbone weights inside any supported checkpoint layout, with timm key names."""
    if "teacher" in checkpoint and isinstance(checkpoint["teacher"], dict):
        checkpoint = checkpoint["teacher"]  # full DINO checkpoint: the teacher is the model DINO evaluates
    for wrapper in ("state_dict", "model"):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], dict):
            checkpoint = checkpoint[wrapper]
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in ("module.", "_orig_mod.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("head."):
            continue  # DINO projection head, not part of the backbone
        state[key] = value
    return state


def load_backbone_weights(vit: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint into ``vit``; every backbone key must be found, with the right shape."""
    path = Path(path)
    if not path.is_file():
        raise VosError(f"{path}: weights file not found (pass --weights PATH to a DINO checkpoint, or omit it to download)")
    raw = _read_state_dict(path)
    if not isinstance(raw, dict):
        raise VosError(f"{path}: expected a state dict or a checkpoint dict, got {type(raw).__name__}")
    state = backbone_state_dict(raw)
    expected = vit.state_dict()
    matched = set(state) & set(expected)
    if not matched:
        raise VosError(f"{path}: no backbone weights found (none of its {len(state)} tensors matches a ViT key "
                       "such as 'blocks.0.attn.qkv.weight'); is this a DINO ViT checkpoint?")
    # timm's filter resamples position embeddings (and patch kernels) to this model's grid.
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn({k: state[k] for k in matched}, vit)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise VosError(f"{path}: {len(missing)} backbone weight(s) missing, e.g. {', '.join(missing[:4])}; "
                       "the file does not match this --backbone")
    wrong = [k for k in expected if state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise VosError(f"{path}: weight {k} has shape {tuple(state[k].shape)}, the backbone expects "
                       f"{tuple(expected[k].shape)}; the file does not match this --backbone")
    vit.load_state_dict(state, strict=True)


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
            raise VosError(f"backbone {name} has no official weights; use --weights random or --weights PATH")
        way_out = (f"download {official_url(name)} ({spec.official_file}) and pass --weights PATH, or run "
                   "with --weights random for a smoke test (random backbone, meaningless masks)")
        if hub_reachable():
            try:
                vit = _create_vit(spec, pretrained=True)
            except Exception as exc:
                raise VosError(f"cannot get the official weights of {name} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120]}); {way_out}") from exc
        else:
            cached = cached_official_file(spec)
            if cached is None:
                host, port = hub_address()
                raise VosError(f"cannot reach {host}:{port} to download the official weights of {name} (offline?) "
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
