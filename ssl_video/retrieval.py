"""Nearest-neighbour video retrieval (FAME's main_retrieve.py protocol).

Test videos are the queries, training videos the gallery. A video's feature is the mean of its
``clips_per_video`` uniformly spaced clips' pooled backbone features, each clip feature L2-normalised
first (FAME replaces the classifier by a Normalize layer). Then each set is centred by its own mean,
L2-normalised and compared by cosine similarity; R@k for k in 1, 5, 10, 20, 50 (percent). Clips are
normalised with the Kinetics mean/std the backbone was pretrained with (FAME's script used the
ImageNet statistics here).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssl_video.checkpoint import seed_everything
from ssl_video.config import RetrieveConfig
from ssl_video.data.clips import MultiClipVideos
from ssl_video.data.splits import load_items
from ssl_video.finetune import clip_outputs, eval_subset
from ssl_video.metrics import retrieval_recall
from ssl_video.models import build_backbone
from ssl_video.pretrained import load_backbone
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text


def video_features(backbone: nn.Module, dataset: Dataset, workers: int = 0, desc: str = "features",
                   videos_per_batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (V, D), labels (V,)): per video, the mean of its L2-normalised clip features."""
    backbone.eval()
    loader = DataLoader(dataset, batch_size=videos_per_batch, shuffle=False, num_workers=workers)
    clip_feats, labels = clip_outputs(lambda x: F.normalize(backbone(x), dim=1), loader, desc)  # V n D
    return clip_feats.mean(dim=1), labels


def retrieve(cfg: RetrieveConfig, out_dir: str | Path | None = None) -> dict[str, float]:
    """R@k of test-split queries against the training-split gallery; with ``out_dir`` also writes
    ``results.json`` there. Without ``pretrained`` a randomly initialised ``arch`` (seeded) is used,
    as a chance-level reference."""
    if cfg.data_root is None:
        raise UserError("no --data-root given: pass the folder holding the videos")
    if cfg.pretrained is not None:
        backbone, _ = load_backbone(cfg.pretrained, cfg.arch)
    elif cfg.arch is not None:
        seed_everything(cfg.seed)
        backbone = build_backbone(cfg.arch)
    else:
        raise UserError("give --pretrained CKPT (or --arch for a randomly initialised baseline)")
    if not cfg.ks or min(cfg.ks) < 1:
        raise UserError(f"recall cut-offs must be positive integers, got {cfg.ks}")
    if cfg.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    videos_per_batch = max(1, cfg.batch_size // cfg.clips_per_video)
    t0 = time.time()
    args = dict(frames=cfg.frames, frame_stride=cfg.frame_stride, crop=cfg.crop, clips_per_video=cfg.clips_per_video)
    gallery_items, _ = load_items(cfg.dataset, cfg.data_root, cfg.split_dir, cfg.split, "train")
    query_items, _ = load_items(cfg.dataset, cfg.data_root, cfg.split_dir, cfg.split, eval_subset(cfg.dataset))
    if any(item.label < 0 for item in gallery_items + query_items):
        raise UserError(f"--dataset {cfg.dataset} has no class labels; retrieval needs ucf101, hmdb51 or kinetics")
    gallery, gallery_labels = video_features(backbone, MultiClipVideos(gallery_items, **args), cfg.workers,
                                             "gallery (train)", videos_per_batch)
    query, query_labels = video_features(backbone, MultiClipVideos(query_items, **args), cfg.workers,
                                         "queries (test)", videos_per_batch)
    results = retrieval_recall(query, query_labels, gallery, gallery_labels, tuple(cfg.ks))
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "results.json", json.dumps(results, indent=2) + "\n")
    print(f"retrieve: {len(query_items)} queries, {len(gallery_items)} gallery videos, {time.time() - t0:.0f} s: "
          + ", ".join(f"{k} {v:.2f}%" for k, v in results.items()), flush=True)
    return results
