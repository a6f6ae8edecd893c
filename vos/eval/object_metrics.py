"""Object-centric video metrics per video and their dataset summary: FG-ARI, mIoU, mBO.

Variants (printed with every result, see docs/eval.md):
- FG-ARI: ARI on the pixels whose ground truth is an object, over the whole video (all T*H*W
  points form one clustering, as SAVi/VideoSAUR ``VideoARI``); predicted id 0 is a cluster like any
  other; mean over videos that have foreground.
- FG-ARI-per-frame: the same per frame, averaged over frames with foreground, then over videos
  (SOLV's ``get_ari``).
- mIoU: one Hungarian assignment per video on the pairs' mean per-frame IoU (SOLV); unmatched
  predicted segments become background; per object the mean per-frame IoU over frames where the
  object or its segment is present; mean over all objects of all videos (object-weighted).
- mBO: per object the best volume IoU (sum over frames of intersection / of union) over predicted
  segments, many-to-one (VideoSAUR ``VideoIoU(matching="overlap")``); mean over a video's objects,
  then over videos.
Predicted id 0 is background for mIoU and mBO (not a segment). Ground-truth objects are all ids
present anywhere in the video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vos.eval import metrics

OBJECT_METRIC_KEYS = ("FG-ARI", "FG-ARI-per-frame", "mIoU", "mBO")
VARIANTS = {
    "FG-ARI": "video-level ARI over all foreground pixels of the clip, mean over videos",
    "FG-ARI-per-frame": "per-frame ARI on foreground pixels, mean over frames with foreground, then over videos",
    "mIoU": "one Hungarian assignment per video on mean per-frame IoU, unmatched segments -> background, "
            "mean per-frame IoU (frames where object or segment present), object-weighted",
    "mBO": "best volume IoU (sum of intersections / sum of unions) per object over predicted segments, "
           "mean over objects per video, then over videos",
}


@dataclass
class VideoScores:
    video: str
    fg_ari: float              # NaN when the video has no foreground
    fg_ari_per_frame: float    # NaN when no frame has foreground
    miou: np.ndarray           # one value per ground-truth object
    mbo: np.ndarray            # one value per ground-truth object


def score_video(video: str, gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> VideoScores:
    """Metrics of one video: ``gt``/``pred`` (T, H, W) integer label maps, 0 = background.

    Pixels marked ``void`` are removed from both (ground truth and prediction set to 0).
    """
    if void is not None:
        gt = np.where(void, 0, gt)
        pred = np.where(void, 0, pred)
    frame_scores = [metrics.fg_ari(gt[t], pred[t]) for t in range(gt.shape[0])]
    frame_scores = [s for s in frame_scores if not math.isnan(s)]
    return VideoScores(
        video,
        metrics.fg_ari(gt, pred),
        float(np.mean(frame_scores)) if frame_scores else math.nan,
        metrics.hungarian_miou(pred, gt),
        metrics.best_overlap(pred, gt),
    )


def summarize(per_video: list[VideoScores]) -> dict[str, float]:
    """Dataset-level numbers (see the module docstring for each one's averaging)."""
    def mean_defined(values):
        values = [v for v in values if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    objects = [v.miou for v in per_video if v.miou.size]
    return {
        "FG-ARI": mean_defined([v.fg_ari for v in per_video]),
        "FG-ARI-per-frame": mean_defined([v.fg_ari_per_frame for v in per_video]),
        "mIoU": float(np.concatenate(objects).mean()) if objects else math.nan,
        "mBO": mean_defined([float(v.mbo.mean()) for v in per_video if v.mbo.size]),
    }


def format_summary(summary: dict[str, float], title: str) -> str:
    lines = [title]
    for key in OBJECT_METRIC_KEYS:
        lines.append(f"  {key:<17s} {summary[key]:.3f}   ({VARIANTS[key]})")
    return "\n".join(lines)
