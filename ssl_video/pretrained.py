"""Backbones from checkpoints: a MoCo pretraining run (its query encoder) or a fine-tuning run."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ssl_video.checkpoint import load_checkpoint
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
    saved_arch = ckpt["config"]["arch"]
    if arch is not None and arch != saved_arch:
        raise VosError(f"--arch {arch} does not match the {saved_arch} backbone in {path}; drop --arch or change it")
    prefix = _BACKBONE_PREFIX[kind]
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    backbone = build_backbone(saved_arch)
    backbone.load_state_dict(state)
    return backbone, saved_arch
