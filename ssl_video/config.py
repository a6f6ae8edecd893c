"""Settings of `ssl-video pretrain`, `finetune`, `retrieve` and `test` (importable without torch).

They extend :class:`ssl_video.data.config.ClipDataConfig`. A config file written for one of
them can be given to another: keys that only the other commands know (e.g. a fine-tuning
``epochs`` for ``retrieve``) are ignored with a warning, see :func:`command_config_keys`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from ssl_video.data.config import ClipDataConfig


@dataclass
class PretrainConfig(ClipDataConfig):
    # model
    arch: str = "r2plus1d_18"
    moco_dim: int = 128
    moco_k: int = 2048
    moco_m: float = 0.999
    moco_t: float = 0.1
    mlp: bool = True
    # photometric augmentation of both views: jitter strength s (magnitudes 0.4s, 0.4s, 0.4s, 0.1s,
    # p 0.8; 0 = off) and grayscale probability; 1.0 / 0.2 is the MoCo v2 / FAME recipe
    color_jitter: float = 1.0
    grayscale: float = 0.2
    # FAME and CO2
    fame: bool = False
    beta: float = 0.5
    fame_both: bool = False
    co2: float = 0.0
    co2_t: float = 0.05
    # optimisation
    epochs: int = 200
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4


@dataclass
class FinetuneConfig(ClipDataConfig):
    clips_per_video: int = 10
    # model: arch None = the pretrained checkpoint's
    arch: Optional[str] = None
    pretrained: Optional[str] = None
    linear: bool = False
    dropout: float = 0.7
    # optimisation
    epochs: int = 150
    batch_size: int = 8
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: list[int] = field(default_factory=lambda: [60, 120])
    lr_decay: float = 0.1
    # also report the 10-clip accuracy on the training videos (shows shortcut learning)
    eval_train: bool = False


@dataclass
class RetrieveConfig(ClipDataConfig):
    clips_per_video: int = 10
    arch: Optional[str] = None
    pretrained: Optional[str] = None
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])
    # clips per backbone pass when extracting features; whole videos go together, at least one:
    # max(1, batch_size // clips_per_video) videos per pass (the features do not depend on it)
    batch_size: int = 10


# protocols of `ssl-video test`: toolkit = finetune's test step; fame = FAME eval.py's (ssl_video.evaluation)
PROTOCOLS = ("toolkit", "fame")


@dataclass
class EvaluateConfig(ClipDataConfig):
    checkpoint: Optional[str] = None
    clips_per_video: int = 10
    protocol: str = "toolkit"  # toolkit | fame (see ssl_video.evaluation)
    eval_train: bool = False


COMMAND_CONFIGS = (PretrainConfig, FinetuneConfig, RetrieveConfig, EvaluateConfig)


def command_config_keys(cls: type) -> tuple[set[str], set[str]]:
    """(keys of ``cls``, keys that only the other ssl-video commands' configs have)."""
    own = {f.name for f in dataclasses.fields(cls)}
    others = {f.name for other in COMMAND_CONFIGS for f in dataclasses.fields(other)} - own
    return own, others
