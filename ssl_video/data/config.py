"""Settings shared by every ssl-video command that reads clips (pretrain, finetune, retrieve)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ClipDataConfig:
    """Which videos, and how clips are cut from them; the commands' configs extend it."""

    dataset: str = "ucf101"  # ucf101 | hmdb51 | kinetics | folder
    data_root: Optional[str] = None
    split_dir: Optional[str] = None
    split: int = 1
    frames: int = 16
    frame_stride: int = 2
    crop: int = 112
    workers: int = 4
    seed: int = 0
