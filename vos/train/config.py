"""Configuration of ``vos train``: one dataclass tree, defaults = the reference recipe of
Betrayed by Attention (the SSL-UVOS release's training settings),
except the backbone and the process count, which ``configs/vos/train_reference.yaml`` sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from vos.infra.config_flags import config_field
from vos.models import BACKBONE_NAMES, WEIGHTS_DEFAULT_HELP, WEIGHTS_HELP


@dataclass
class AugmentConfig:
    """Photometric augmentation, drawn once per clip and applied identically to all its frames."""

    enabled: bool = config_field(True, flag="--augment", help="photometric augmentation")
    grayscale_p: float = 0.2
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1  # kernel ≈ this × the shorter image side, made odd


@dataclass
class BlockConfig:
    num_heads: int = 8
    mlp_ratio: float = 4.0
    proj_drop: float = 0.1  # dropout after the attention projection and in the MLP ("path_drop")
    attn_drop: float = 0.4


@dataclass
class OptimConfig:
    lr: float = config_field(1e-5, flag="--lr", help="peak learning rate, cosine-decayed to --min-lr")
    min_lr: float = config_field(1e-6, flag="--min-lr", help="final learning rate (end of the cosine decay)")
    warmup_iterations: int = 0
    # The reference sets 0.04 and its scheduler then holds 0.1 on the regularised group, so 0.1
    # is what acts; it applies to weight matrices only (biases and LayerNorm parameters get 0).
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class SemanticLossConfig:
    weight: float = 1.0
    positives: int = 30  # most-attended keys per key frame
    negatives: int = 200  # least-attended keys per key frame
    positive_margin: float = 0.9
    negative_margin: float = 0.1


@dataclass
class MotionLossConfig:
    weight: float = 1.0
    positives: int = 10  # most-attended keys in the query's own frame
    negatives: int = 50  # least-attended keys in the query's own frame
    margin: float = 1.0


@dataclass
class LossConfig:
    queries: int = 8  # random spatial positions per clip, the same in every frame
    semantic: SemanticLossConfig = field(default_factory=SemanticLossConfig)
    motion: MotionLossConfig = field(default_factory=MotionLossConfig)


@dataclass
class TrainConfig:
    """Settings of `vos train`; its top-level fields and a few nested ones are also flags (vos.infra.config_flags)."""

    data: str = config_field(
        "", metavar="DIR", help="training videos: a folder of frame folders / video files, or a DAVIS root "
                                "(JPEGImages/480p)")
    out: str = config_field("", metavar="DIR", help="run folder: checkpoints (last.pt), config.yaml, log.csv, "
                                                    "tensorboard/")
    backbone: str = config_field("dino_vits16", choices=BACKBONE_NAMES, help="frozen ViT backbone (DINO, DINOv2, DINOv3; see docs/backbones.md)")
    weights: Optional[str] = config_field(
        None, metavar="PATH|random", help=WEIGHTS_HELP, default_help=WEIGHTS_DEFAULT_HELP)
    init_block: Optional[str] = config_field(
        None, metavar="CKPT",
        help="start from this block instead of a random one: a 'vos train' checkpoint or the SSL-UVOS release "
             "file (its backbone must be --backbone's; pass the same file as --weights to train on the "
             "release's encoder)")
    frames: int = config_field(3, help="frames per clip")
    gap: int = config_field(4, help="frame stride in a clip, reduced for short videos")
    resolution: tuple[int, int] = config_field(
        (192, 384), metavar=("H", "W"), help="backbone input size, rounded to the patch size")
    batch_size: int = config_field(1, help="clips per process and iteration")
    iterations: int = config_field(60000, help="total iterations")
    seed: int = config_field(0, help="random seed")
    checkpoint_every: int = config_field(1000, help="iterations between checkpoints")
    log_every: int = config_field(10, help="iterations between log rows")
    cache_features: Optional[str] = config_field(
        None, metavar="DIR", help="compute backbone features once into DIR (memory-mapped) and train from them")
    cache_variants: int = config_field(1, help="augmented copies per video in the cache; 1 = unaugmented only")
    device: str = config_field("auto", choices=("auto", "cpu", "cuda"), help="where to train")
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)


# What may differ between a run and its resumption without breaking "the same run continued".
RESUMABLE_CHANGES = ("iterations", "checkpoint_every", "log_every", "device", "out", "data", "cache_features")
