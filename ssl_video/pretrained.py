"""Backbones (and fine-tuned classifiers) from checkpoints, recognised by their keys:

* ``ssl-video pretrain``: ``{"kind": "moco_pretrain", "model": {"encoder_q.backbone.*", ...}, "config"}``;
* ``ssl-video finetune``: ``{"kind": "finetune", "model": {"backbone.*", "fc.*"}, "config", "classes"}``;
* FAME's ``train.py`` (MoCo, saved under DDP): ``{"state_dict": {"module.encoder_q.<I3D key>",
  "module.encoder_k.*", "module.queue", "module.queue_ptr"}, "epoch", "arch": "I3D", "optimizer"}``;
  the query encoder's trunk is used, its ``id_head`` dropped, the key encoder and queue ignored;
* FAME's ``eval.py`` (the fine-tuned I3D): ``{"state_dict": {"module.<I3D key>", "module.fc.*"},
  "epoch", "arch", "best_acc1", "optimizer"}``.

Without DDP FAME's scripts save the same keys without ``module.``; both are accepted. Loading is
strict: every backbone weight must be present with the backbone's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ssl_video.checkpoint import checked_field, load_checkpoint
from ssl_video.models import build_backbone
from ssl_video.models.i3d import from_fame_state_dict
from vos.infra.checkpoints import load_state_strict
from vos.infra.errors import UserError

# where each kind of this project's checkpoints keeps the backbone's weights in its "model" state dict
_BACKBONE_PREFIX = {"moco_pretrain": "encoder_q.backbone.", "finetune": "backbone."}
# FAME's --arch names of the backbones this project can load, and the renaming onto its modules
_FAME_ARCHS = {"I3D": ("i3d", from_fame_state_dict)}
# heads of FAME's encoders: I3D's MoCo projection (id_head) and the classifier (fc)
_FAME_HEADS = ("id_head.", "fc.")
EXPECTED = ("a checkpoint of `ssl-video pretrain` or `ssl-video finetune`, or FAME's train.py (MoCo) or "
            "eval.py (fine-tuned) checkpoint")


@dataclass
class CheckpointWeights:
    """What a checkpoint holds, in this project's parameter names."""

    source: str                 # "ssl-video pretrain" | "ssl-video finetune" | "FAME train.py" | "FAME eval.py"
    arch: str
    backbone: dict[str, torch.Tensor]
    classifier: Optional[dict[str, torch.Tensor]] = None   # {"weight", "bias"} of a fine-tuned classifier
    classes: Optional[list[str]] = None                     # class names in classifier order, if stored
    config: Optional[dict] = None                           # the run's config (this project's checkpoints)


def read_weights(path: str | Path, arch: str | None = None, flag: str = "--pretrained") -> CheckpointWeights:
    """Read any supported checkpoint. ``arch`` defaults to the checkpoint's and, if given, must agree
    with it; ``flag`` names the option the path came from, in error messages."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag} {path}: file not found")
    ckpt = load_checkpoint(path, EXPECTED)
    if isinstance(ckpt, dict) and ckpt.get("kind") in _BACKBONE_PREFIX:
        weights = _project_weights(ckpt, path)
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict) and isinstance(ckpt.get("arch"), str):
        weights = _fame_weights(ckpt, path)
    else:
        raise UserError(f"{flag} {path}: not a supported checkpoint; expected {EXPECTED}")
    if arch is not None and arch != weights.arch:
        raise UserError(f"--arch {arch} does not match the {weights.arch} backbone in {path}; drop --arch or change it")
    return weights


def load_backbone(path: str | Path, arch: str | None = None) -> tuple[nn.Module, str]:
    """(backbone with the checkpoint's weights, arch). ``arch`` defaults to the checkpoint's and,
    if given, must agree with it. Loading is strict: every backbone weight must be present."""
    weights = read_weights(path, arch)
    backbone = build_backbone(weights.arch)
    load_state_strict(backbone, weights.backbone, f"the {weights.arch} backbone", path)
    return backbone, weights.arch


def _project_weights(ckpt: dict, path: Path) -> CheckpointWeights:
    kind = ckpt["kind"]
    arch = checked_field(ckpt, ("config", "arch"), str, path)
    model = checked_field(ckpt, ("model",), dict, path)
    prefix = _BACKBONE_PREFIX[kind]
    backbone = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    if not backbone:
        raise UserError(f"{path}: holds no backbone weights (no '{prefix}*' entries in 'model'); the file is damaged")
    classifier = None
    if kind == "finetune":
        classifier = {k[len("fc."):]: v for k, v in model.items() if k.startswith("fc.")}
    return CheckpointWeights(source="ssl-video pretrain" if kind == "moco_pretrain" else "ssl-video finetune",
                             arch=arch, backbone=backbone, classifier=classifier,
                             classes=ckpt.get("classes"), config=ckpt["config"])


def _fame_weights(ckpt: dict, path: Path) -> CheckpointWeights:
    state = ckpt["state_dict"]
    if state and all(k.startswith("module.") for k in state):   # saved from the DDP / DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    if any(k.startswith("encoder_q.") for k in state):          # train.py: MoCo
        source = "FAME train.py"
        encoder = {k[len("encoder_q."):]: v for k, v in state.items() if k.startswith("encoder_q.")}
    else:                                                       # eval.py: the fine-tuned network
        source = "FAME eval.py"
        encoder = state
    fame_arch = ckpt.get("arch")
    if fame_arch not in _FAME_ARCHS:
        raise UserError(f"{path}: FAME checkpoint of arch {fame_arch!r}; only {', '.join(_FAME_ARCHS)} "
                       "checkpoints of FAME's release can be loaded")
    arch, rename = _FAME_ARCHS[fame_arch]
    trunk = {k: v for k, v in encoder.items() if not k.startswith(_FAME_HEADS)}
    try:
        backbone = rename(trunk)
    except UserError as exc:
        raise UserError(f"{path}: the weights do not fit the {arch} backbone ({exc})") from exc
    classifier = None
    if source == "FAME eval.py":
        classifier = {k[len("fc."):]: v for k, v in encoder.items() if k.startswith("fc.")}
    return CheckpointWeights(source=source, arch=arch, backbone=backbone, classifier=classifier)
