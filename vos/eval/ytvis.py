"""YouTube-VIS-2019 ground truth (official JSON or PNG folders) and its FG-ARI / mIoU / mBO evaluation.

Ground truth comes either from the official JSON (``--annotations``; ``segmentations`` per frame
as compressed RLE (string counts), uncompressed RLE (list counts) or polygons, ``null`` when the
object is absent) or, without it, from ``ROOT/Annotations/<video>/*.png`` label PNGs (the
YouTube-VOS layout). JSON object ids are the order of the video's annotations (1, 2, ...); where
instances overlap, the later annotation wins. Results are ``<results>/<video>/<frame stem>.png``.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos.eval.davis import load_results
from vos.eval.object_metrics import VideoScores, score_video, summarize
from vos.eval.workers import map_jobs
from vos.infra.errors import UserError
from vos.infra.fileio import read_json, read_text_file
from vos.infra.schema import Anything, Dict, Int, ListOf, Str, check
from vos.palette import read_label_png


@dataclass
class VideoGroundTruth:
    video: str
    frames: list[str]      # frame stems, in order
    labels: np.ndarray     # T H W uint8 (0 background)
    void: np.ndarray | None = None


@dataclass
class ObjectMetricsResult:
    dataset: str
    videos: list[str]
    per_video: list[VideoScores]
    summary: dict[str, float]


def decode_segmentation(segm, height: int, width: int, where: str) -> np.ndarray:
    """One frame's mask (H, W) bool from a compressed/uncompressed RLE or a polygon list."""
    from pycocotools import mask as mask_utils

    try:
        if isinstance(segm, list):                                    # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):   # uncompressed RLE
            rle = mask_utils.frPyObjects(segm, height, width)
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), (str, bytes)):  # compressed RLE
            rle = segm
        else:
            raise ValueError(f"unsupported segmentation {type(segm).__name__}")
        decoded = mask_utils.decode(rle)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{where}: cannot decode the segmentation ({exc})") from exc
    if decoded.shape[:2] != (height, width):
        raise UserError(f"{where}: segmentation is {decoded.shape[1]}x{decoded.shape[0]}, the video is {width}x{height}")
    return decoded.astype(bool)


MAX_SIZE = 8192  # pixels per side: beyond any video of the dataset, and a label volume that fits in memory
# What the official annotation JSON holds that the evaluation reads (vos.infra.schema); each
# segmentation is checked where it is decoded (decode_segmentation).
_JSON_ANNOTATIONS = Dict({
    "videos": ListOf(Dict({"id": Int(), "height": Int(min=1, max=MAX_SIZE), "width": Int(min=1, max=MAX_SIZE),
                           "file_names": ListOf(Str(), min_len=1)})),
    "annotations": ListOf(Dict({"video_id": Int(), "segmentations": ListOf(Anything())})),
})


