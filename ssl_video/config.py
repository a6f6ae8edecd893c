"""Settings of `ssl-video pretrain`, `finetune`, `retrieve` and `test` (importable without torch).

They extend :class:`ssl_video.data.config.ClipDataConfig`; each field is also a flag of its command
(vos.infra.config_flags), its help written here. A config file written for one of
them can be given to another: keys that only the other commands know (e.g. a fine-tuning
``epochs`` for ``retrieve``) are ignored with a warning, see :func:`command_config_keys`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ssl_video.data.config import ClipDataConfig
from vos.infra.config_flags import config_field


# help of flags that several commands share (each field is a flag, see vos.infra.config_flags)
ARCH_HELP = "backbone: r3d_18, mc3_18, r2plus1d_18, s3d, i3d or r3d_tiny"
EVAL_TRAIN_HELP = "also report video top-1 on the training videos (train_video_top1; shows shortcut learning)"
EPOCHS_HELP = "training epochs"
BATCH_SIZE_HELP = "clips per step (per process under torchrun)"
LR_HELP = "base learning rate (SGD)"
MOMENTUM_HELP = "SGD momentum"
WEIGHT_DECAY_HELP = "SGD weight decay"


@dataclass
class PretrainConfig(ClipDataConfig):
    # model
    arch: str = config_field("r2plus1d_18", help=ARCH_HELP)
    moco_dim: int = config_field(128, help="embedding size")
    moco_k: int = config_field(2048, help="queue length (2048 for UCF101, 65536 for Kinetics)")
    moco_m: float = config_field(0.999, help="key-encoder momentum")
    moco_t: float = config_field(0.1, help="InfoNCE temperature")
    mlp: bool = config_field(True, help="MLP projection head (--no-mlp for a linear head as FAME's I3D)")
    # photometric augmentation of both views; 1.0 / 0.2 is the MoCo v2 / FAME recipe
    color_jitter: float = config_field(
        1.0, metavar="S", help="colour-jitter strength: magnitudes (0.4, 0.4, 0.4, 0.1) x S, p 0.8; 0 = off")
    grayscale: float = config_field(0.2, metavar="P", help="grayscale probability")
    # FAME and CO2
    fame: bool = config_field(False, help="foreground-background merging on the query clip")
    beta: float = config_field(0.5, help="FAME foreground ratio")
    fame_both: bool = config_field(False, help="apply FAME to both clips")
    co2: float = config_field(0.0, metavar="ALPHA", help="weight of the CO2 consistency term; 0 = off")
    co2_t: float = config_field(0.05, help="temperature of the CO2 distributions")
    # optimisation
    epochs: int = config_field(200, help=EPOCHS_HELP)
    batch_size: int = config_field(8, help=BATCH_SIZE_HELP)
    lr: float = config_field(0.01, help=LR_HELP)
    momentum: float = config_field(0.9, help=MOMENTUM_HELP)
    weight_decay: float = config_field(1e-4, help=WEIGHT_DECAY_HELP)


@dataclass
class FinetuneConfig(ClipDataConfig):
    clips_per_video: int = config_field(10, help="test clips per video")
    # model
    arch: Optional[str] = config_field(None, help=ARCH_HELP, default_help="the --pretrained checkpoint's")
    pretrained: Optional[str] = config_field(
        None, metavar="CKPT",
        help="checkpoint of `ssl-video pretrain` or FAME's train.py (its query encoder), or a fine-tuned one")
    linear: bool = config_field(False, help="linear probe: frozen backbone with frozen BatchNorm statistics")
    dropout: float = config_field(0.7, help="dropout before the classifier")
    # optimisation
    epochs: int = config_field(150, help=EPOCHS_HELP)
    batch_size: int = config_field(8, help=BATCH_SIZE_HELP)
    lr: float = config_field(0.025, help=LR_HELP)
    momentum: float = config_field(0.9, help=MOMENTUM_HELP)
    weight_decay: float = config_field(1e-4, help=WEIGHT_DECAY_HELP)
    lr_steps: list[int] = config_field(default_factory=lambda: [60, 120], metavar="EPOCH",
                                       help="epochs at which lr is multiplied by --lr-decay")
    lr_decay: float = config_field(0.1, help="step-schedule factor")
    eval_train: bool = config_field(False, help=EVAL_TRAIN_HELP)


@dataclass
class RetrieveConfig(ClipDataConfig):
    clips_per_video: int = config_field(10, help="clips averaged per video")
    arch: Optional[str] = config_field(None, help=ARCH_HELP + " (randomly initialised without --pretrained)",
                                       default_help="the --pretrained checkpoint's")
    pretrained: Optional[str] = config_field(
        None, metavar="CKPT", help="checkpoint of `ssl-video pretrain` or `finetune`, or FAME's train.py / eval.py")
    ks: list[int] = config_field(default_factory=lambda: [1, 5, 10, 20, 50], metavar="K", help="recall cut-offs")
    # whole videos go together, at least one: max(1, batch_size // clips_per_video) videos per pass
    batch_size: int = config_field(
        10, help="clips per backbone pass while extracting features, whole videos at a time (10: one video of 10 "
                 "clips); the results do not depend on it")


# protocols of `ssl-video test`: toolkit = finetune's test step; fame = FAME eval.py's (ssl_video.evaluation)
PROTOCOLS = ("toolkit", "fame")


@dataclass
class EvaluateConfig(ClipDataConfig):
    checkpoint: Optional[str] = config_field(
        None, metavar="FILE",
        help="fine-tuned checkpoint: `ssl-video finetune`'s DIR/last.pt or FAME's eval.py checkpoint")
    clips_per_video: int = config_field(10, help="test clips per video")
    protocol: str = config_field(
        "toolkit", choices=PROTOCOLS,
        help="toolkit: finetune's test step exactly; fame: FAME eval.py's test (clips from every window of "
             "FRAMES x STRIDE frames, floor-uniform choice, centre crop without resizing, videos shorter than a "
             "window left out, log_softmax averaged)")
    eval_train: bool = config_field(False, help=EVAL_TRAIN_HELP)


COMMAND_CONFIGS = (PretrainConfig, FinetuneConfig, RetrieveConfig, EvaluateConfig)


def command_config_keys(cls: type) -> tuple[set[str], set[str]]:
    """(keys of ``cls``, keys that only the other ssl-video commands' configs have)."""
    own = {f.name for f in dataclasses.fields(cls)}
    others = {f.name for other in COMMAND_CONFIGS for f in dataclasses.fields(other)} - own
    return own, others
