"""Backbones from checkpoints: a MoCo pretraining run (its query encoder) or a fine-tuning run."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ssl_video.checkpoint import checked_field, load_checkpoint, load_state_checked
from ssl_video.models import build_backbone
from vos.errors import VosError

# where each kind of checkpoint keeps the backbone's weights in its "model" state dict
_BACKBONE_PREFIX = {"moco_pretrain": "encoder_q.backbone.", "finetune": "backbone."}


def load_backbone(path: str | Path, arch: str | None = None) -> tuple[nn.Module, str]:
    """(backbone with the checkpoint's weights, arch). ``arch`` defaults to the checkpoint's own and,
    if given, must agree with it. Loading is strict: every backbone weight must be present."""
    path = Path(path)
    if not path.is_file():
        raise VosError(f"--pretrained {path}: file not found")
    ckpt = load_checkpoint(path)
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if kind not in _BACKBONE_PREFIX:
        raise VosError(f"--pretrained {path}: not a checkpoint of `ssl-video pretrain` or `ssl-video finetune`")
    saved_arch = checked_field(ckpt, ("config", "arch"), str, path)
    if arch is not None and arch != saved_arch:
        raise VosError(f"--arch {arch} does not match the {saved_arch} backbone in {path}; drop --arch or change it")
    prefix = _BACKBONE_PREFIX[kind]
    state = {k[len(prefix):]: v for k, v in checked_field(ckpt, ("model",), dict, path).items() if k.startswith(prefix)}
    if not state:
        raise VosError(f"--pretrained {path}: holds no backbone weights (no '{prefix}*' entries in 'model'); "
                       "the file is damaged")
    backbone = build_backbone(saved_arch)
    load_state_checked(backbone, state, f"--pretrained {path}: its {saved_arch} backbone weights")
    return backbone, saved_arch
