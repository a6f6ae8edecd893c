"""`evaluate_davis` end to end on small synthetic DAVIS roots, against the official-path reference,
plus the protocol rules (object count, void, padding, 2016) and bad input."""

import numpy as np
import pytest

from tests.helpers.davis_reference import make_davis_root, random_blobs, ref_evaluate, write_results
from vos.eval import evaluate_davis
from vos.infra.errors import UserError
from vos.palette import write_label_png

SHAPE = (48, 80)


def _scenario(tmp_path, seed=0, n_seq=2, n_frames=7):
    rng = np.random.default_rng(seed)
    gt, res = {}, {}
    for i in range(n_seq):
        labels = random_blobs(rng, n_frames, SHAPE, n_objects=2 + i, max_radius=14)
        labels[:, :4, :10] = 255                                   # a void band
        gt[f"seq{i}"] = labels
        noisy = np.where(rng.random(labels.shape) < 0.05, 0, labels % 255)
        res[f"seq{i}"] = np.where(noisy > 0, noisy + 1, 0)         # ids shifted: matching must find them
    res["seq0"][3] = 0                                             # a frame with no prediction at all
    root = make_davis_root(tmp_path / "davis", gt)
    results = write_results(tmp_path / "res", res)
    return root, results, gt, res


@pytest.mark.parametrize("matching", ["sequence", "frame"])
def test_unsupervised_equals_reference(tmp_path, matching):
    root, results, _, _ = _scenario(tmp_path)
    ours = evaluate_davis(root, results, matching=matching, workers=1, progress=False)
    ref, ref_rows = ref_evaluate(root, results, matching=matching)
    assert ours.global_scores == {k: float(v) for k, v in ref.items()}
    ref_stats = sorted(tuple(float(x) for x in row[1:]) for row in ref_rows)
    our_stats = sorted((s.j_mean, s.j_recall, s.j_decay, s.f_mean, s.f_recall, s.f_decay) for s in ours.per_object)
    assert our_stats == ref_stats


def test_semi_supervised_equals_reference_and_skips_first_and_last(tmp_path):
    root, _, gt, _ = _scenario(tmp_path)
    res = {seq: np.where(labels == 255, 0, labels) for seq, labels in gt.items()}
    res["seq1"][1:-1, 20:30] = 0                                   # damage the scored frames
    res["seq0"][0] = 0                                             # damage first/last: not scored
    res["seq0"][-1] = 0
    results = write_results(tmp_path / "semi", res)
    ours = evaluate_davis(root, results, task="semi-supervised", workers=1, progress=False)
    ref, ref_rows = ref_evaluate(root, results, task="semi-supervised")
    assert ours.global_scores == {k: float(v) for k, v in ref.items()}
    assert [(s.name, s.j_mean, s.f_mean) for s in ours.per_object] == [(r[0], float(r[1]), float(r[4])) for r in ref_rows]
    seq0 = [s for s in ours.per_object if s.sequence == "seq0"]
    assert all(s.j_mean == 1.0 and s.f_mean == 1.0 for s in seq0)


def test_2016_merges_objects_and_equals_reference(tmp_path):
    rng = np.random.default_rng(3)
    gt = {"a": random_blobs(rng, 5, SHAPE, 3, max_radius=12), "b": random_blobs(rng, 5, SHAPE, 2, max_radius=12)}
    root = make_davis_root(tmp_path / "davis", gt, year=2016)
    res = {k: np.roll(v, 2, axis=2) * 3 for k, v in gt.items()}  # ids 3, 6, 9: all foreground
    results = write_results(tmp_path / "res", res)
    ours = evaluate_davis(root, results, year=2016, workers=1, progress=False)
    ref, _ = ref_evaluate(root, results, year=2016)
    assert ours.global_scores == {k: float(v) for k, v in ref.items()}
    assert [s.name for s in ours.per_object] == ["a_1", "b_1"]


