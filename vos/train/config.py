"""Configuration of ``vos train``: one dataclass tree, defaults = the reference recipe of
Betrayed by Attention (the SSL-UVOS release's training settings),
except the backbone and the process count, which ``configs/vos/train_reference.yaml`` sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class AugmentConfig:
    """Photometric augmentation, drawn once per clip and applied identically to all its frames."""

    enabled: bool = True
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
    lr: float = 1e-5
    min_lr: float = 1e-6  # end of the cosine decay
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
    data: str = ""  # folder of frame folders / video files, or a DAVIS root (JPEGImages/480p)
    out: str = ""  # checkpoints (last.pt), config.yaml, log.csv, tensorboard/
    backbone: str = "dino_vits16"
    weights: Optional[str] = None  # None: official DINO weights; "random"; or a path
    init_block: Optional[str] = None  # start from this block (a vos block checkpoint or the SSL-UVOS release)
    frames: int = 3
    gap: int = 4  # frame stride inside a clip (reduced for short videos)
    resolution: tuple[int, int] = (192, 384)  # H W, rounded to multiples of the patch size
    batch_size: int = 1  # clips per process and iteration
    iterations: int = 60000
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 10
    cache_features: Optional[str] = None  # folder of memory-mapped backbone features
    cache_variants: int = 1  # augmented copies per video in the cache (1: unaugmented only)
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)


# What may differ between a run and its resumption without breaking "the same run continued".
RESUMABLE_CHANGES = ("iterations", "checkpoint_every", "log_every", "device", "out", "data", "cache_features")
