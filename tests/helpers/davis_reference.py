"""Test helpers for `vos eval`: a slow reference that follows the official DAVIS code path literally,
and builders of small DAVIS roots.

The reference re-implements davis2017-evaluation's computation step by step (per frame, per
(proposal, object) pair, full-frame boundary maps, ``cv2.dilate`` with a disk, ``np.isclose(union, 0)``,
nanmean, the uint8 decay indices, Hungarian on ``-(mean J + mean F) / 2``) without any of the fast
path's sharing, cropping or histograms, so comparing the two checks the optimisations.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from tests.helpers.paths import SHARED_DATA
from vos.palette import write_label_png

SHARED_MASKS = SHARED_DATA / "davis17-val-masks"


# ------------------------------------------------------------------------------------------------
# Reference (official code path, literally)
# ------------------------------------------------------------------------------------------------

def ref_iou(annotation, segmentation, void_pixels=None):
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    void_pixels = np.zeros_like(segmentation) if void_pixels is None else void_pixels.astype(bool)
    inters = np.sum((segmentation & annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inters / union
    j[np.isclose(union, 0)] = 1
    return j


def ref_disk(radius):
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    return np.array((x ** 2 + y ** 2) <= radius ** 2, dtype=np.uint8)


def ref_seg2bmap(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def ref_f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=0.008):
    void_pixels = np.zeros_like(foreground_mask).astype(bool) if void_pixels is None else void_pixels.astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = ref_seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = ref_seg2bmap(gt_mask * np.logical_not(void_pixels))
    kernel = ref_disk(int(bound_pix))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel)
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def ref_boundary(annotation, segmentation, void_pixels=None):
    out = np.zeros(annotation.shape[0])
    for t in range(annotation.shape[0]):
        out[t] = ref_f_measure(segmentation[t], annotation[t], None if void_pixels is None else void_pixels[t])
    return out


def ref_statistics(per_frame_values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(per_frame_values)
        recall = np.nanmean(per_frame_values > 0.5)
    ids = np.round(np.linspace(1, len(per_frame_values), 5) + 1e-10) - 1
    ids = ids.astype(np.uint8)
    bins = [per_frame_values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return mean, recall, decay


def ref_read_gt(davis_root, sequence, task):
    folder = Path(davis_root) / ("Annotations" if task == "semi-supervised" else "Annotations_unsupervised") / "480p" / sequence
    paths = sorted(folder.glob("*.png"))
    masks = np.stack([np.array(Image.open(p)) for p in paths]).astype(np.float64)
    void = (masks == 255).astype(np.float64)
    masks[masks == 255] = 0
    num_objects = int(np.max(masks[0]))
    one_hot = (np.arange(1, num_objects + 1)[:, None, None, None] == masks[None]) > 0
    return one_hot, void, [p.stem for p in paths]


def ref_read_results(results_dir, sequence, frame_ids):
    masks = np.stack([np.array(Image.open(Path(results_dir) / sequence / f"{f}.png")) for f in frame_ids]).astype(np.float64)
    num_objects = int(np.max(masks))
    return (np.arange(1, num_objects + 1)[:, None, None, None] == masks[None]) > 0


def ref_evaluate_sequence(gt, void, res, task, matching="sequence", max_n_proposals=20):
    """(J rows, F rows) of one sequence exactly as ``DAVISEvaluation._evaluate_*`` returns them."""
    if task == "semi-supervised":
        if res.shape[0] < gt.shape[0]:
            res = np.concatenate([res, np.zeros((gt.shape[0] - res.shape[0], *res.shape[1:]))], axis=0)
        j = np.zeros(gt.shape[:2])
        f = np.zeros(gt.shape[:2])
        for ii in range(gt.shape[0]):
            j[ii] = ref_iou(gt[ii], res[ii], None)
            f[ii] = ref_boundary(gt[ii], res[ii], None)
        return j, f
    assert res.shape[0] <= max_n_proposals
    if res.shape[0] < gt.shape[0]:
        res = np.concatenate([res, np.zeros((gt.shape[0] - res.shape[0], *res.shape[1:]))], axis=0)
    j = np.zeros((res.shape[0], gt.shape[0], gt.shape[1]))
    f = np.zeros((res.shape[0], gt.shape[0], gt.shape[1]))
    for ii in range(gt.shape[0]):
        for jj in range(res.shape[0]):
            j[jj, ii] = ref_iou(gt[ii], res[jj], void)
            f[jj, ii] = ref_boundary(gt[ii], res[jj], void)
    if matching == "frame":
        js, fs = [], []
        for t in range(j.shape[2]):
            rows, cols = linear_sum_assignment(-(j + f)[:, :, t])
            js.append(j[rows, cols, t])
            fs.append(f[rows, cols, t])
        return np.stack(js, axis=-1), np.stack(fs, axis=-1)
    rows, cols = linear_sum_assignment(-(np.mean(j, axis=2) + np.mean(f, axis=2)) / 2)
    return j[rows, cols], f[rows, cols]


def ref_evaluate(davis_root, results_dir, task="unsupervised", sequences=None, matching="sequence", year=2017):
    """Global numbers and per-row statistics in the official order: (global dict, list of rows)."""
    if sequences is None:
        sequences = (Path(davis_root) / "ImageSets" / str(year) / "val.txt").read_text().split()
    per_row = []
    for seq in sequences:
        gt, void, frame_ids = ref_read_gt(davis_root, seq, task)
        if year == 2016:
            labels = np.stack([np.array(Image.open(p)) for p in sorted(
                (Path(davis_root) / ("Annotations" if task == "semi-supervised" else "Annotations_unsupervised")
                 / "480p" / seq).glob("*.png"))])
            gt = ((labels > 0) & (labels != 255))[None]
        if task == "semi-supervised":
            gt, frame_ids = gt[:, 1:-1], frame_ids[1:-1]
        res = ref_read_results(results_dir, seq, frame_ids)
        if year == 2016:
            res = res.any(axis=0, keepdims=True)
        j_rows, f_rows = ref_evaluate_sequence(gt, void, res, task, matching,
                                               max_n_proposals=20 if matching == "sequence" else 300)
        for ii in range(gt.shape[0]):
            per_row.append((f"{seq}_{ii + 1}", *ref_statistics(j_rows[ii]), *ref_statistics(f_rows[ii])))
    columns = list(zip(*per_row))
    jm, jr, jd, fm, fr, fd = (np.mean(list(c)) for c in columns[1:])
    return {"J&F-Mean": (jm + fm) / 2., "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
            "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}, per_row


# ------------------------------------------------------------------------------------------------
# Small DAVIS roots
# ------------------------------------------------------------------------------------------------

def write_sequence(folder: Path, label_maps) -> None:
    for t, labels in enumerate(label_maps):
        write_label_png(folder / f"{t:05d}.png", np.asarray(labels, dtype=np.uint8))


def make_davis_root(root: Path, gt: dict, semi_gt: dict | None = None, year: int = 2017,
                    subset: str = "val") -> Path:
    """A DAVIS root with ``gt`` (seq -> (T, H, W) labels) as unsupervised annotations (and ``semi_gt``
    or the same maps as semi-supervised ones) and ``ImageSets/<year>/<subset>.txt``."""
    for seq, labels in gt.items():
        write_sequence(root / "Annotations_unsupervised" / "480p" / seq, labels)
        write_sequence(root / "Annotations" / "480p" / seq, (semi_gt or gt)[seq])
    sets = root / "ImageSets" / str(year)
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{subset}.txt").write_text("".join(f"{seq}\n" for seq in gt))
    return root


def write_results(folder: Path, results: dict) -> Path:
    for seq, labels in results.items():
        write_sequence(folder / seq, labels)
    return folder


def random_blobs(rng: np.random.Generator, n_frames: int, shape, n_objects: int, max_radius: int = 12,
                 drift: float = 2.0) -> np.ndarray:
    """(T, H, W) uint8 label maps of moving overlapping ellipses (later ids paint over earlier ones)."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    out = np.zeros((n_frames, height, width), dtype=np.uint8)
    centres = rng.uniform([0, 0], [height, width], size=(n_objects, 2))
    radii = rng.uniform(2, max_radius, size=(n_objects, 2))
    for t in range(n_frames):
        for k in range(n_objects):
            cy, cx = centres[k] + drift * t * rng.normal(size=2) * 0.3
            inside = ((yy - cy) / radii[k, 0]) ** 2 + ((xx - cx) / radii[k, 1]) ** 2 <= 1
            out[t][inside] = k + 1
        centres += rng.normal(scale=drift, size=centres.shape)
    return out


def shared_davis_root(root: Path, sequences: list[str], n_frames: int | None = None) -> Path:
    """A DAVIS root whose annotations (both tasks) are the shared OSVOS masks of ``sequences``
    (file symlinks; optionally only the first ``n_frames`` of each), listed in ImageSets/2017/val.txt."""
    for folder in ("Annotations_unsupervised", "Annotations"):
        for seq in sequences:
            target = root / folder / "480p" / seq
            target.mkdir(parents=True)
            for png in sorted((SHARED_MASKS / "osvos-semisupervised" / seq).glob("*.png"))[:n_frames]:
                (target / png.name).symlink_to(png)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{s}\n" for s in sequences))
    return root
