"""Segmentation metrics as small pure functions over numpy arrays.

DAVIS region similarity J and contour accuracy F follow the official davis2017-evaluation toolkit
bit for bit (same formulas, same float64 operation order, same edge cases); the pairwise versions
compute the same numbers for every (proposal, object) pair while doing each boundary map and each
dilation once per (mask, frame) instead of once per pair. FG-ARI, mIoU and mBO are the object-centric
video metrics (see docs/eval.md for which variant each one is).
"""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

BOUND_TH = 0.008  # official F tolerance: fraction of the image diagonal


# ----------------------------------------------------------------------------------------------
# DAVIS J and F, single pair
# ----------------------------------------------------------------------------------------------

def bound_pix(shape_hw: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Tolerance radius in pixels: ``ceil(bound_th * ||(H, W)||)`` (or ``bound_th`` itself if >= 1)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape_hw)))


def disk(radius: int) -> np.ndarray:
    """Filled disk structuring element, uint8 (2r+1, 2r+1): ``x^2 + y^2 <= r^2`` (= skimage's disk)."""
    offsets = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(offsets, offsets)
    return (x ** 2 + y ** 2 <= radius ** 2).astype(np.uint8)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """1-pixel boundary map of binary masks ``(..., H, W)`` (vectorised over leading axes).

    A pixel is on the boundary when it differs from its east, south or south-east neighbour; the last
    row only looks east, the last column only south, the bottom-right pixel is never a boundary
    (David Martin's BSDS convention, boundaries offset half a pixel towards the origin).
    """
    seg = np.asarray(seg).astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J of binary masks ``(T, H, W)`` -> ``(T,)``; void pixels excluded; 1 if union empty."""
    gt, pred = np.asarray(gt).astype(bool), np.asarray(pred).astype(bool)
    valid = np.ones_like(gt) if void is None else ~np.asarray(void).astype(bool)
    inter = np.sum(gt & pred & valid, axis=(-2, -1))
    union = np.sum((gt | pred) & valid, axis=(-2, -1))
    return j_from_counts(inter, union)


def j_from_counts(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """J from integer intersection/union counts (any shape); the empty/empty case scores 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.asarray(inter) / np.asarray(union)
    j = np.array(j, dtype=np.float64, ndmin=1)
    j[np.isclose(union, 0).reshape(j.shape)] = 1
    return j.reshape(np.shape(inter))


def f_from_counts(n_fg, n_gt, fg_match, gt_match) -> np.ndarray:
    """Boundary F from boundary-pixel counts (broadcast over any shape), with the official edge cases.

    ``n_fg``/``n_gt``: boundary pixels of prediction / ground truth; ``fg_match``: prediction boundary
    pixels within tolerance of the GT boundary; ``gt_match``: the converse.
    """
    n_fg, n_gt, fg_match, gt_match = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64)
                                                          for a in (n_fg, n_gt, fg_match, gt_match)))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = fg_match / n_fg.astype(np.float64)
        recall = gt_match / n_gt.astype(np.float64)
    precision = np.where(n_fg == 0, 1.0, np.where(n_gt == 0, 0.0, precision))
    recall = np.where(n_fg == 0, np.where(n_gt == 0, 1.0, 0.0), np.where(n_gt == 0, 1.0, recall))
    denom = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 2 * precision * recall / denom
    return np.where(denom == 0, 0.0, f)


