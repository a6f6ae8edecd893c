"""YouTube-VIS (JSON with compressed/uncompressed RLE and polygons, or PNG folders) and the synthetic
benchmark: FG-ARI (= sklearn on foreground pixels), Hungarian mIoU, mBO."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sklearn.metrics import adjusted_rand_score

from tests.helpers.davis_reference import make_davis_root, random_blobs, write_results
from vos.eval import evaluate_davis, evaluate_synth, evaluate_ytvis
from vos.infra.errors import UserError
from vos.palette import write_label_png

H, W = 24, 32


def _uncompressed_rle(mask):
    """Column-major run lengths starting with zeros (the COCO uncompressed form)."""
    flat = mask.T.ravel().astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _ytvis_fixture(tmp_path):
    """Two videos of 3 frames; video 'v1' has two tracks (uncompressed RLE, compressed RLE + null),
    video 'v2' one polygon track. Returns (root, json path, gt label maps)."""
    gt = {"v1": np.zeros((3, H, W), np.uint8), "v2": np.zeros((3, H, W), np.uint8)}
    gt["v1"][:, 2:10, 2:12] = 1
    gt["v1"][:2, 12:20, 15:30] = 2           # absent in frame 2 -> null
    gt["v2"][:, 4:12, 8:16] = 1              # polygon: the rectangle's pixel corners
    videos = [{"id": 11, "width": W, "height": H, "length": 3, "file_names": [f"v1/{i:05d}.jpg" for i in (0, 5, 10)]},
              {"id": 12, "width": W, "height": H, "length": 3, "file_names": [f"v2/{i:05d}.jpg" for i in (0, 5, 10)]}]
    square = [8.0, 4.0, 16.0, 4.0, 16.0, 12.0, 8.0, 12.0]
    annotations = [
        {"id": 1, "video_id": 11, "category_id": 1, "iscrowd": 0,
         "segmentations": [_uncompressed_rle(gt["v1"][t] == 1) for t in range(3)]},
        {"id": 2, "video_id": 11, "category_id": 2, "iscrowd": 0,
         "segmentations": [_compressed_rle(gt["v1"][t] == 2) for t in range(2)] + [None]},
        {"id": 3, "video_id": 12, "category_id": 1, "iscrowd": 0, "segmentations": [[square]] * 3},
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": []}))
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([square], H, W))).astype(bool)
    gt["v2"][:] = decoded  # polygon rasterisation is pycocotools' (checked against the intended box below)
    assert abs(int(decoded.sum()) - 64) <= 16
    return tmp_path, path, gt


def _prediction(gt):
    pred = {k: v.copy() * 3 for k, v in gt.items()}        # ids 3 and 6: relabelled but perfect ...
    pred["v1"][1, 2:10, 2:7] = 9                           # ... except one half-object split in frame 1
    return pred


def _write_frames(folder, label_maps):
    for name, labels in label_maps.items():
        for t, stem in enumerate(("00000", "00005", "00010")):
            write_label_png(folder / name / f"{stem}.png", labels[t])
    return folder


def test_json_ground_truth_all_rle_forms_and_metrics_by_hand(tmp_path):
    root, path, gt = _ytvis_fixture(tmp_path)
    pred = _prediction(gt)
    results = _write_frames(tmp_path / "res", pred)
    result = evaluate_ytvis(root, results, annotations=path, workers=1, progress=False)
    assert result.videos == ["v1", "v2"]
    fg1 = gt["v1"] != 0
    video_ari_v1 = adjusted_rand_score(gt["v1"][fg1], pred["v1"][fg1])
    frame_ari_v1 = np.mean([adjusted_rand_score(gt["v1"][t][gt["v1"][t] != 0], pred["v1"][t][gt["v1"][t] != 0])
                            for t in range(3)])
    assert result.summary["FG-ARI"] == pytest.approx((video_ari_v1 + 1.0) / 2, abs=1e-12)
    assert result.summary["FG-ARI-per-frame"] == pytest.approx((frame_ari_v1 + 1.0) / 2, abs=1e-12)
    # object 1 of v1 is matched to id 3: IoU 1, 0.5, 1 per frame; object 2 perfect; v2 perfect
    assert result.summary["mIoU"] == pytest.approx((2.5 / 3 + 1 + 1) / 3, abs=1e-12)
    # mBO: object 1's volume IoU with id 3 = (80 + 40 + 80) / 240
    assert result.summary["mBO"] == pytest.approx(((200 / 240 + 1) / 2 + 1) / 2, abs=1e-12)


def test_warns_when_id_0_covers_most_of_the_foreground(tmp_path):
    import warnings

    from vos.eval.ytvis import background_share_of_foreground

    root, path, gt = _ytvis_fixture(tmp_path)
    # slot masks numbered from 0: v1's object 1 -> 0, object 2 -> 1, background -> 2; v2's object -> 0
    slots = {"v1": np.choose(gt["v1"], [2, 0, 1]).astype(np.uint8), "v2": np.where(gt["v2"] > 0, 0, 1).astype(np.uint8)}
    # v1: 240 of its 480 foreground pixels are id 0 (exactly half: not flagged); v2: all of them
    assert background_share_of_foreground(gt["v1"], slots["v1"]) == 0.5
    assert background_share_of_foreground(gt["v2"], slots["v2"]) == 1.0
    assert np.isnan(background_share_of_foreground(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))))
    void = np.zeros_like(gt["v1"], bool)
    void[:, 2:10, 2:12] = True  # object 1 void: the rest of the foreground is object 2, id 1
    assert background_share_of_foreground(gt["v1"], slots["v1"], void) == 0.0
    with pytest.warns(UserWarning, match=r"1 of 2 result videos label more than half of the ground-truth foreground "
                                         r"0 \(e.g. v2: 100%\); 0 is background.*add 1 to every id"):
        evaluate_ytvis(root, _write_frames(tmp_path / "slots", slots), annotations=path, workers=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # DAVIS-style ids from 1: no warning
        evaluate_ytvis(root, _write_frames(tmp_path / "res", _prediction(gt)), annotations=path, workers=1,
                       progress=False)


def test_png_ground_truth_gives_the_same_numbers(tmp_path):
    root, path, gt = _ytvis_fixture(tmp_path)
    _write_frames(root / "Annotations", gt)
    results = _write_frames(tmp_path / "res", _prediction(gt))
    from_json = evaluate_ytvis(root, results, annotations=path, workers=1, progress=False)
    from_png = evaluate_ytvis(root, results, workers=2, progress=False)
    assert from_json.summary == from_png.summary


def test_video_selection(tmp_path):
    root, path, gt = _ytvis_fixture(tmp_path)
    results = _write_frames(tmp_path / "res", _prediction(gt))
    assert evaluate_ytvis(root, results, annotations="train.json", n_videos=1, workers=1, progress=False).videos == ["v1"]
    (tmp_path / "list.txt").write_text("v2\n")
    assert evaluate_ytvis(root, results, annotations=path, video_list=tmp_path / "list.txt",
                          workers=1, progress=False).videos == ["v2"]
    (tmp_path / "list.txt").write_text("v2\nv9\n")
    with pytest.raises(UserError, match="unknown video.*v9"):
        evaluate_ytvis(root, results, annotations=path, video_list=tmp_path / "list.txt", workers=1, progress=False)
    (results / "v2" / "00005.png").unlink()
    with pytest.raises(UserError, match="sequence v2, frame 00005"):
        evaluate_ytvis(root, results, annotations=path, workers=1, progress=False)


def test_synth_combines_davis_and_object_metrics(tmp_path):
    rng = np.random.default_rng(7)
    gt = {f"s{i}": random_blobs(rng, 5, (40, 60), 3, max_radius=10) for i in range(2)}
    root = make_davis_root(tmp_path / "synth", gt)
    for seq in gt:  # vos synth also writes frames; evaluation does not need them
        (root / "JPEGImages" / "480p" / seq).mkdir(parents=True)
    pred = {k: np.where(rng.random(v.shape) < 0.1, 0, v) for k, v in gt.items()}
    results = write_results(tmp_path / "res", pred)
    result = evaluate_synth(root, results, workers=1, progress=False)
    davis = evaluate_davis(root, results, workers=1, progress=False)
    assert result.davis.global_scores == davis.global_scores
    fg = [(g != 0, g, pred[k]) for k, g in gt.items()]
    expected_ari = np.mean([adjusted_rand_score(g[m], p[m]) for m, g, p in fg])
    assert result.objects.summary["FG-ARI"] == pytest.approx(expected_ari, abs=1e-12)
    assert 0.8 < result.objects.summary["mIoU"] < 1.0


def test_void_pixels_are_ignored_by_object_metrics(tmp_path):
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, 6:, :] = 255
    root = make_davis_root(tmp_path / "synth", {"s": gt})
    pred = np.where(gt == 1, 1, 0)
    pred[:, 6:, :] = 2                                      # anything in the void region
    result = evaluate_synth(root, write_results(tmp_path / "r", {"s": pred}), workers=1, progress=False)
    assert result.objects.summary == {"FG-ARI": 1.0, "FG-ARI-per-frame": 1.0, "mIoU": 1.0, "mBO": 1.0}
