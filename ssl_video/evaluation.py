"""Test a fine-tuned checkpoint without training: ``finetune``'s 10-clip video-level test step.

Accepts this project's fine-tuning checkpoints and FAME's fine-tuned I3D (its eval.py checkpoint).
The classifier's classes are matched to the dataset's by name: this project's checkpoints store
their class names; FAME's UCF101 classes are the sorted class-folder names (torchvision's UCF101),
which need not be the order of ``classInd.txt``.

Two protocols, the same metrics (video top-1/top-5 of the clip scores averaged per video, clip
top-1):

* ``toolkit`` (default): ``finetune``'s test step, exactly (:class:`MultiClipVideos`: short side
  resized to the crop, centre crop; clip starts rounded from a uniform spacing; logits averaged);
* ``fame``: FAME's eval.py test (:class:`FameTestClips`): the clips are the windows of
  ``frames * frame_stride`` consecutive frames (every start), ``clips_per_video`` of them chosen by
  torchvision's UniformClipSampler (floor of a uniform spacing), every ``frame_stride``-th frame
  kept, the raw frame centre-cropped without resizing; videos shorter than one window have no clip
  and are left out, as torchvision's VideoClips does; FAME's I3D ends in log_softmax and its
  eval.py averages those log-probabilities.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ssl_video.config import PROTOCOLS, EvaluateConfig
from ssl_video.data.clips import VideoFile
from ssl_video.data.splits import VideoItem
from ssl_video.finetune import PREDICTIONS_CSV, VideoClassifier, evaluation_datasets, evaluation_results
from ssl_video.models import build_backbone
from ssl_video.pretrained import CheckpointWeights, read_weights
from vos.infra.checkpoints import load_state_strict
from vos.infra.distributed import cleanup, init_distributed
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text

# FAME's eval.py test of its fine-tuned I3D: UCF101 split 1, 16 frames at stride 2, 224 px, 10 clips
FAME_EVAL_SETTINGS = {"dataset": "ucf101", "split": 1, "frames": 16, "frame_stride": 2, "crop": 224,
                      "clips_per_video": 10}
_DATA_FIELDS = ("dataset", "data_root", "split_dir", "split", "frames", "frame_stride", "crop", "clips_per_video")


class LogSoftmaxScores(nn.Module):
    """A classifier whose clip scores are log-probabilities (FAME's I3D ends in log_softmax)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.classifier(x), dim=1)  # B num_classes


def fame_clip_starts(num_video_frames: int, window: int, num_clips: int) -> torch.Tensor:
    """Start frames of FAME's test clips: torchvision's UniformClipSampler over the video's windows of
    ``window`` consecutive frames (one per start frame; none when the video is shorter)."""
    windows = num_video_frames - window + 1
    if windows < 1:
        return torch.zeros(0, dtype=torch.long)
    return torch.linspace(0, windows - 1, steps=num_clips).floor().long()


class FameTestClips(Dataset):
    """FAME eval.py's test clips: ``(clips (n, C, T, H, W) float32 in [0, 1], label)`` per video, for
    the videos that hold at least one window of ``frames * frame_stride`` frames (see module doc)."""

    def __init__(self, items: Sequence[VideoItem], frames: int = 16, frame_stride: int = 2, crop: int = 224,
                 clips_per_video: int = 10, progress: bool = True) -> None:
        if min(frames, frame_stride, crop, clips_per_video) < 1:
            raise UserError("--frames, --frame-stride, --crop and --clips-per-video must be positive")
        self.frames, self.frame_stride, self.crop, self.clips_per_video = frames, frame_stride, crop, clips_per_video
        self.window = frames * frame_stride
        lengths = [len(VideoFile(item.path)) for item in tqdm(items, desc="video lengths", leave=False,
                                                              disable=not progress)]
        self.items = [item for item, n in zip(items, lengths) if n >= self.window]
        self.lengths = [n for n in lengths if n >= self.window]
        self.skipped = len(items) - len(self.items)
        if not self.items:
            raise UserError(f"no test video has the {self.window} frames of one clip "
                           f"(--frames {frames} x --frame-stride {frame_stride})")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item, n = self.items[index], self.lengths[index]
        starts = fame_clip_starts(n, self.window, self.clips_per_video)                   # n_clips
        indices = (starts[:, None] + self.frame_stride * torch.arange(self.frames)).flatten()  # n_clips*T
        frames = VideoFile(item.path).get(indices.numpy())                                # (n*T) H W 3 uint8
        h, w = frames.shape[1:3]
        if min(h, w) < self.crop:
            raise UserError(f"{item.path}: frames of {w}x{h} are smaller than --crop {self.crop}, which FAME's "
                           "protocol cuts out without resizing")
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        frames = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + self.crop, left:left + self.crop]))
        clips = frames.float().div_(255).view(self.clips_per_video, self.frames, self.crop, self.crop, 3)
        return clips.permute(0, 4, 1, 2, 3).contiguous(), item.label                      # n C T H W


