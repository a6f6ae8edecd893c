"""`ssl-video synth`: layout, determinism, resumability, motion classes and the background shortcut."""

import hashlib
import json

import numpy as np
import pytest

from ssl_video.cli import main
from ssl_video.data.clips import VideoFile
from ssl_video.data.splits import load_items
from ssl_video.synth import MOTIONS, SynthOptions, make_synth_dataset, object_track, plan_videos, render_video
from vos.infra.errors import UserError

SMALL = dict(classes=3, videos_per_class=3, frames=8, size=32, seed=5, progress=False)


def digest(root) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_split_files_and_loading(tmp_path):
    out = tmp_path / "syn"
    summary = make_synth_dataset(out, **SMALL)
    assert (summary["videos"], summary["train"], summary["test"], summary["written"]) == (9, 6, 3, 9)
    assert (out / "splits" / "classInd.txt").read_text() == "1 MoveRight\n2 MoveLeft\n3 MoveUp\n"
    assert (out / "splits" / "testlist01.txt").read_text().splitlines() == [
        "MoveRight/v_MoveRight_g01_c01.avi", "MoveLeft/v_MoveLeft_g01_c01.avi", "MoveUp/v_MoveUp_g01_c01.avi"]
    assert (out / "splits" / "trainlist01.txt").read_text().splitlines()[:2] == [
        "MoveRight/v_MoveRight_g02_c01.avi 1", "MoveRight/v_MoveRight_g03_c01.avi 1"]
    train, classes = load_items("ucf101", out, out / "splits", 1, "train")
    test, _ = load_items("ucf101", out, None, 1, "test")  # OUT/splits is found by default too
    assert classes == ["MoveRight", "MoveLeft", "MoveUp"]
    assert [it.label for it in train] == [0, 0, 1, 1, 2, 2] and [it.label for it in test] == [0, 1, 2]
    video = VideoFile(train[0].path)
    assert len(video) == 8 and video.get([0]).shape == (1, 32, 32, 3)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["options"]["seed"] == 5 and len(manifest["videos"]) == 9
    # training backgrounds: the class's own family
    assert all(v["background_family"] == v["label"] for v in manifest["videos"] if v["split"] == "train")


def test_deterministic_for_a_seed(tmp_path):
    make_synth_dataset(tmp_path / "a", **SMALL)
    make_synth_dataset(tmp_path / "b", **SMALL)
    make_synth_dataset(tmp_path / "c", **{**SMALL, "seed": 6})
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    videos = [k for k in a if k.endswith(".avi")]
    assert all(a[k] != c[k] for k in videos)


def test_resume_rewrites_only_what_is_missing(tmp_path):
    out = tmp_path / "syn"
    make_synth_dataset(out, **SMALL)
    before = digest(out)
    victim = out / "MoveLeft" / "v_MoveLeft_g02_c01.avi"
    victim.unlink()
    keep = out / "MoveUp" / "v_MoveUp_g01_c01.avi"
    mtime = keep.stat().st_mtime_ns
    summary = make_synth_dataset(out, **SMALL)
    assert (summary["written"], summary["skipped"]) == (1, 8)
    assert digest(out) == before and keep.stat().st_mtime_ns == mtime


