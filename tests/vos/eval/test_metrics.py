"""Metric functions of vos.eval.metrics: hand-computed values and bitwise agreement with the
official-code-path reference (tests/helpers/davis_reference.py)."""

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tests.helpers.davis_reference import random_blobs, ref_boundary, ref_iou, ref_statistics
from vos.eval import metrics


# ---------------------------------------------------------------- J
def test_jaccard_tiny_masks_with_and_without_void():
    gt = np.array([[[1, 1], [0, 0]]])
    pred = np.array([[[1, 0], [1, 0]]])
    assert metrics.jaccard(gt, pred).tolist() == [1 / 3]
    void = np.array([[[0, 0], [1, 0]]])  # the false positive is void: excluded from the union
    assert metrics.jaccard(gt, pred, void).tolist() == [1 / 2]


def test_jaccard_empty_empty_is_one_and_missed_object_is_zero():
    empty = np.zeros((2, 4, 4), dtype=bool)
    obj = empty.copy()
    obj[1, 1:3, 1:3] = True
    assert metrics.jaccard(empty, empty).tolist() == [1.0, 1.0]
    assert metrics.jaccard(obj, empty).tolist() == [1.0, 0.0]  # absent in frame 0: empty/empty


# ---------------------------------------------------------------- F pieces
def test_bound_pix_at_davis_resolutions():
    assert metrics.bound_pix((480, 854)) == 8      # ceil(0.008 * 979.6) = ceil(7.84)
    assert metrics.bound_pix((480, 910)) == 9      # ceil(0.008 * 1028.8) = ceil(8.23)
    assert metrics.bound_pix((480, 1152)) == 10    # ceil(0.008 * 1248.0) = ceil(9.98)
    assert metrics.bound_pix((480, 854), bound_th=3) == 3


def test_disk_matches_the_circle_formula():
    assert metrics.disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    d8 = metrics.disk(8)
    assert d8.shape == (17, 17) and d8[8, 0] == 1 and d8[0, 0] == 0 and d8[8].sum() == 17
    # (6, 5) is at distance sqrt(61) < 8 -> inside; (6, 6) at sqrt(72) > 8 -> outside
    assert d8[8 + 6, 8 + 5] == 1 and d8[8 + 6, 8 + 6] == 0


def test_boundary_of_a_square_is_the_ring_offset_towards_the_origin():
    seg = np.zeros((7, 7), dtype=bool)
    seg[2:5, 2:5] = True
    expected = np.zeros((7, 7), dtype=bool)
    expected[1:5, 1:5] = True
    expected[2:4, 2:4] = False  # 4x4 ring with corners (1,1) and (4,4): 12 pixels
    bmap = metrics.seg2bmap(seg)
    assert bmap.sum() == 12
    np.testing.assert_array_equal(bmap, expected)


def test_boundary_at_image_border_follows_the_last_row_and_column_rules():
    full = np.ones((4, 5), dtype=bool)
    assert metrics.seg2bmap(full).sum() == 0  # no shifted-in zeros: the image edge is not a boundary
    left = np.zeros((4, 5), dtype=bool)
    left[:, :2] = True
    bmap = metrics.seg2bmap(left)
    assert bmap[:, 1].all() and bmap.sum() == 4  # column 1 differs from its east neighbour, incl. last row


def test_seg2bmap_is_vectorised_over_frames():
    rng = np.random.default_rng(0)
    segs = rng.random((3, 20, 30)) < 0.3
    stacked = metrics.seg2bmap(segs)
    for t in range(3):
        np.testing.assert_array_equal(stacked[t], metrics.seg2bmap(segs[t]))


def _half_planes(shift):
    gt = np.zeros((1, 480, 854), dtype=bool)
    gt[0, :, :300] = True          # boundary: column 299, 480 pixels
    pred = np.zeros_like(gt)
    pred[0, :, :300 + shift] = True
    return gt, pred


@pytest.mark.parametrize("shift, expected", [(0, 1.0), (8, 1.0), (9, 0.0), (-8, 1.0), (-9, 0.0)])
def test_boundary_tolerance_is_the_8_pixel_disk_at_480x854(shift, expected):
    gt, pred = _half_planes(shift)
    assert metrics.boundary_f(gt, pred).tolist() == [expected]