def checkpoint_settings(weights: CheckpointWeights) -> dict:
    """The data settings the checkpoint was tested with: the run's own (this project's) or FAME's
    eval.py settings; they are the defaults of ``ssl-video test``."""
    if weights.source == "FAME eval.py":
        return dict(FAME_EVAL_SETTINGS)
    return {k: weights.config[k] for k in _DATA_FIELDS if weights.config and weights.config.get(k) is not None}


def classifier_from_weights(weights: CheckpointWeights, classes: list[str], path: Path) -> VideoClassifier:
    """The fine-tuned classifier with its outputs in the order of ``classes`` (the dataset's)."""
    if weights.classifier is None:
        raise UserError(f"{path} is a pretraining checkpoint ({weights.source}) without a classifier; "
                       f"fine-tune it first (`ssl-video finetune --pretrained {path}`) and test that")
    rows = weights.classifier.get("weight")
    n_saved = len(weights.classes) if weights.classes is not None else (len(rows) if rows is not None else 0)
    if n_saved != len(classes):
        raise UserError(f"{path}: its classifier has {n_saved} classes, the dataset {len(classes)}; "
                       "test on the dataset it was fine-tuned on")
    # FAME's class indices are the sorted class-folder names (torchvision's UCF101)
    saved = weights.classes if weights.classes is not None else sorted(classes)
    if sorted(saved) != sorted(classes):
        differ = sorted(set(saved) ^ set(classes))[:3]
        raise UserError(f"{path}: its classes are not the dataset's (e.g. {', '.join(differ)}); "
                       "test on the dataset it was fine-tuned on")
    backbone = build_backbone(weights.arch)
    load_state_strict(backbone, weights.backbone, f"the {weights.arch} backbone", path)
    model = VideoClassifier(backbone, len(classes), dropout=0.0)
    load_state_strict(model.fc, weights.classifier, f"a {len(classes)}-class classifier of {weights.arch}", path)
    order = torch.tensor([saved.index(name) for name in classes])   # dataset class -> checkpoint row
    with torch.no_grad():
        model.fc.weight.copy_(model.fc.weight[order])
        model.fc.bias.copy_(model.fc.bias[order])
    return model


def evaluate_checkpoint(cfg: EvaluateConfig, out_dir: str | Path | None = None,
                        weights: CheckpointWeights | None = None) -> dict:
    """Results of ``finetune``'s test step for the fine-tuned ``cfg.checkpoint``: ``{"video_top1",
    "video_top5", "clip_top1"}`` (+ ``"train_video_top1"`` with ``eval_train``), percent; with
    ``out_dir`` also ``out_dir/results.json`` and ``out_dir/predictions.csv``. ``weights`` is the checkpoint if already read.
    Under torchrun the processes share the videos and all return the same results."""
    if cfg.checkpoint is None:
        raise UserError("give --checkpoint FILE (a fine-tuned checkpoint)")
    if cfg.protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {cfg.protocol!r}")
    path = Path(cfg.checkpoint)
    weights = weights or read_weights(path, cfg.arch, flag="--checkpoint")
    test_set, train_eval_set, classes = evaluation_datasets(cfg, cfg.clips_per_video, cfg.eval_train)
    model: nn.Module = classifier_from_weights(weights, classes, path)
    if cfg.protocol == "fame":
        test_set = FameTestClips(test_set.items, cfg.frames, cfg.frame_stride, cfg.crop, cfg.clips_per_video)
        if train_eval_set is not None:
            train_eval_set = FameTestClips(train_eval_set.items, cfg.frames, cfg.frame_stride, cfg.crop,
                                           cfg.clips_per_video)
        model = LogSoftmaxScores(model)
    ctx = init_distributed()
    try:
        t0 = time.time()
        if out_dir is not None and ctx.is_main:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        results = evaluation_results(model.to(ctx.device), test_set, train_eval_set, cfg.workers, ctx,
                                     None if out_dir is None else Path(out_dir) / PREDICTIONS_CSV, classes)
    finally:
        cleanup(ctx)
    if ctx.is_main:
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(out_dir) / "results.json", json.dumps(results, indent=2) + "\n")
        skipped = f", {test_set.skipped} shorter than one clip left out" if cfg.protocol == "fame" else ""
        print(f"test: {len(test_set)} videos x {cfg.clips_per_video} clips ({weights.source}, {weights.arch}, "
              f"{cfg.protocol} protocol{skipped}) in {time.time() - t0:.0f} s: video top-1 {results['video_top1']:.2f}% "
              f"top-5 {results['video_top5']:.2f}% clip top-1 {results['clip_top1']:.2f}%", flush=True)
    return results