def test_cli_and_its_errors(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["synth", str(out), "--classes", "2", "--videos-per-class", "2", "--frames", "4", "--size", "16",
                 "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("synth: 4 videos (2 train / 2 test, 2 classes, 4x16x16)") and "4 written" in line
    # other options into the same folder: refused, nothing touched
    before = digest(out)
    assert main(["synth", str(out), "--classes", "3", "--videos-per-class", "2", "--size", "16", "--no-progress"]) == 2
    assert "made with other options" in capsys.readouterr().err
    assert digest(out) == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    assert main(["synth", str(tmp_path / "mine"), "--no-progress"]) == 2
    assert "is not empty and is not a synthetic dataset" in capsys.readouterr().err
    for flags, message in [(["--classes", "9"], "--classes must be between 2 and 8"),
                           (["--classes", "1"], "--classes must be between 2 and 8"),
                           (["--size", "33"], "--size must be an even number"),
                           (["--frames", "1"], "--frames must be at least 2"),
                           (["--videos-per-class", "1"], "--videos-per-class must be at least 2"),
                           (["--videos-per-class", "2", "--test-fraction", "0.2"], "leaves no train or no test")]:
        assert main(["synth", str(tmp_path / "new"), *flags, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ssl-video synth: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("motion", MOTIONS)
def test_each_class_is_its_motion(motion):
    frames, masks = render_video(motion, 0, 4, 16, 64, np.random.default_rng(1))
    assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8 and masks.shape == (16, 64, 64)
    ys, xs = zip(*[np.argwhere(m).mean(0) for m in masks])  # object centre per frame
    dx, dy, area = np.diff(xs), np.diff(ys), masks.sum((1, 2))
    if motion == "MoveRight":
        assert (dx > 0).all() and (dy == 0).all()
    elif motion == "MoveLeft":
        assert (dx < 0).all() and (dy == 0).all()
    elif motion == "MoveDown":
        assert (dy > 0).all() and (dx == 0).all()
    elif motion == "MoveUp":
        assert (dy < 0).all() and (dx == 0).all()
    elif motion == "Diagonal":
        assert (dx > 0).all() and (dy > 0).all()
    elif motion == "Circle":
        radius = np.hypot(np.array(xs) - np.mean(xs), np.array(ys) - np.mean(ys))
        assert radius.min() > 0.7 * radius.max() > 5  # about constant distance from the centre
    elif motion == "Zoom":
        peak = int(np.argmax(area))
        assert 5 <= peak <= 10 and area[peak] > 2 * area[0] and area[peak] > 2 * area[-1]
    elif motion == "Oscillate":
        assert ((dx[1:] > 0) != (dx[:-1] > 0)).sum() >= 3 and (dy == 0).all()  # direction flips
    # the background is static: outside the object every frame equals the first one
    still = ~masks.any(0)
    assert (frames[:, still] == frames[0, still]).all()


def test_object_stays_inside_the_frame():
    for motion in MOTIONS:
        for seed in range(5):
            track = object_track(motion, 12, 48, np.random.default_rng(seed))
            assert (track[:, :2] >= 0).all() and (track[:, :2] + track[:, 2:] <= 48 + 1e-9).all()


def test_background_is_a_shortcut_in_train_but_not_in_test():
    # A nearest-class-mean classifier on the mean background colour, fit on the training split:
    # near perfect on training videos, near chance (1/5) on test videos.
    opts = SynthOptions(classes=5, videos_per_class=12, frames=2, size=32, seed=0)
    features, labels, splits = [], [], []
    for v in plan_videos(opts):
        frames, masks = render_video(MOTIONS[v.label], v.background_family, 5, 2, 32,
                                     np.random.default_rng([opts.seed, v.label, v.group, 1]))
        features.append(frames[0][~masks[0]].mean(0) / 255)
        labels.append(v.label)
        splits.append(v.split)
    features, labels, splits = np.array(features), np.array(labels), np.array(splits)
    train, test = splits == "train", splits == "test"
    means = np.stack([features[train & (labels == c)].mean(0) for c in range(5)])
    predict = np.argmin(((features[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (predict[train] == labels[train]).mean() >= 0.9
    assert (predict[test] == labels[test]).mean() <= 0.4
    # over many videos the test families are spread over all classes, independent of the label
    big = [v for v in plan_videos(SynthOptions(classes=5, videos_per_class=300)) if v.split == "test"]
    counts = np.bincount([v.background_family for v in big], minlength=5)
    assert counts.min() > 0.15 * len(big)
    assert np.mean([v.background_family == v.label for v in big]) < 0.3


def test_synth_feeds_the_clip_datasets_and_fame(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    from ssl_video.data.clips import MultiClipVideos, PretrainClips, normalize_clips
    from ssl_video.fame import fame_merge

    out = tmp_path / "syn"
    make_synth_dataset(out, classes=3, videos_per_class=3, frames=12, size=32, seed=0, progress=False)
    train, _ = load_items("ucf101", out, subset="train")
    torch.manual_seed(0)
    q, k = next(iter(DataLoader(PretrainClips(train, frames=4, frame_stride=2, crop=32), batch_size=4)))
    assert q.shape == k.shape == (4, 3, 4, 32, 32)
    merged, mask = fame_merge(q, beta=0.5, generator=torch.Generator().manual_seed(0))
    assert merged.shape == q.shape and mask.sum((1, 2)).tolist() == [512.0] * 4
    assert normalize_clips(merged).shape == q.shape
    test, _ = load_items("ucf101", out, subset="test")
    clips, label = MultiClipVideos(test, frames=4, frame_stride=2, crop=32, clips_per_video=10)[2]
    assert clips.shape == (10, 3, 4, 32, 32) and label == 2


@pytest.mark.parametrize("object_size", [0.25, 0.45])
def test_object_size_sets_the_object_area(object_size):
    # side = round(object_size * 64) pixels; the object's mask area in a still frame is side^2
    frames, masks = render_video("MoveUp", 1, 4, 6, 64, np.random.default_rng(3), object_size)
    side = int(round(object_size * 64))
    assert (masks.sum((1, 2)) == side * side).all()
    track = object_track("MoveUp", 6, 64, np.random.default_rng(3), object_size)
    assert np.allclose(track[:, 2], object_size * 64)


def test_motions_name_the_classes_and_object_size_is_recorded(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["synth", str(out), "--motions", "MoveUp,Zoom,Circle", "--object-size", "0.4",
                 "--videos-per-class", "3", "--frames", "8", "--size", "32", "--no-progress"]) == 0
    assert "3 classes" in capsys.readouterr().out
    assert (out / "splits" / "classInd.txt").read_text() == "1 MoveUp\n2 Zoom\n3 Circle\n"
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["classes"] == ["MoveUp", "Zoom", "Circle"]
    assert manifest["options"]["object_size"] == 0.4 and manifest["options"]["motions"] == ["MoveUp", "Zoom", "Circle"]
    # the videos are the named motions drawn at the given size: same pixels as render_video
    v = next(v for v in plan_videos(SynthOptions(3, 3, 8, 32, 0, 1 / 3, 0.4, ("MoveUp", "Zoom", "Circle")))
             if v.relpath.startswith("Zoom/"))
    decoded = VideoFile(out / v.relpath).get(list(range(8))).astype(int)

    def error(motion, size):  # mean abs difference to a rendering (MPEG-4 + 4:2:0 chroma blur textures)
        frames, _ = render_video(motion, v.background_family, 3, 8, 32, np.random.default_rng([0, 1, v.group, 1]), size)
        return np.abs(decoded - frames.astype(int)).mean()

    assert error("Zoom", 0.4) < 12 and error("Zoom", 0.4) < 0.7 * min(error("Zoom", 0.25), error("Circle", 0.4))
    # the same folder with another object size is another dataset: refused
    assert main(["synth", str(out), "--motions", "MoveUp,Zoom,Circle", "--object-size", "0.3",
                 "--videos-per-class", "3", "--frames", "8", "--size", "32", "--no-progress"]) == 2
    assert "made with other options" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--motions", "MoveUp,Jump"], "unknown motion 'Jump'"),
    (["--motions", "MoveUp,MoveUp"], "at least 2 different motions"),
    (["--motions", "MoveUp,Zoom", "--classes", "3"], "disagrees with the 2 --motions"),
    (["--object-size", "0.8"], "--object-size is the object side over the frame side"),
])
def test_motions_and_object_size_errors(tmp_path, capsys, flags, message):
    assert main(["synth", str(tmp_path / "new"), *flags, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ssl-video synth: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()


def test_shared_object_appearance_changes_only_the_object(tmp_path, monkeypatch):
    import ssl_video.synth as synth_mod

    rendered = {}
    real_render = synth_mod.render_video

    def recording_render(*args):
        frames, masks = real_render(*args)
        rendered.setdefault(appearance, []).append((frames, masks))
        return frames, masks

    monkeypatch.setattr(synth_mod, "render_video", recording_render)
    for appearance in ("random", "shared"):
        make_synth_dataset(tmp_path / appearance, **SMALL, object_size=0.4, object_appearance=appearance)
    assert json.loads((tmp_path / "shared" / "synth.json").read_text())["options"]["object_appearance"] == "shared"

    def object_colours(frames, masks):  # the object's distinct RGB values in the first frame
        return {tuple(c) for c in frames[0][masks[0]].tolist()}

    for appearance, same_everywhere in (("random", False), ("shared", True)):
        colours = [object_colours(f, m) for f, m in rendered[appearance]]
        assert len(rendered[appearance]) == 9 and all(len(c) == 2 for c in colours)  # a two-colour checkerboard
        assert all(c == colours[0] for c in colours) == same_everywhere
    for (f_random, m_random), (f_shared, m_shared) in zip(rendered["random"], rendered["shared"]):
        assert np.array_equal(m_random, m_shared)  # same tracks
        assert np.array_equal(f_random[~m_random], f_shared[~m_shared])  # same backgrounds
        assert not np.array_equal(f_random[m_random], f_shared[m_shared])


def test_object_appearance_error(tmp_path):
    with pytest.raises(UserError, match="--object-appearance must be one of random, shared, got 'fixed'"):
        make_synth_dataset(tmp_path / "x", **SMALL, object_appearance="fixed")
    assert not (tmp_path / "x").exists()
