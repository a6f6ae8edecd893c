"""Settings shared by every ssl-video command that reads clips (pretrain, finetune, retrieve, test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vos.infra.config_flags import config_field

DATASETS = ("ucf101", "hmdb51", "kinetics", "folder")  # layouts read by ssl_video.data.splits


@dataclass
class ClipDataConfig:
    """Which videos, and how clips are cut from them; the commands' configs extend it. Each field is
    also a flag of those commands (vos.infra.config_flags), its help written here."""

    dataset: str = config_field("ucf101", choices=DATASETS, help="dataset layout")
    data_root: Optional[str] = config_field(None, metavar="DIR", help="folder with the videos")
    split_dir: Optional[str] = config_field(None, metavar="DIR", help="folder with the split files",
                                            default_help="found under --data-root")
    split: int = config_field(1, help="official split 1, 2 or 3")
    frames: int = config_field(16, help="frames per clip")
    frame_stride: int = config_field(2, help="temporal stride between sampled frames")
    crop: int = config_field(112, help="spatial crop size in pixels")
    workers: int = config_field(4, help="DataLoader worker processes")
    seed: int = config_field(0, help="random seed")