def test_objects_are_counted_in_the_first_frame_only(tmp_path):
    gt = np.zeros((4, 20, 20), dtype=np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[2:, 12:18, 12:18] = 2                                       # appears later: dropped
    root = make_davis_root(tmp_path / "davis", {"s": gt})
    res = np.where(gt == 1, 1, 0)                                  # object 2 not predicted
    result = evaluate_davis(root, write_results(tmp_path / "r", {"s": res}), workers=1, progress=False)
    assert [s.name for s in result.per_object] == ["s_1"]
    assert result.global_scores["J-Mean"] == 1.0 and result.global_scores["F-Mean"] == 1.0


def test_void_is_excluded_in_unsupervised_and_background_in_semi_supervised(tmp_path):
    gt = np.zeros((3, 20, 20), dtype=np.uint8)
    gt[:, 5:10, 5:10] = 1
    gt[:, 0:5, 5:10] = 255
    root = make_davis_root(tmp_path / "davis", {"s": gt})
    res = np.zeros_like(gt)
    res[:, 0:10, 5:10] = 1                                         # object + the void region above it
    results = write_results(tmp_path / "r", {"s": res})
    unsup = evaluate_davis(root, results, workers=1, progress=False)
    semi = evaluate_davis(root, results, task="semi-supervised", workers=1, progress=False)
    assert unsup.global_scores["J-Mean"] == 1.0                    # void pixels ignored
    assert semi.global_scores["J-Mean"] == 25 / 50                 # void counts as background: false positives


def test_missing_proposals_are_empty_and_score_zero(tmp_path):
    gt = np.zeros((3, 20, 20), dtype=np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:18, 12:18] = 2
    root = make_davis_root(tmp_path / "davis", {"s": gt})
    res = np.where(gt == 2, 1, 0)                                  # one proposal for two objects
    result = evaluate_davis(root, write_results(tmp_path / "r", {"s": res}), workers=1, progress=False)
    by_name = {s.name: s for s in result.per_object}
    assert by_name["s_2"].j_mean == 1.0 and by_name["s_2"].proposal == 1
    assert by_name["s_1"].j_mean == 0.0 and by_name["s_1"].f_mean == 0.0 and by_name["s_1"].proposal == 2
    assert result.global_scores["J&F-Mean"] == 0.5


def test_worker_processes_give_identical_results(tmp_path):
    root, results, _, _ = _scenario(tmp_path, seed=5, n_seq=3)
    one = evaluate_davis(root, results, workers=1, progress=False)
    two = evaluate_davis(root, results, workers=2, progress=False)
    assert one.global_scores == two.global_scores
    assert one.per_object == two.per_object


# ---------------------------------------------------------------- bad input
def _simple(tmp_path):
    gt = np.zeros((3, 20, 20), dtype=np.uint8)
    gt[:, 2:8, 2:8] = 1
    root = make_davis_root(tmp_path / "davis", {"s": gt})
    results = write_results(tmp_path / "r", {"s": gt})
    return root, results


def test_rgb_result_png_is_an_error_naming_sequence_and_frame(tmp_path):
    from PIL import Image

    root, results = _simple(tmp_path)
    Image.new("RGB", (20, 20)).save(results / "s" / "00001.png")
    with pytest.raises(UserError, match=r"sequence s, frame 00001: .*s/00001.png: label PNG is RGB, not indexed"):
        evaluate_davis(root, results, workers=1, progress=False)


def test_missing_frame_is_an_error(tmp_path):
    root, results = _simple(tmp_path)
    (results / "s" / "00002.png").unlink()
    with pytest.raises(UserError, match=r"sequence s, frame 00002: .* is missing"):
        evaluate_davis(root, results, workers=1, progress=False)


def test_size_mismatch_is_an_error(tmp_path):
    root, results = _simple(tmp_path)
    write_label_png(results / "s" / "00001.png", np.zeros((10, 20), dtype=np.uint8))
    with pytest.raises(UserError, match=r"sequence s, frame 00001: .* is 20x10 \(WxH\) but the annotation is 20x20"):
        evaluate_davis(root, results, workers=1, progress=False)


def test_more_than_20_proposals_is_an_error(tmp_path):
    root, results = _simple(tmp_path)
    write_label_png(results / "s" / "00001.png", np.full((20, 20), 21, dtype=np.uint8))
    with pytest.raises(UserError, match=r"sequence s, frame 00001: result index 21 exceeds the maximum of 20"):
        evaluate_davis(root, results, workers=1, progress=False)
    # the per-frame variant follows its release's limit of 300, so 21 is fine there
    assert evaluate_davis(root, results, matching="frame", workers=1, progress=False).per_object


def test_semi_supervised_index_above_object_count_is_an_error(tmp_path):
    root, results = _simple(tmp_path)
    write_label_png(results / "s" / "00001.png", np.full((20, 20), 2, dtype=np.uint8))
    with pytest.raises(UserError, match=r"sequence s, frame 00001: result index 2 is higher than the number of objects \(1\)"):
        evaluate_davis(root, results, task="semi-supervised", workers=1, progress=False)


def test_unknown_or_missing_sequences_are_errors(tmp_path):
    root, results = _simple(tmp_path)
    with pytest.raises(UserError, match=r"unknown sequence\(s\) nope"):
        evaluate_davis(root, results, sequences=["nope"], workers=1, progress=False)
    (root / "ImageSets" / "2017" / "val.txt").write_text("s\nghost\n")
    with pytest.raises(UserError, match=r"val.txt: names 1 sequence\(s\) that .* does not have, e.g. 'ghost'"):
        evaluate_davis(root, results, workers=1, progress=False)
    (root / "ImageSets" / "2017" / "val.txt").write_text("s\n")
    import shutil
    shutil.rmtree(results / "s")
    with pytest.raises(UserError, match=r"sequence s: no results folder"):
        evaluate_davis(root, results, workers=1, progress=False)


def test_errors_in_worker_processes_reach_the_caller(tmp_path):
    root, results, _, _ = _scenario(tmp_path, n_seq=2)
    (results / "seq1" / "00004.png").unlink()
    with pytest.raises(UserError, match=r"sequence seq1, frame 00004"):
        evaluate_davis(root, results, workers=2, progress=False)