def boundary_f(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
               bound_th: float = BOUND_TH) -> np.ndarray:
    """Contour accuracy F of binary masks ``(T, H, W)`` -> ``(T,)`` (boundary maps vectorised over T)."""
    gt, pred = np.asarray(gt).astype(bool), np.asarray(pred).astype(bool)
    if void is not None:
        valid = ~np.asarray(void).astype(bool)
        gt, pred = gt & valid, pred & valid
    kernel = disk(bound_pix(gt.shape[-2:], bound_th))
    gt_b, fg_b = seg2bmap(gt), seg2bmap(pred)
    fg_match = np.empty(gt.shape[0], dtype=np.int64)
    gt_match = np.empty(gt.shape[0], dtype=np.int64)
    for t in range(gt.shape[0]):
        gt_dil = cv2.dilate(gt_b[t].astype(np.uint8), kernel).astype(bool)
        fg_dil = cv2.dilate(fg_b[t].astype(np.uint8), kernel).astype(bool)
        fg_match[t] = np.count_nonzero(fg_b[t] & gt_dil)
        gt_match[t] = np.count_nonzero(gt_b[t] & fg_dil)
    return f_from_counts(fg_b.sum(axis=(-2, -1)), gt_b.sum(axis=(-2, -1)), fg_match, gt_match)


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (fraction > 0.5) and decay of a per-frame score vector, as the DAVIS toolkit.

    Decay = mean of the first minus mean of the last of 4 inclusive bins whose edges are
    ``round(linspace(1, T, 5) + 1e-10) - 1`` cast to uint8 (the official cast, which wraps for T > 256).
    """
    per_frame = np.asarray(per_frame, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(per_frame)
        recall = np.nanmean(per_frame > 0.5)
        ids = decay_bin_edges(len(per_frame))
        bins = [per_frame[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def decay_bin_edges(n_frames: int) -> np.ndarray:
    """The 5 frame indices delimiting the 4 inclusive decay bins (uint8, as in the official code)."""
    return (np.round(np.linspace(1, n_frames, 5) + 1e-10) - 1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# DAVIS J and F for all (proposal, object) pairs of a sequence
# ----------------------------------------------------------------------------------------------

def pairwise_jaccard(pred: np.ndarray, gt: np.ndarray, n_pred: int, n_gt: int) -> np.ndarray:
    """J for every pair of label maps' ids: ``pred`` (T, H, W) in 0..n_pred, ``gt`` (T, H, W) in 0..n_gt.

    Returns (n_pred, n_gt, T) float64, equal to ``jaccard(gt == g, pred == p)`` for p, g >= 1.
    Void pixels must already be 0 in both maps (then they are outside every mask, i.e. excluded).
    """
    return j_from_counts(*pairwise_intersections(pred, gt, n_pred, n_gt))


def label_boundaries(labels_hw: np.ndarray, n_labels: int) -> list[np.ndarray]:
    """Boundary pixels of every label's binary mask, from one pass over a label map (H, W).

    Returns for k = 1..n_labels the sorted flat indices where ``seg2bmap(labels_hw == k)`` is set.
    A pixel is on the boundary of mask k iff one of its compared neighbours (east, south, south-east,
    with seg2bmap's last-row/last-column rules) has a different label and k is its label or that
    neighbour's: so only pixels with a differing neighbour are visited, once for all labels.
    """
    height, width = labels_hw.shape
    differs = np.zeros((height, width), dtype=bool)
    differs[:, :-1] |= labels_hw[:, :-1] != labels_hw[:, 1:]        # east (every row)
    differs[:-1, :] |= labels_hw[:-1, :] != labels_hw[1:, :]        # south (every column)
    differs[:-1, :-1] |= labels_hw[:-1, :-1] != labels_hw[1:, 1:]   # south-east (interior)
    index = np.flatnonzero(differs)
    flat = labels_hw.ravel()
    own = flat[index]
    has_east = (index % width) < width - 1
    has_south = index < (height - 1) * width
    last = flat.size - 1
    # A missing (or equal) neighbour contributes the pixel's own label, i.e. nothing new.
    east = np.where(has_east, flat[np.minimum(index + 1, last)], own)
    south = np.where(has_south, flat[np.minimum(index + width, last)], own)
    south_east = np.where(has_east & has_south, flat[np.minimum(index + width + 1, last)], own)
    candidates = np.sort(np.stack([own, east, south, south_east], axis=1), axis=1)     # N 4
    distinct = np.ones(candidates.shape, dtype=bool)
    distinct[:, 1:] = candidates[:, 1:] != candidates[:, :-1]
    distinct &= candidates <= n_labels                               # ids beyond n_labels are not scored
    pixel = np.broadcast_to(index[:, None], candidates.shape)[distinct]
    label = candidates[distinct]
    order = np.argsort(label, kind="stable")                        # stable: pixels stay sorted
    counts = np.bincount(label, minlength=n_labels + 1)
    groups = np.split(pixel[order], np.cumsum(counts)[:-1])
    return groups[1:]


def _dilate_points(points: np.ndarray, shape_hw: tuple[int, int], kernel: np.ndarray,
                   box: tuple[int, int, int, int]) -> tuple[int, int, np.ndarray]:
    """Dilation of the boundary map given by flat ``points``, computed inside ``box`` = (y0, y1, x0, x1).

    Exact inside the box when every point within ``radius`` of it is included (callers pass the
    points of the box grown by the radius).
    """
    y0, y1, x0, x1 = box
    ys, xs = np.divmod(points, shape_hw[1])
    bmap = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    bmap[ys - y0, xs - x0] = 1
    return y0, x0, cv2.dilate(bmap, kernel).view(bool)


def _count_hits(dilated: tuple[int, int, np.ndarray], ys: np.ndarray, xs: np.ndarray) -> int:
    """How many of the points (full-frame ys, xs) lie in a dilated crop (y0, x0, map)."""
    y0, x0, dil = dilated
    ys, xs = ys - y0, xs - x0
    inside = (ys >= 0) & (ys < dil.shape[0]) & (xs >= 0) & (xs < dil.shape[1])
    return int(np.count_nonzero(dil[ys[inside], xs[inside]]))


def _bounding_box(ys: np.ndarray, xs: np.ndarray, margin: int, shape_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    return (max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, shape_hw[0]),
            max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, shape_hw[1]))


def frame_boundary_counts(pred_hw: np.ndarray, gt_hw: np.ndarray, n_pred: int, n_gt: int,
                          kernel: np.ndarray) -> tuple[np.ndarray, ...]:
    """Boundary counts of one frame for all pairs: n_fg (P,), n_gt (G,), fg_match and gt_match (P, G).

    Each boundary map is extracted once (:func:`label_boundaries`); each object's boundary is dilated
    once, in its own box; each proposal's boundary is dilated once, only over the box holding all
    object boundary pixels (the only places where its dilation is looked up).
    """
    shape = gt_hw.shape
    radius = kernel.shape[0] // 2
    pred_points = label_boundaries(pred_hw, n_pred)
    gt_points = label_boundaries(gt_hw, n_gt)
    n_fg = np.array([len(p) for p in pred_points], dtype=np.int64)
    n_gt_b = np.array([len(g) for g in gt_points], dtype=np.int64)
    fg_match = np.zeros((n_pred, n_gt), dtype=np.int64)
    gt_match = np.zeros((n_pred, n_gt), dtype=np.int64)
    if not n_fg.any() or not n_gt_b.any():
        return n_fg, n_gt_b, fg_match, gt_match
    pred_yx = [np.divmod(p, shape[1]) for p in pred_points]
    gt_yx = [np.divmod(g, shape[1]) for g in gt_points]

    for g, points in enumerate(gt_points):                          # fg_match: points of p in dil(B_g)
        if len(points):
            dilated = _dilate_points(points, shape, kernel, _bounding_box(*gt_yx[g], radius, shape))
            for p in np.flatnonzero(n_fg):
                fg_match[p, g] = _count_hits(dilated, *pred_yx[p])

    # gt_match: points of g in dil(B_p), looked up only in the box of all object boundary pixels, so
    # only proposal points within the radius of that box matter, and only the part of the box within
    # the radius of those points can be non-zero.
    grown = _bounding_box(*np.divmod(np.concatenate(gt_points), shape[1]), radius, shape)
    for p in np.flatnonzero(n_fg):
        ys, xs = pred_yx[p]
        near = (ys >= grown[0]) & (ys < grown[1]) & (xs >= grown[2]) & (xs < grown[3])
        if near.any():
            own = _bounding_box(ys[near], xs[near], radius, shape)
            box = (max(own[0], grown[0]), min(own[1], grown[1]), max(own[2], grown[2]), min(own[3], grown[3]))
            dilated = _dilate_points(pred_points[p][near], shape, kernel, box)
            for g in np.flatnonzero(n_gt_b):
                gt_match[p, g] = _count_hits(dilated, *gt_yx[g])
    return n_fg, n_gt_b, fg_match, gt_match


def pairwise_boundary_f(pred: np.ndarray, gt: np.ndarray, n_pred: int, n_gt: int,
                        bound_th: float = BOUND_TH) -> np.ndarray:
    """F for every (proposal, object) pair: (n_pred, n_gt, T) float64, equal to ``boundary_f`` per pair.

    Void pixels must already be 0 in both maps (the official code multiplies masks by not-void).
    """
    n_frames = gt.shape[0]
    kernel = disk(bound_pix(gt.shape[-2:], bound_th))
    n_fg = np.zeros((n_pred, n_gt, n_frames), dtype=np.int64)
    n_gt_b = np.zeros_like(n_fg)
    fg_match = np.zeros_like(n_fg)
    gt_match = np.zeros_like(n_fg)
    for t in range(n_frames):
        frame_fg, frame_gt, fg_match[:, :, t], gt_match[:, :, t] = frame_boundary_counts(
            pred[t], gt[t], n_pred, n_gt, kernel)
        n_fg[:, :, t] = frame_fg[:, None]
        n_gt_b[:, :, t] = frame_gt[None, :]
    return f_from_counts(n_fg, n_gt_b, fg_match, gt_match)


def match_sequence(j_pairs: np.ndarray, f_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official unsupervised assignment: one Hungarian match per sequence on ``(mean_t J + mean_t F) / 2``.

    ``j_pairs``/``f_pairs``: (P, G, T) with P >= G. Returns the matched proposal indices and object
    indices (scipy's ``row_ind, col_ind``, ordered by proposal) and the matched (G, T) J and F rows.
    """
    score = (np.mean(j_pairs, axis=2) + np.mean(f_pairs, axis=2)) / 2
    rows, cols = linear_sum_assignment(-score)
    return rows, cols, j_pairs[rows, cols, :], f_pairs[rows, cols, :]


def match_per_frame(j_pairs: np.ndarray, f_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame Hungarian on ``J[:, :, t] + F[:, :, t]`` (the SSL-UVOS / Betrayed-by-Attention variant).

    Returns the (G, T) J and F rows; row i at frame t is the i-th matched pair of frame t in proposal
    order, so a row is not one object (exactly as that release computes it). Not the official protocol.
    """
    score = j_pairs + f_pairs
    js, fs = [], []
    for t in range(score.shape[2]):
        rows, cols = linear_sum_assignment(-score[:, :, t])
        js.append(j_pairs[rows, cols, t])
        fs.append(f_pairs[rows, cols, t])
    return np.stack(js, axis=-1), np.stack(fs, axis=-1)


# ----------------------------------------------------------------------------------------------
# Object-centric video metrics: FG-ARI, mIoU (Hungarian), mBO
# ----------------------------------------------------------------------------------------------

def contingency(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Contingency table n[c, k] = number of points with ``gt`` label c and ``pred`` label k.

    Labels are non-negative integers and index the table directly (absent labels give zero rows or
    columns, which change no pair count); one bincount instead of sorting the points.
    """
    gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
    if gt.size == 0:
        return np.zeros((1, 1), dtype=np.int64)
    n_gt, n_pred = int(gt.max()) + 1, int(pred.max()) + 1
    code_type = np.uint16 if n_gt * n_pred <= 1 << 16 else np.int64  # uint16: 4x less memory traffic
    code = gt.astype(code_type) * code_type(n_pred) + pred
    return np.bincount(code, minlength=n_gt * n_pred).reshape(n_gt, n_pred)


def adjusted_rand_index(table: np.ndarray) -> float:
    """ARI from a contingency table, with scikit-learn's pair-confusion formula and degenerate rules.

    Python integers throughout (video-sized counts overflow int64 products), so the value equals
    ``sklearn.metrics.adjusted_rand_score`` on the same points.
    """
    table = np.asarray(table, dtype=np.int64)
    n = int(table.sum())
    sum_squares = int((table.astype(object) ** 2).sum()) if table.size else 0
    rows = [int(v) for v in table.sum(axis=1)]
    cols = [int(v) for v in table.sum(axis=0)]
    tp = sum_squares - n
    fp = sum(c * c for c in cols) - sum_squares   # sklearn's C[0, 1] (pairs split by truth, joined by pred)
    fn = sum(r * r for r in rows) - sum_squares   # sklearn's C[1, 0]
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def fg_ari(gt: np.ndarray, pred: np.ndarray) -> float:
    """FG-ARI: ARI between ``gt`` and ``pred`` labels on the pixels where ``gt != 0``; NaN if there are none."""
    foreground = contingency(gt, pred)[1:]  # row 0 holds the background pixels
    if not foreground.any():
        return math.nan
    return adjusted_rand_index(foreground)


def pairwise_intersections(pred: np.ndarray, gt: np.ndarray, n_pred: int, n_gt: int) -> tuple[np.ndarray, ...]:
    """Per-frame intersection and union of every (pred id 1..n_pred, gt id 1..n_gt) pair: two (P, G, T) int arrays.

    One joint label histogram per frame gives all intersections and areas at once.
    """
    n_frames = gt.shape[0]
    joint = np.empty((n_frames, n_pred + 1, n_gt + 1), dtype=np.int64)
    for t in range(n_frames):
        code = pred[t].astype(np.intp) * (n_gt + 1) + gt[t]
        joint[t] = np.bincount(code.ravel(), minlength=(n_pred + 1) * (n_gt + 1)).reshape(n_pred + 1, n_gt + 1)
    inter = joint[:, 1:, 1:]
    union = joint[:, 1:, :].sum(axis=2)[:, :, None] + joint[:, :, 1:].sum(axis=1)[:, None, :] - inter
    return inter.transpose(1, 2, 0), union.transpose(1, 2, 0)


def mean_frame_iou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Mean over frames with a non-empty union of the per-frame IoU (last axis = frames); 0 if none."""
    valid = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(valid, inter / np.maximum(union, 1), 0.0)
    n_valid = valid.sum(axis=-1)
    return np.where(n_valid > 0, iou.sum(axis=-1) / np.maximum(n_valid, 1), 0.0)


def hungarian_miou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-object mIoU after one Hungarian assignment per video (SOLV's variant).

    ``pred``/``gt``: (T, H, W) label maps, 0 = background. Pair score = mean per-frame IoU over frames
    where the pair's union is non-empty; one-to-one assignment maximising it; unmatched predicted
    segments become background; an unmatched object scores 0. Returns one value per GT id present
    (sorted ids), the mean per-frame IoU over frames where object or its matched segment is present.
    """
    gt_ids, pred_ids = _object_ids(gt), _object_ids(pred)
    if not gt_ids:
        return np.zeros(0)
    if not pred_ids:
        return np.zeros(len(gt_ids))
    gt_c = _compact(gt, gt_ids)
    pred_c = _compact(pred, pred_ids)
    inter, union = pairwise_intersections(pred_c, gt_c, len(pred_ids), len(gt_ids))  # P G T
    score = mean_frame_iou(inter, union)
    rows, cols = linear_sum_assignment(-score)
    per_object = np.zeros(len(gt_ids))
    per_object[cols] = score[rows, cols]
    return per_object


def best_overlap(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-object best overlap (VideoSAUR's mBO): max over predicted segments of the video volume IoU.

    Volume IoU = sum_t intersection / sum_t union over the whole clip; predicted id 0 is background and
    not a segment. Returns one value per GT id present (sorted ids).
    """
    gt_ids, pred_ids = _object_ids(gt), _object_ids(pred)
    if not gt_ids:
        return np.zeros(0)
    if not pred_ids:
        return np.zeros(len(gt_ids))
    inter, union = pairwise_intersections(_compact(pred, pred_ids), _compact(gt, gt_ids), len(pred_ids), len(gt_ids))
    inter, union = inter.sum(axis=2), union.sum(axis=2)
    volume_iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return volume_iou.max(axis=0)


def _object_ids(labels: np.ndarray) -> list[int]:
    """Sorted non-zero ids present in a non-negative integer label map."""
    return [int(v) for v in np.flatnonzero(np.bincount(np.asarray(labels).ravel())) if v != 0]


def _compact(labels: np.ndarray, ids: list[int]) -> np.ndarray:
    """Map the listed ids to 1..len(ids) and everything else to 0 (uint16 label map)."""
    lut = np.zeros(max(int(labels.max()), max(ids)) + 1, dtype=np.uint16)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[labels]