def test_f_edge_cases():
    empty = np.zeros((1, 30, 30), dtype=bool)
    obj = empty.copy()
    obj[0, 5:15, 5:15] = True
    assert metrics.boundary_f(obj, empty).tolist() == [0.0]    # nothing predicted: P=1, R=0
    assert metrics.boundary_f(empty, obj).tolist() == [0.0]    # false positive: P=0, R=1
    assert metrics.boundary_f(empty, empty).tolist() == [1.0]  # both empty: P=R=1
    assert metrics.f_from_counts(4, 8, 2, 4).tolist() == 2 * 0.5 * 0.5 / 1.0  # P=2/4, R=4/8
    assert metrics.f_from_counts(4, 8, 0, 0).tolist() == 0.0                  # P+R = 0


def test_boundary_f_with_void_masks_both_boundaries():
    gt = np.zeros((1, 40, 40), dtype=bool)
    gt[0, 10:30, 10:30] = True
    pred = np.zeros_like(gt)
    pred[0, 10:30, 10:36] = True      # right edge 6 px off (tolerance at 40x40 is 1 px)
    void = np.zeros_like(gt)
    void[0, :, 29:] = True            # voiding the right side removes the disagreement
    assert metrics.boundary_f(gt, pred)[0] < 1
    assert metrics.boundary_f(gt, pred, void).tolist() == [1.0]
    assert metrics.boundary_f(gt, pred, void).tolist() == [ref_boundary(gt, pred, void)[0]]


# ---------------------------------------------------------------- statistics
def test_decay_bins_for_50_frames():
    assert metrics.decay_bin_edges(50).tolist() == [0, 12, 25, 37, 49]
    values = np.arange(50) / 49
    mean, recall, decay = metrics.db_statistics(values)
    assert mean == pytest.approx(0.5, abs=1e-15)
    assert recall == 25 / 50                      # strictly greater than 0.5: frames 25..49
    assert decay == pytest.approx(np.mean(np.arange(13)) / 49 - np.mean(np.arange(37, 50)) / 49, abs=1e-15)


def test_decay_edges_wrap_like_the_official_uint8_cast():
    assert metrics.decay_bin_edges(300)[-1] == 299 % 256


def test_statistics_use_nanmean_and_strict_recall():
    values = np.array([0.5, 0.6, np.nan, 1.0])
    mean, recall, _ = metrics.db_statistics(values)
    assert mean == pytest.approx(0.7)
    assert recall == 0.5  # nan > 0.5 is False and counts as a frame (the official quirk)
    assert metrics.db_statistics(values) == tuple(float(v) for v in ref_statistics(values))


