"""vos.synth and `vos synth`: layout, masks, determinism, occlusion, leaving the frame, camera pan."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
from PIL import Image

import vos.cli
from vos.infra.errors import UserError
from vos.infra.video_reader import open_video
from vos.palette import davis_palette, read_label_png
from vos.synth import make_synthetic_dataset, plan_sequence, render_frame, sequence_rngs

T, K, SIZE = 8, 3, (64, 96)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    names = make_synthetic_dataset(out, videos=2, frames=T, objects=K, size=SIZE, seed=3, camera_pan=True,
                                   leave_frame=True, fps=8, progress=False)
    return out, names


def masks(out, name, folder="Annotations_unsupervised"):
    return np.stack([read_label_png(p) for p in sorted((out / folder / "480p" / name).glob("*.png"))])


def test_layout_and_manifest(dataset):
    out, names = dataset
    assert names == ["synth_0000", "synth_0001"]
    for year in ("2017", "2016"):
        assert (out / "ImageSets" / year / "val.txt").read_text() == "synth_0000\nsynth_0001\n"
    expected = [f"{t:05d}" for t in range(T)]
    for name in names:
        jpgs = sorted((out / "JPEGImages" / "480p" / name).iterdir())
        assert [p.name for p in jpgs] == [f"{s}.jpg" for s in expected]
        with Image.open(jpgs[0]) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE[1], SIZE[0]))
        for folder in ("Annotations_unsupervised", "Annotations"):
            pngs = sorted((out / folder / "480p" / name).iterdir())
            assert [p.name for p in pngs] == [f"{s}.png" for s in expected]
            with Image.open(pngs[0]) as png:
                assert png.mode == "P" and png.size == (SIZE[1], SIZE[0])
                np.testing.assert_array_equal(np.array(png.getpalette()).reshape(-1, 3), davis_palette())
        for a, b in zip(sorted((out / "Annotations" / "480p" / name).iterdir()),
                        sorted((out / "Annotations_unsupervised" / "480p" / name).iterdir())):
            assert a.read_bytes() == b.read_bytes()
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["complete"] is True
    assert manifest["params"] == {"videos": 2, "frames": T, "objects": K, "size": list(SIZE), "seed": 3,
                                  "camera_pan": True, "leave_frame": True, "fps": 8, "jpeg_quality": 90}
    assert [s["name"] for s in manifest["sequences"]] == names
    assert [o["label"] for o in manifest["sequences"][0]["objects"]] == [1, 2, 3]
    assert [o["leaves_frame"] for o in manifest["sequences"][0]["objects"]] == [False, False, True]
    assert sorted(p.name for p in out.iterdir()) == ["Annotations", "Annotations_unsupervised", "ImageSets",
                                                     "JPEGImages", "synth.json", "videos"]


def test_written_masks_and_frames_match_the_renderer(dataset):
    out, names = dataset
    for name, rng in zip(names, sequence_rngs(3, 2)):
        plan = plan_sequence(rng, name, T, K, SIZE, camera_pan=True, leave_frame=True)
        labels = masks(out, name)
        assert set(np.unique(labels)) <= set(range(K + 1))
        for t in range(T):
            image, expected_labels, amodal = render_frame(plan, t)
            np.testing.assert_array_equal(labels[t], expected_labels)
            for k in range(K):  # an id is always the same object: its pixels lie inside that object
                assert not (labels[t] == k + 1)[~amodal[k]].any()
            jpeg = np.array(Image.open(out / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")).astype(int)
            assert np.abs(jpeg - image).mean() < 6  # JPEG quality 90


def test_mp4_has_the_frames(dataset):
    out, names = dataset
    video = open_video(out / "videos" / f"{names[0]}.mp4")
    assert (video.num_frames, video.height, video.width, video.fps) == (T, *SIZE, 8.0)
    decoded = np.concatenate(list(video.iter_chunks(5))).astype(int)
    assert decoded.shape == (T, *SIZE, 3)
    jpegs = open_video(out / "JPEGImages" / "480p" / names[0]).read_frames(range(T)).astype(int)
    assert np.abs(decoded - jpegs).mean() < 6


def test_leaving_object_leaves_and_comes_back(dataset):
    out, names = dataset
    for name in names:
        area = (masks(out, name) == K).sum(axis=(1, 2))
        assert area[0] > 0 and area[-1] > 0
        assert (area == 0).any()


def test_determinism(tmp_path):
    def mask_bytes(out):
        return [p.read_bytes() for p in sorted((out / "Annotations_unsupervised").rglob("*.png"))]

    options = dict(videos=2, frames=4, objects=2, size=(48, 64), progress=False)
    make_synthetic_dataset(tmp_path / "a", seed=7, **options)
    make_synthetic_dataset(tmp_path / "b", seed=7, **options)
    make_synthetic_dataset(tmp_path / "c", seed=8, **options)
    first = mask_bytes(tmp_path / "a")
    assert len(first) == 8 and first == mask_bytes(tmp_path / "b")
    jpegs = [sorted((tmp_path / d / "JPEGImages").rglob("*.jpg")) for d in ("a", "b")]
    assert [p.read_bytes() for p in jpegs[0]] == [p.read_bytes() for p in jpegs[1]]
    assert mask_bytes(tmp_path / "c") != first
    # Sequence i does not depend on how many sequences are generated.
    make_synthetic_dataset(tmp_path / "d", seed=7, **{**options, "videos": 1})
    assert mask_bytes(tmp_path / "d") == first[:4]


CONFIGS = list(itertools.product(range(6), [2, 3, 5], [False, True], [False, True]))  # seed, K, pan, leave


@pytest.mark.parametrize("seed,objects,camera_pan,leave_frame", CONFIGS)
def test_scene_guarantees(seed, objects, camera_pan, leave_frame):
    """Occlusion always happens; objects leave the view only when asked; colours separate objects."""
    plan = plan_sequence(sequence_rngs(seed, 1)[0], "s", 10, objects, (48, 64), camera_pan, leave_frame)
    rendered = [render_frame(plan, t) for t in range(10)]
    visible = np.array([[(labels == k + 1).sum() for k in range(objects)] for _, labels, _ in rendered])
    full = np.array([amodal.reshape(objects, -1).sum(axis=1) for _, _, amodal in rendered])
    # Object 1 is partially hidden (by object 2) on some frame.
    assert ((visible[:, 0] > 0) & (visible[:, 0] < full[:, 0])).any()
    staying = full[:, :-1] if leave_frame else full
    assert (staying > 0).all()
    if leave_frame:
        assert full[0, -1] > 0 and full[-1, -1] > 0 and (full[:, -1] == 0).any()
    # A nearest-mean colour classifier separates each object from the background on frame 0.
    image, labels, _ = rendered[0]
    background = image[labels == 0].astype(float)
    for k in range(objects):
        pixels = image[labels == k + 1].astype(float)
        if len(pixels) < 10:
            continue
        mean_obj, mean_bg = pixels.mean(0), background.mean(0)

        def nearer_object(x):
            return ((x - mean_obj) ** 2).sum(1) < ((x - mean_bg) ** 2).sum(1)

        assert nearer_object(pixels).mean() > 0.9 and (~nearer_object(background)).mean() > 0.9


def test_camera_pan_shifts_the_background_and_textures_move_with_objects():
    plan = plan_sequence(sequence_rngs(1, 1)[0], "s", 6, 2, (64, 96), camera_pan=True)
    step = plan.offsets[1] - plan.offsets[0]
    assert step.any()
    (image0, labels0, _), (image1, labels1, _) = render_frame(plan, 0), render_frame(plan, 1)
    # Background: frame 1 at (y, x) shows the scene point frame 0 showed at (y, x) + step.
    dx, dy = (int(v) for v in step)
    h, w = labels0.shape
    ys, xs = np.nonzero(labels1 == 0)
    inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
    ys, xs = ys[inside], xs[inside]
    still_background = labels0[ys + dy, xs + dx] == 0
    assert still_background.sum() > 1000
    np.testing.assert_array_equal(image1[ys, xs][still_background], image0[ys + dy, xs + dx][still_background])
    # Objects: warping frame 0 with the object's own rigid motion reproduces its texture on frame 1.
    for obj in plan.objects:
        rot = [np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in obj.angles[:2]]
        relative = rot[1] @ rot[0].T
        affine = np.hstack([relative, (obj.centres[1] - relative @ obj.centres[0])[:, None]])
        moved = cv2.warpAffine(image0, affine, (w, h), flags=cv2.INTER_LINEAR)
        carried = cv2.warpAffine((labels0 == obj.label).astype(np.uint8), affine, (w, h), flags=cv2.INTER_NEAREST)
        core = cv2.erode(((labels1 == obj.label) & (carried > 0)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert core.sum() > 50
        moved_error = np.abs(moved[core].astype(int) - image1[core]).mean()
        static_error = np.abs(image0[core].astype(int) - image1[core]).mean()
        assert moved_error < 6 and moved_error < static_error / 2


def test_refuses_foreign_folder_and_regenerates_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not empty and is not a previous 'vos synth' output"):
        make_synthetic_dataset(foreign, videos=1, frames=2, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious" and len(list(foreign.iterdir())) == 1

    out = tmp_path / "out"
    make_synthetic_dataset(out, videos=2, frames=5, objects=1, size=(32, 32), progress=False)
    make_synthetic_dataset(out, videos=1, frames=3, objects=1, size=(32, 32), progress=False)
    assert sorted(p.name for p in (out / "JPEGImages" / "480p").iterdir()) == ["synth_0000"]
    assert len(list((out / "Annotations" / "480p" / "synth_0000").iterdir())) == 3  # no stale frames
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["synth_0000.mp4"]
    assert (out / "ImageSets" / "2017" / "val.txt").read_text() == "synth_0000\n"


@pytest.mark.parametrize("options,message", [
    (dict(videos=0), "--videos must be a positive integer"),
    (dict(frames=0), "--frames must be a positive integer"),
    (dict(frames=2, leave_frame=True), "--leave-frame needs at least 3 frames"),
    (dict(objects=0), r"--objects must be an integer in 1\.\.20"),
    (dict(size=(31, 64)), "--size must be two even integers >= 32"),
    (dict(size=(16, 64)), "--size must be two even integers >= 32"),
    (dict(seed=-1), "--seed must be a non-negative integer"),
    (dict(fps=0), "--fps must be positive"),
])
def test_bad_options(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        make_synthetic_dataset(tmp_path / "out", progress=False, **options)
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    code = vos.cli.main(["synth", str(out), "--videos", "1", "--frames", "4", "--objects", "2", "--size", "32", "48",
                         "--seed", "5", "--camera-pan", "--leave-frame", "--fps", "5"])
    assert code == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith(f"vos synth: wrote 1 sequences x 4 frames (32x48, 2 objects) to {out} in ")
    params = json.loads((out / "synth.json").read_text())["params"]
    assert params == {"videos": 1, "frames": 4, "objects": 2, "size": [32, 48], "seed": 5, "camera_pan": True,
                      "leave_frame": True, "fps": 5.0, "jpeg_quality": 90}
    assert len(list((out / "Annotations_unsupervised" / "480p" / "synth_0000").iterdir())) == 4
    assert open_video(out / "videos" / "synth_0000.mp4").num_frames == 4


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert vos.cli.main(["synth", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vos synth: error: ") and str(tmp_path) in err[0]
    assert vos.cli.main(["synth", str(tmp_path / "new"), "--objects", "21", "--quiet"]) == 2
    assert "--objects must be an integer in 1..20" in capsys.readouterr().err


def test_interrupted_run_can_be_rerun(tmp_path, monkeypatch):
    import vos.synth

    options = dict(videos=2, frames=3, objects=2, size=(32, 32), progress=False)
    write_sequence = vos.synth.write_sequence

    def crash_on_second(plan, out, fps):
        if plan.name == "synth_0001":
            raise KeyboardInterrupt
        write_sequence(plan, out, fps)

    monkeypatch.setattr(vos.synth, "write_sequence", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path / "out", **options)
    assert json.loads((tmp_path / "out" / "synth.json").read_text())["complete"] is False
    assert not (tmp_path / "out" / "ImageSets").exists()

    monkeypatch.setattr(vos.synth, "write_sequence", write_sequence)
    make_synthetic_dataset(tmp_path / "out", **options)
    make_synthetic_dataset(tmp_path / "clean", **options)
    files = sorted(p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean").rglob("*.png"))
    assert files == sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png"))
    assert all((tmp_path / "out" / f).read_bytes() == (tmp_path / "clean" / f).read_bytes() for f in files)
    assert json.loads((tmp_path / "out" / "synth.json").read_text())["complete"] is True
