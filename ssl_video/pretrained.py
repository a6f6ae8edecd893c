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

from ssl_video.checkpoint import load_checkpoint
from ssl_video.models import build_backbone, list_backbones
from ssl_video.models.i3d import from_fame_state_dict
from vos.infra.checkpoints import load_state_strict
from vos.infra.errors import UserError
from vos.infra.schema import Dict, Int, ListOf, MapOf, Plain, Str, Tensor, check

# where each kind of this project's checkpoints keeps the backbone's weights in its "model" state dict
_BACKBONE_PREFIX = {"moco_pretrain": "encoder_q.backbone.", "finetune": "backbone."}
# FAME's --arch names of the backbones this project can load (in lower case: FAME's scripts take the
# name in any case), and the renaming onto its modules
_FAME_ARCHS = {"i3d": ("i3d", from_fame_state_dict)}
# heads of FAME's encoders: I3D's MoCo projection (id_head) and the classifier (fc)
_FAME_HEADS = ("id_head.", "fc.")
DAMAGED = "the checkpoint is damaged or not one of these; copy it again or train it again"
# What each format holds (vos.infra.schema); the weights are then checked against the backbone's own.
_WEIGHTS = MapOf(Tensor(), min_len=1)
_PROJECT_FILE = Dict({"kind": Str(tuple(_BACKBONE_PREFIX)), "config": Plain(), "model": _WEIGHTS,
                      "classes": ListOf(Str(), min_len=1)}, optional=("classes",))
_PROJECT_CONFIG = Dict({"arch": Str()})
_FAME_FILE = Dict({"state_dict": _WEIGHTS, "arch": Str(), "epoch": Int(min=0)}, optional=("epoch",))
_CLASSIFIER = Dict({"fc.weight": Tensor(ndim=2, floating=True), "fc.bias": Tensor(ndim=1, floating=True)})
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
    if isinstance(ckpt, dict) and "kind" in ckpt:  # recognised by their keys, then checked
        weights = _project_weights(ckpt, path)
    elif isinstance(ckpt, dict) and "state_dict" in ckpt and "arch" in ckpt:
        weights = _fame_weights(ckpt, path)
    else:
        raise UserError(f"{flag} {path}: not a supported checkpoint; expected {EXPECTED}")
    if weights.arch not in list_backbones():
        raise UserError(f"{path}: its backbone {weights.arch!r} is none of {', '.join(list_backbones())}; {DAMAGED}")
    if weights.classifier:
        check({f"fc.{k}": v for k, v in weights.classifier.items()}, _CLASSIFIER, path, DAMAGED, where="['model']")
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
    check(ckpt, _PROJECT_FILE, path, DAMAGED)
    kind, model = ckpt["kind"], ckpt["model"]
    arch = check(ckpt["config"], _PROJECT_CONFIG, path, DAMAGED, where="['config']")["arch"]
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
    check(ckpt, _FAME_FILE, path, DAMAGED)
    state = ckpt["state_dict"]
    if state and all(k.startswith("module.") for k in state):   # saved from the DDP / DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    if any(k.startswith("encoder_q.") for k in state):          # train.py: MoCo
        source = "FAME train.py"
        encoder = {k[len("encoder_q."):]: v for k, v in state.items() if k.startswith("encoder_q.")}
    else:                                                       # eval.py: the fine-tuned network
        source = "FAME eval.py"
        encoder = state
    fame_arch = ckpt["arch"]
    if fame_arch.lower() not in _FAME_ARCHS:
        raise UserError(f"{path}: a FAME checkpoint of arch {fame_arch!r}, which this toolkit cannot load; it loads "
                       f"FAME's {', '.join(a.upper() for a in _FAME_ARCHS)} checkpoints (arch names in any case)")
    arch, rename = _FAME_ARCHS[fame_arch.lower()]
    trunk = {k: v for k, v in encoder.items() if not k.startswith(_FAME_HEADS)}
    try:
        backbone = rename(trunk)
    except UserError as exc:
        raise UserError(f"{path}: the weights do not fit the {arch} backbone ({exc})") from exc
    classifier = None
    if source == "FAME eval.py":
        classifier = {k[len("fc."):]: v for k, v in encoder.items() if k.startswith("fc.")}
    return CheckpointWeights(source=source, arch=arch, backbone=backbone, classifier=classifier)