@functools.lru_cache(maxsize=2)  # one parse per process: workers forked after the parent's read reuse it
def load_json_annotations(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: annotation JSON not found")
    data = read_json(path, "a YouTube-VIS annotation file")
    if not isinstance(data, dict) or "videos" not in data or "annotations" not in data:
        raise UserError(f"{path}: not a YouTube-VIS annotation file (needs 'videos' and 'annotations')")
    check(data, _JSON_ANNOTATIONS, path, "the file is damaged or not the official YouTube-VIS JSON")
    names = json_video_names(data)
    for video, name in zip(data["videos"], names):
        if not name or any(Path(f).parent.name != name for f in video["file_names"]):
            raise UserError(f"{path}: video {video['id']}: its file_names are not all in one folder "
                           f"({video['file_names'][0]!r}, ...); the file is damaged")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{path}: two videos have the frames of folder {twice!r}; the file is damaged")
    return data


def json_video_names(data: dict) -> list[str]:
    """Video names (folder of the first file name) in file order."""
    return [_video_name(v) for v in data["videos"]]


def _video_name(video: dict) -> str:
    return Path(video["file_names"][0]).parent.name


def json_ground_truth(data: dict, name: str, source: str) -> VideoGroundTruth:
    video = next(v for v in data["videos"] if _video_name(v) == name)
    height, width = int(video["height"]), int(video["width"])
    frames = [Path(f).stem for f in video["file_names"]]
    labels = np.zeros((len(frames), height, width), dtype=np.uint8)
    tracks = [a for a in data["annotations"] if a["video_id"] == video["id"]]
    if len(tracks) > 255:
        raise UserError(f"{source}: video {name} has {len(tracks)} objects; at most 255 are supported")
    for object_id, track in enumerate(tracks, start=1):
        segmentations = track["segmentations"]
        if len(segmentations) != len(frames):
            raise UserError(f"{source}: video {name}, annotation {track.get('id')}: {len(segmentations)} "
                           f"segmentations for {len(frames)} frames")
        for t, segm in enumerate(segmentations):
            if segm is not None:
                where = f"{source}: video {name}, frame {frames[t]}, annotation {track.get('id')}"
                labels[t][decode_segmentation(segm, height, width, where)] = object_id
    return VideoGroundTruth(name, frames, labels)


def png_ground_truth(folder: Path, name: str) -> VideoGroundTruth:
    pngs = sorted(folder.glob("*.png"))
    if not pngs:
        raise UserError(f"video {name}: no annotation PNGs in {folder}")
    labels = [read_label_png(pngs[0])]
    for path in pngs[1:]:
        frame = read_label_png(path)
        if frame.shape != labels[0].shape:
            raise UserError(f"video {name}, frame {path.stem}: annotation size {frame.shape} differs from {labels[0].shape}")
        labels.append(frame)
    labels = np.stack(labels)
    void = labels == 255
    return VideoGroundTruth(name, [p.stem for p in pngs], np.where(void, 0, labels).astype(np.uint8), void)


def choose_videos(available: list[str], n_videos: int | None, video_list: str | os.PathLike | None,
                  where: str) -> list[str]:
    """All videos, the first ``n_videos``, or those named in ``video_list`` (unknown names are errors)."""
    if n_videos is not None and video_list is not None:
        raise UserError("give either --videos N or --video-list FILE, not both")
    if video_list is not None:
        path = Path(video_list)
        if not path.is_file():
            raise UserError(f"{path}: video list not found")
        wanted = [line.strip() for line in read_text_file(path, "a video list").splitlines() if line.strip()]
        unknown = [v for v in wanted if v not in available]
        if unknown:
            raise UserError(f"{path}: unknown video(s) {', '.join(unknown[:5])}: not in {where}")
        return wanted
    if n_videos is not None:
        if n_videos < 1:
            raise UserError(f"--videos must be at least 1, got {n_videos}")
        return available[:n_videos]
    return available


# Predicted id 0 is background. Results whose id 0 covers more than this share of the ground-truth
# foreground most likely number their segments from 0 (slot masks), and that segment is lost.
BACKGROUND_ID_WARN_SHARE = 0.5


def background_share_of_foreground(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Share of the ground-truth foreground pixels (gt > 0, not void; all frames) that ``pred``
    labels 0; NaN when the video has no foreground."""
    foreground = gt > 0
    if void is not None:
        foreground &= ~void
    total = int(foreground.sum())
    return int((pred[foreground] == 0).sum()) / total if total else math.nan


def _score_job(job: tuple) -> tuple[VideoScores, float]:
    kind, source, results_dir, name = job
    if kind == "json":
        gt = json_ground_truth(load_json_annotations(source), name, str(source))
    else:
        gt = png_ground_truth(Path(source) / name, name)
    pred = load_results(results_dir, name, gt.frames, gt.labels.shape[1:])
    return score_video(name, gt.labels, pred, gt.void), background_share_of_foreground(gt.labels, pred, gt.void)


def run_video_jobs(dataset: str, jobs: list[tuple], workers: int | None, progress: bool) -> ObjectMetricsResult:
    """Score the jobs (optionally in a process pool) and summarise; warns (once) about videos whose
    predicted id 0 covers more than half of the ground-truth foreground."""
    scored = map_jobs(_score_job, jobs, workers, f"eval {dataset}", "video", progress)
    per_video = [scores for scores, _ in scored]
    flagged = [(job[3], share) for job, (_, share) in zip(jobs, scored) if share > BACKGROUND_ID_WARN_SHARE]
    if flagged:
        name, share = max(flagged, key=lambda item: item[1])
        warnings.warn(f"{len(flagged)} of {len(jobs)} result videos label more than half of the ground-truth "
                      f"foreground 0 (e.g. {name}: {share:.0%}); 0 is background, not a segment: if the masks number "
                      "segments from 0 (slot masks), add 1 to every id", stacklevel=2)
    return ObjectMetricsResult(dataset, [job[3] for job in jobs], per_video, summarize(per_video))


def evaluate_ytvis(root: str | os.PathLike, results_dir: str | os.PathLike, annotations: str | os.PathLike | None = None,
                   n_videos: int | None = None, video_list: str | os.PathLike | None = None,
                   workers: int | None = None, progress: bool = True) -> ObjectMetricsResult:
    """FG-ARI (video and per-frame), Hungarian mIoU and mBO of a results folder on YouTube-VIS."""
    if not os.path.isdir(results_dir):
        raise UserError(f"{results_dir}: results folder not found")
    if annotations is not None:
        path = Path(annotations)
        if not path.is_file() and (Path(root) / path).is_file():
            path = Path(root) / path
        kind, source = "json", os.fspath(path)
        available = json_video_names(load_json_annotations(source))
    else:
        folder = Path(root) / "Annotations"
        if not folder.is_dir():
            raise UserError(f"{folder}: no PNG annotation folders; give --annotations train.json or a root "
                           "with Annotations/<video>/*.png")
        available = sorted(p.name for p in folder.iterdir() if p.is_dir())
        kind, source = "png", os.fspath(folder)
    names = choose_videos(available, n_videos, video_list, source)
    missing = [name for name in names if not os.path.isdir(os.path.join(results_dir, name))]
    if missing:
        raise UserError(f"{results_dir}: no results for {len(missing)} of the {len(names)} video(s) of {source}, e.g. "
                       f"{missing[0]!r}; write one folder of indexed PNGs per video")
    jobs = [(kind, source, os.fspath(results_dir), name) for name in names]
    return run_video_jobs("ytvis", jobs, workers, progress)
