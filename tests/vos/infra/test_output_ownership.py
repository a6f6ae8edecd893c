"""A folder is `vos segment`'s only when it carries its marker: ground truth of a DAVIS or
YouTube-VOS root, an ffmpeg frame dump, a result written before markers existed or a user's
`x.partial` are never taken for an earlier result. Every refused case leaves every file
byte-identical and writes nothing."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vos.segment.writing
from tests.helpers.paths import SHARED_DATA
from tests.helpers.vos_clips import TINY, moving_square_frames, write_frame_folder, write_mp4
from tests.vos.infra.test_outputs import error_line, no_decoding, segment  # noqa: F401 (no_decoding: a fixture)
from vos.cli import main
from vos.infra.errors import UserError
from vos.infra.outputs import MARKER, dataset_folder
from vos.palette import write_label_png
from vos.segment.outputs import start_partial_result

REAL_MASKS = SHARED_DATA / "davis17-val-masks"


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``: equal trees mean nothing was
    changed, removed or added."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def label_map(seed: int, size=(48, 64)) -> np.ndarray:
    labels = np.zeros(size, np.uint8)
    labels[10:30, 5 + seed:25 + seed] = 1
    labels[20:40, 35:55] = 2
    return labels


def davis_root(root: Path, real: bool) -> Path:
    """A DAVIS root as users have it: ``JPEGImages/480p/<seq>/00000.jpg`` and indexed masks in
    ``Annotations/480p/<seq>`` and ``Annotations_unsupervised/480p/<seq>``; with ``real``, the masks
    are real DAVIS-2017 val masks (two frames of one sequence)."""
    if real:
        if not REAL_MASKS.is_dir():
            pytest.skip(f"the real DAVIS-2017 val masks are not available ({REAL_MASKS} is absent)")
        seq = sorted(p.name for p in (REAL_MASKS / "osvos-semisupervised").iterdir() if p.is_dir())[0]
        for source, top in (("osvos-semisupervised", "Annotations"), ("rvos-unsupervised", "Annotations_unsupervised")):
            (root / top / "480p" / seq).mkdir(parents=True)
            for name in ("00000.png", "00001.png"):
                shutil.copyfile(REAL_MASKS / source / seq / name, root / top / "480p" / seq / name)
    else:
        seq = "bear"
        for top in ("Annotations", "Annotations_unsupervised"):
            for t in range(2):
                write_label_png(root / top / "480p" / seq / f"{t:05d}.png", label_map(t))
    write_frame_folder(root / "JPEGImages" / "480p" / seq, moving_square_frames(2, (48, 64)))
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(f"{seq}\n")
    return root


@pytest.mark.parametrize("real", [False, True], ids=["synthetic", "real-davis-masks"])
def test_out_in_a_davis_roots_annotations_is_refused(tmp_path, capsys, no_decoding, real):
    root = davis_root(tmp_path / "DAVIS", real)
    [seq] = [p.name for p in (root / "JPEGImages" / "480p").iterdir()]
    before = tree(tmp_path)
    cases = [(root / "JPEGImages" / "480p", root / "Annotations_unsupervised" / "480p"),
             (root / "JPEGImages" / "480p", root / "Annotations" / "480p"),
             (root / "JPEGImages" / "480p", root / "Annotations" / "480p" / seq),  # one sequence as --out
             (root / "JPEGImages" / "480p" / seq, root / "Annotations" / "480p"),  # one sequence as input
             (root / "JPEGImages" / "480p" / seq, root / "Annotations_unsupervised")]
    for video, out in cases:
        for extra in ([], ["--overwrite"], ["--skip-existing"], ["--skip-existing", "--overwrite"]):
            code, output = segment(capsys, video, "--out", out, *extra)
            line = error_line(output)
            assert code == 2 and "ground-truth annotations of the dataset" in line and str(root) in line, line
            assert "--overwrite does not lift this" in line and "choose a --out outside the dataset" in line
            assert "replacing" not in output
    # an overlay among the ground truth is refused too, and results inside the frames folder
    code, output = segment(capsys, root / "JPEGImages" / "480p", "--out", tmp_path / "results",
                           "--overlay", root / "Annotations" / "480p")
    assert code == 2 and "--overlay" in error_line(output) and "ground-truth annotations" in error_line(output)
    code, output = segment(capsys, root / "JPEGImages" / "480p" / seq, "--out", root / "JPEGImages")
    assert code == 2 and "the frames of the dataset" in error_line(output)
    assert tree(tmp_path) == before


def test_youtube_vos_layout_and_linked_annotations_are_found(tmp_path):
    ytvos = tmp_path / "ytvos" / "train"
    write_frame_folder(ytvos / "JPEGImages" / "0a2f2bd294", moving_square_frames(1, (48, 64)))
    write_label_png(ytvos / "Annotations" / "0a2f2bd294" / "00000.png", label_map(0))
    assert dataset_folder(ytvos / "Annotations" / "0a2f2bd294" / "clip") == ytvos / "Annotations"
    assert dataset_folder(ytvos / "Annotations") == ytvos / "Annotations"
    assert dataset_folder(ytvos / "JPEGImages" / "new") == ytvos / "JPEGImages"
    assert dataset_folder(ytvos) is None and dataset_folder(tmp_path / "results" / "clip") is None
    # a folder named Annotations without frames beside it is no dataset
    (tmp_path / "notes" / "Annotations").mkdir(parents=True)
    assert dataset_folder(tmp_path / "notes" / "Annotations" / "clip") is None
    # annotations linked into place: found through the link, and at the link's target
    linked = tmp_path / "linked"
    (linked / "JPEGImages").mkdir(parents=True)
    os.symlink(ytvos / "Annotations", linked / "Annotations")
    assert dataset_folder(linked / "Annotations" / "clip") == linked / "Annotations"


def test_segmenting_a_davis_sequence_into_a_results_folder_works(tmp_path, capsys):
    root = davis_root(tmp_path / "DAVIS", real=False)
    before = tree(root)
    code, output = segment(capsys, root / "JPEGImages" / "480p", "--out", tmp_path / "results")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "results" / "bear").iterdir()) == [MARKER, "00000.png", "00001.png"]
    assert tree(root) == before


def ffmpeg_dump(folder: Path, pattern: str, frames: int = 3) -> Path:
    """What `ffmpeg -i clip.mp4 clip/<pattern>` leaves: RGB PNGs numbered from 1."""
    folder.mkdir(parents=True)
    for t, frame in enumerate(moving_square_frames(frames, (48, 64), seed=3), start=1):
        Image.fromarray(frame).save(folder / (pattern % t))
    return folder


@pytest.mark.parametrize("pattern", ["%04d.png", "frame_%04d.png", "%05d.png"])
def test_out_dot_beside_a_frame_dump_keeps_the_frames(tmp_path, capsys, monkeypatch, no_decoding, pattern):
    write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    ffmpeg_dump(tmp_path / "clip", pattern)
    before = tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--skip-existing"]):  # never "done" either
        code, output = segment(capsys, "clip.mp4", "--out", ".", *extra)
        line = error_line(output)
        assert code == 2 and "clip already exists and holds no .vos-output.json" in line and "--overwrite" in line
    code, output = segment(capsys, "clip", "--out", ".", "--skip-existing")  # the frames as input: OUT/clip is it
    assert code == 2 and "is an input video" in error_line(output)
    assert tree(tmp_path) == before


def old_result(folder: Path, frames: int = 4) -> Path:
    """A result of `vos segment` written before markers existed: DAVIS indexed PNGs, no marker."""
    for t in range(frames):
        write_label_png(folder / f"{t:05d}.png", label_map(t))
    return folder


def test_result_without_marker_is_replaced_only_with_overwrite(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    old_result(tmp_path / "out" / "clip")
    before = tree(tmp_path)
    for extra in ([], ["--skip-existing"]):
        code, output = segment(capsys, video, "--out", tmp_path / "out", *extra)
        line = error_line(output)
        assert code == 2 and "pass --overwrite to replace it (an earlier result without marker too)" in line
        assert tree(tmp_path) == before
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overwrite")
    assert code == 0 and f"--overwrite: replacing {tmp_path / 'out' / 'clip'}" in output
    marker = json.loads((tmp_path / "out" / "clip" / MARKER).read_text())
    assert marker["command"] == "vos segment" and marker["finished"] is True and marker["frames"] == 4
    assert (tmp_path / "out" / "clip" / "00000.png").read_bytes() != before["out/clip/00000.png"]
    assert not (tmp_path / "out" / "clip.partial").exists()


def interrupt_after(monkeypatch, frames: int) -> None:
    """Stop the next run as Ctrl-C would, after ``frames`` PNGs are written."""
    real, written = vos.segment.writing.write_label_png, []

    def write(path, labels, *args, **kwargs):
        if len(written) == frames:
            raise KeyboardInterrupt
        written.append(path)
        real(path, labels, *args, **kwargs)
    monkeypatch.setattr(vos.segment.writing, "write_label_png", write)


def test_interrupted_run_is_recognised_and_replaced(tmp_path, capsys, monkeypatch):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(5, (48, 64)))
    out, partial = tmp_path / "out", tmp_path / "out" / "clip.partial"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        code, output = segment(capsys, video, "--out", out)
    assert code == 130 and "interrupted" in output
    assert sorted(p.name for p in partial.iterdir()) == [MARKER, "00000.png", "00001.png"]
    marker = json.loads((partial / MARKER).read_text())
    assert marker == {"command": "vos segment", "finished": False, "video": str(video.resolve())}
    assert not (out / "clip").exists()
    code, output = segment(capsys, video, "--out", out, "--skip-existing")  # unfinished: not skipped
    assert code == 0 and "skipped" not in output, output
    assert not partial.exists() and len(list((out / "clip").glob("*.png"))) == 5
    assert json.loads((out / "clip" / MARKER).read_text())["finished"] is True


def test_a_users_partial_folder_is_never_touched(tmp_path, capsys, no_decoding):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    ffmpeg_dump(tmp_path / "out" / "clip.partial", "%05d.png")  # frame PNGs: looks like an interrupted 0.2 run
    before = tree(tmp_path)
    for extra in ([], ["--overwrite"], ["--skip-existing"]):
        code, output = segment(capsys, video, "--out", tmp_path / "out", *extra)
        line = error_line(output)
        assert code == 2 and "clip.partial exists and is not an unfinished result" in line and "move it away" in line
        assert tree(tmp_path) == before
    # the library call checks it too, before removing anything
    with pytest.raises(UserError, match="clip.partial exists"):
        start_partial_result(tmp_path / "out" / "clip", video)
    (tmp_path / "out" / "clip.partial" / MARKER).write_text(json.dumps({"command": "vos train"}))
    with pytest.raises(UserError, match="clip.partial exists"):  # another command's marker
        start_partial_result(tmp_path / "out" / "clip", video)
    assert tree(tmp_path / "out") == {**{k[4:]: v for k, v in before.items() if k.startswith("out/")},
                                      f"clip.partial/{MARKER}": b'{"command": "vos train"}'}


def test_files_added_to_a_result_are_not_deleted_with_it(tmp_path, capsys, monkeypatch):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    out = tmp_path / "out"
    assert segment(capsys, video, "--out", out)[0] == 0
    (out / "clip" / "notes.txt").write_text("frame 3 looks wrong")
    before = tree(tmp_path)
    for extra in ([], ["--skip-existing"]):  # (skipped, so kept, with --skip-existing)
        code, output = segment(capsys, video, "--out", out, *extra)
        if extra:
            assert code == 0 and "clip: skipped" in output
        else:
            line = error_line(output)
            assert code == 2 and "is an earlier result of `vos segment` but also holds notes.txt" in line
            assert "move that away, pass --overwrite to replace the folder" in line
        assert tree(tmp_path) == before
    # an interrupted run's folder with a file added to it is not removed either
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        assert segment(capsys, video, "--out", tmp_path / "out2")[0] == 130
    (tmp_path / "out2" / "clip.partial" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    code, output = segment(capsys, video, "--out", tmp_path / "out2")
    assert code == 2 and "clip.partial exists and is not an unfinished result" in error_line(output)
    assert tree(tmp_path) == before
    code, output = segment(capsys, video, "--out", out, "--overwrite")
    assert code == 0 and not (out / "clip" / "notes.txt").exists()


def test_skip_existing_skips_only_finished_results_of_the_same_video(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_mp4(videos / "a.mp4", moving_square_frames(4, (48, 64)))
    write_frame_folder(videos / "b", moving_square_frames(3, (48, 64), seed=1))
    out = tmp_path / "out"
    assert segment(capsys, videos, "--out", out)[0] == 0
    stamp = {name: (out / name / "00000.png").stat().st_mtime_ns for name in ("a", "b")}
    code, output = segment(capsys, videos, "--out", out, "--skip-existing")
    assert code == 0 and "a: skipped" in output and "b: skipped" in output
    assert all((out / name / "00000.png").stat().st_mtime_ns == stamp[name] for name in ("a", "b"))

    # b's folder holds our result of another video (a b.mp4 elsewhere): segmented again, not "done"
    other = write_mp4(tmp_path / "elsewhere" / "b.mp4", moving_square_frames(3, (48, 64), seed=2))
    assert segment(capsys, other, "--out", out)[0] == 0
    code, output = segment(capsys, videos, "--out", out, "--skip-existing")
    assert code == 0 and "a: skipped" in output and "b: skipped" not in output and "b: 3 frames" in output
    assert json.loads((out / "b" / MARKER).read_text())["video"] == str((videos / "b").resolve())

    # a foreign folder is an error for the whole batch, before any work; with --overwrite it is replaced
    shutil.rmtree(out / "b")
    ffmpeg_dump(out / "b", "%04d.png")
    before = tree(tmp_path)
    code, output = segment(capsys, videos, "--out", out, "--skip-existing")
    line = error_line(output)
    assert code == 2 and f"{out / 'b'} already exists and holds no {MARKER} of `vos segment`" in line
    assert "pass --overwrite to replace it" in line and "choose another --out" in line
    assert tree(tmp_path) == before
    (out / "b" / "0001.png").unlink()
    (out / "b" / "0002.png").unlink()
    (out / "b" / "0003.png").unlink()  # an empty folder holds nothing to lose: written
    code, output = segment(capsys, videos, "--out", out, "--skip-existing")
    assert code == 0 and "a: skipped" in output and "b: 3 frames" in output


def test_resume_takes_a_folder_without_marker_only_with_our_checkpoint(tmp_path, capsys):
    """Run folders: a folder without marker is resumed only when its last.pt is a `vos train`
    checkpoint (a run of 0.1); a user's folder that happens to hold a last.pt is left as it is."""
    import torch

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": torch.zeros(3)}, run / "last.pt")  # another program's checkpoint
    (run / "notes.txt").write_text("my notes")
    before = tree(tmp_path)
    code = main(["train", "--data", str(tmp_path), "--out", str(run), *TINY, "--resume"])
    captured = capsys.readouterr()
    line = error_line(captured.out + captured.err)
    assert code == 2 and str(run / "last.pt") in line and "vos train" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("manifest", ["[1, 2]", '"options"', "{not json", '{"classes": []}'])
def test_ssl_synth_never_takes_a_users_synth_json_for_its_manifest(tmp_path, capsys, manifest):
    from ssl_video.cli import main as ssl_main

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synth.json").write_text(manifest)
    before = tree(tmp_path)
    code = ssl_main(["synth", str(tmp_path / "data")])
    captured = capsys.readouterr()
    assert code == 2 and "is not a synth manifest; choose another OUT" in error_line(captured.out + captured.err)
    assert tree(tmp_path) == before