# ---------------------------------------------------------------- pairwise fast path vs reference
@pytest.mark.parametrize("shape, seed", [((60, 90), 0), ((120, 200), 1), ((200, 300), 2)])
def test_pairwise_j_and_f_equal_the_reference_bitwise(shape, seed):
    rng = np.random.default_rng(seed)
    n_frames, n_gt, n_pred = 4, 3, 5
    gt = random_blobs(rng, n_frames, shape, n_gt, max_radius=shape[0] // 3)
    pred = random_blobs(rng, n_frames, shape, n_pred - 1, max_radius=shape[0] // 4)  # id 5 never used
    void = np.zeros(gt.shape, dtype=bool)
    void[:, : shape[0] // 5, : shape[1] // 3] = True
    gt = np.where(void, 0, gt).astype(np.uint8)
    pred_nv = np.where(void, 0, pred).astype(np.uint8)
    j = metrics.pairwise_jaccard(pred_nv, gt, n_pred, n_gt)
    f = metrics.pairwise_boundary_f(pred_nv, gt, n_pred, n_gt)
    assert j.shape == f.shape == (n_pred, n_gt, n_frames)
    for p in range(n_pred):
        for g in range(n_gt):
            np.testing.assert_array_equal(j[p, g], ref_iou(gt == g + 1, pred == p + 1, void))
            np.testing.assert_array_equal(f[p, g], ref_boundary(gt == g + 1, pred == p + 1, void))
    present = np.stack([(gt == g + 1).any(axis=(1, 2)) for g in range(n_gt)])  # G T
    np.testing.assert_array_equal(j[4], np.where(present, 0.0, 1.0))  # the never-used proposal is empty


def test_per_frame_matching_rows_follow_proposal_order():
    # 2 proposals, 2 objects, 2 frames: proposals swap objects between frames.
    j = np.array([[[1.0, 0.0], [0.0, 1.0]],
                  [[0.0, 1.0], [1.0, 0.0]]])  # P G T
    rows_j, _ = metrics.match_per_frame(j, j)
    assert rows_j.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    _, cols, seq_j, _ = metrics.match_sequence(j, j)
    assert seq_j.tolist() == [[1.0, 0.0], [1.0, 0.0]] or seq_j.tolist() == [[0.0, 1.0], [0.0, 1.0]]


# ---------------------------------------------------------------- FG-ARI, mIoU, mBO
@pytest.mark.parametrize("seed", range(4))
def test_fg_ari_equals_sklearn_on_foreground_pixels(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, size=(3, 20, 20))
    pred = np.where(rng.random(gt.shape) < 0.7, gt * 2 + 1, rng.integers(0, 6, size=gt.shape))
    fg = gt != 0
    assert metrics.fg_ari(gt, pred) == pytest.approx(adjusted_rand_score(gt[fg], pred[fg]), abs=1e-12)


def test_fg_ari_degenerate_cases():
    gt = np.array([0, 1, 1, 2, 2])
    assert math.isnan(metrics.fg_ari(np.zeros(5), np.arange(5)))           # no foreground
    assert metrics.fg_ari(gt, np.array([9, 3, 3, 4, 4])) == 1.0            # same partition, background ignored
    assert metrics.fg_ari(gt, np.array([0, 7, 7, 7, 7])) == 0.0            # all foreground in one segment
    assert metrics.fg_ari(np.array([1, 1]), np.array([5, 5])) == adjusted_rand_score([1, 1], [5, 5])


def test_ari_of_large_tables_uses_exact_integers():
    table = np.array([[40_000_000, 30_000_000], [20_000_000, 50_000_000]])
    # pair counts exceed int64 products; compare with exact rational arithmetic
    from fractions import Fraction
    n = int(table.sum())
    ss = sum(int(v) ** 2 for v in table.ravel())
    rows = sum(int(v) ** 2 for v in table.sum(1))
    cols = sum(int(v) ** 2 for v in table.sum(0))
    tp, fp, fn = ss - n, cols - ss, rows - ss
    tn = n * n - fp - fn - ss
    expected = Fraction(2 * (tp * tn - fn * fp), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    assert metrics.adjusted_rand_index(table) == pytest.approx(float(expected), rel=1e-12)


def test_hungarian_miou_and_best_overlap_by_hand():
    gt = np.array([[[1, 1, 2, 2]]])
    pred = np.array([[[3, 3, 3, 5]]])
    # seg3~obj1 2/3, seg3~obj2 1/4, seg5~obj2 1/2 -> assignment (3->1, 5->2)
    np.testing.assert_allclose(metrics.hungarian_miou(pred, gt), [2 / 3, 1 / 2])
    np.testing.assert_allclose(metrics.best_overlap(pred, gt), [2 / 3, 1 / 2])
    one_segment = np.array([[[3, 3, 3, 3]]])
    assert sorted(metrics.hungarian_miou(one_segment, gt).tolist()) == [0.0, 0.5]  # one object unmatched
    np.testing.assert_allclose(metrics.best_overlap(one_segment, gt), [0.5, 0.5])  # many-to-one allowed


def test_miou_is_mean_of_frame_ious_and_mbo_is_volume_iou():
    gt = np.array([[[1, 1, 0]], [[1, 0, 0]], [[0, 0, 0]]])
    pred = np.array([[[4, 4, 0]], [[0, 0, 0]], [[0, 0, 0]]])
    # frame 0: IoU 1, frame 1: IoU 0, frame 2: empty/empty, excluded -> 0.5; volume: 2 / 3
    np.testing.assert_allclose(metrics.hungarian_miou(pred, gt), [0.5])
    np.testing.assert_allclose(metrics.best_overlap(pred, gt), [2 / 3])
    assert metrics.hungarian_miou(np.zeros_like(gt), gt).tolist() == [0.0]
