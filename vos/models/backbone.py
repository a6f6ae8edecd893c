"""Frozen self-supervised ViT backbones (timm) that return the last block's attention keys per patch.

One registry, :data:`BACKBONES`, over the families, one per module as in timm: DINO
(vos.models.dino), DINOv2 with and without registers (vos.models.dinov2) and DINOv3
(vos.models.dinov3). Every one returns the last attention layer's keys of the patch tokens
(vos.models.vit_keys) with position handling as its official code does it.

Weights, in order of precedence:
* ``weights=None``: the official weights through timm's pretrained mechanism (downloaded once,
  cached by huggingface_hub). When the hub cannot be reached (one quick connection attempt), the
  cached copy is used, and without one the error comes at once instead of after a minute of retries.
* ``weights="random"``: a seeded random initialisation (tests and benchmarks only).
* ``weights=PATH``: a local file: the official backbone file of the family, in its own key format
  (DINO: timm's names; DINOv2 and DINOv3: converted by their modules), the official *full* training
  checkpoint (teacher weights; ``module.``/``backbone.`` stripped, heads dropped), a timm /
  safetensors state dict, or the SSL-UVOS release checkpoint (its ``encoder.*``). Every backbone
  key must be present, with this backbone's shape (position embeddings: any square grid).
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file
from vos.infra.schema import Anything, MapOf, check
from vos.models import dino, dinov2, dinov3
from vos.models.dino import DinoKeyBackbone, dino_pos_embed  # noqa: F401  (public import paths)
from vos.models.vit_keys import BackboneSpec, Family, KeyBackbone, KeyFeatures  # noqa: F401

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_SEED = 0
# The SSL-UVOS release stores the DINO ViT under this prefix of its model_state_dict.
RELEASE_ENCODER_PREFIX = "encoder."


# Every backbone, by family (one module each); vos.models.BACKBONE_NAMES spells the names out.
BACKBONES: dict[str, BackboneSpec] = {**dino.BACKBONES, **dinov2.BACKBONES, **dinov3.BACKBONES}
FAMILIES: dict[str, Family] = {"dino": dino.FAMILY, "dinov2": dinov2.FAMILY, "dinov3": dinov3.FAMILY}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def official_url(name: str) -> str | None:
    """Where the official file of ``name`` can be downloaded by hand (for messages)."""
    spec = backbone_spec(name)
    if spec.official_url is not None:
        return spec.official_url
    cfg = timm.models.get_pretrained_cfg(spec.timm_name)
    return getattr(cfg, "url", None) if cfg is not None else None


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
    """The backbone whose weights ``state`` (timm key names) holds: every weight present with
    its shape (the position embeddings may be of any square grid, see load_backbone_weights), and
    nothing else. None when no backbone fits. (Head counts do not show in the shapes; the known
    backbones differ in width, so they are told apart anyway.)"""
    for name in BACKBONES:
        shapes = backbone_shapes(name)
        if set(state) != set(shapes):
            continue
        pos_fits = "pos_embed" not in shapes or (  # DINOv3 has none (rotary embeddings)
            state["pos_embed"].ndim == 3 and state["pos_embed"].shape[-1] == shapes["pos_embed"][-1])
        if all(tuple(state[k].shape) == shape for k, shape in shapes.items() if k != "pos_embed") and pos_fits:
            return name
    return None


def load_backbone_weights(vit: nn.Module, path: str | Path, family: str = "dino") -> None:
    """Load a local checkpoint into ``vit`` (a model of ``family``); every backbone key must be found,
    with the right shape."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found (pass --weights PATH to a backbone checkpoint, or omit it "
                       "to download)")
    raw = _read_state_dict(path)  # a dict of string keys (checked there)
    load_backbone_state(vit, backbone_state_dict(raw), family, str(path))


def load_backbone_state(vit: nn.Module, state: dict[str, torch.Tensor], family: str, where: str) -> None:
    """Load backbone weights (timm's or the family's official key names) into ``vit``; ``where``
    names their origin in errors."""
    state = FAMILIES[family].official_to_timm(state, where)
    expected = vit.state_dict()
    matched = set(state) & set(expected)
    if not matched:
        raise UserError(f"{where}: no backbone weights found (none of its {len(state)} tensors matches a ViT key "
                       "such as 'blocks.0.attn.qkv.weight'); is this a ViT backbone checkpoint?")
    # Every weight but the position embeddings must have this backbone's shape as stored: timm's
    # filter would silently resample a patch kernel of another size (a patch-8 file loaded
    # as a patch-16 backbone).
    for k in sorted(matched - {"pos_embed"}):
        if state[k].shape != expected[k].shape:
            raise UserError(f"{where}: weight {k} has shape {tuple(state[k].shape)}, the backbone expects "
                           f"{tuple(expected[k].shape)}; the file ({describe_vit_weights(state)}) does not match "
                           "this --backbone")
    FAMILIES[family].load_state(vit, state, where)


def build_backbone(name: str = "dino_vits16", weights: str | None = None) -> KeyBackbone:
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
        load_backbone_weights(vit, weights, spec.family)
    else:
        if spec.official_file is None:
            raise UserError(f"backbone {name} has no official weights; use --weights random or --weights PATH")
        way_out = (f"download {spec.official_file} from {official_url(name)} and pass --weights PATH, or run "
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
    return FAMILIES[spec.family].key_backbone(vit, spec.patch_size)


def weights_tag(weights: str | None) -> str:
    """How a block checkpoint records the backbone weights it was trained on."""
    if weights is None:
        return "official"
    if weights == "random":
        return f"random(seed={RANDOM_WEIGHTS_SEED})"
    return f"file:{Path(weights).name}"
