"""Output safety of `vos segment`: never delete or replace what it did not write, and check every
output location before the first frame is decoded."""

import json
from pathlib import Path

import pytest

import vos.infra.video_reader
from tests.helpers.paths import REPO_ROOT
from tests.helpers.vos_clips import TINY, moving_square_frames, write_frame_folder, write_mp4
from vos.cli import main
from vos.infra.outputs import MARKER, check_writable, is_within, remove_stale_temporaries, stale_temporaries
from vos.segment.overlay import is_our_overlay

FAST = TINY + ["--resolution", "32", "48", "--key-every", "3"]


def segment(capsys, *args):
    code = main(["segment", *map(str, args), *FAST])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if a video is opened: refusals must come before any decoding."""
    def refuse(*args, **kwargs):
        raise AssertionError("a video was opened before the outputs were checked")
    monkeypatch.setattr(vos.infra.video_reader, "open_video", refuse)


def frame_folder(path: Path, frames: int = 5) -> Path:
    return write_frame_folder(path, moving_square_frames(frames, (48, 64)))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_output_equal_to_the_input_frame_folder_is_refused(tmp_path, capsys, no_decoding):
    clip = frame_folder(tmp_path / "clip")
    before = snapshot(tmp_path)
    code, output = segment(capsys, clip, "--out", tmp_path)  # OUT/clip is the input itself
    assert code == 2 and "is an input video" in error_line(output)
    code, output = segment(capsys, clip, "--out", clip)  # OUT/clip would lie inside the input
    assert code == 2 and "lies inside" in error_line(output)
    code, output = segment(capsys, clip, "--out", clip, "--overwrite")  # --overwrite never touches the input
    assert code == 2 and "outside the input" in error_line(output)
    assert snapshot(tmp_path) == before


def test_out_dot_beside_the_input_is_refused(tmp_path, capsys, monkeypatch, no_decoding):
    work = tmp_path / "work"
    frame_folder(work / "myclip")
    before = snapshot(work)
    monkeypatch.chdir(work)
    code, output = segment(capsys, "myclip", "--out", ".")
    assert code == 2 and "myclip" in error_line(output)
    assert snapshot(work) == before


def test_result_folder_containing_the_video_file_is_refused(tmp_path, capsys, monkeypatch, no_decoding):
    video = write_mp4(tmp_path / "clip" / "clip.mp4", moving_square_frames(4, (48, 64)))
    monkeypatch.chdir(tmp_path)
    code, output = segment(capsys, "clip/clip.mp4", "--out", ".", "--overwrite")  # ./clip holds the video
    assert code == 2 and "contains the input" in error_line(output)
    assert video.is_file()


def test_batch_results_or_overlays_in_the_input_folder_are_refused(tmp_path, capsys, no_decoding):
    videos = tmp_path / "videos"
    write_mp4(videos / "a.mp4", moving_square_frames(4, (48, 64)))
    frame_folder(videos / "b")
    before = snapshot(videos)
    code, output = segment(capsys, videos, "--out", videos)
    assert code == 2 and "input" in error_line(output)
    code, output = segment(capsys, videos, "--out", tmp_path / "out", "--overlay", videos, "--overwrite")
    assert code == 2 and "--overlay" in error_line(output) and "a.mp4" in error_line(output)
    assert snapshot(videos) == before and not (tmp_path / "out").exists()


def test_unrelated_existing_folder_is_kept_unless_overwrite(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    write_mp4(work / "synth_0001.mp4", moving_square_frames(5, (48, 64)))
    (work / "synth_0001").mkdir()
    (work / "synth_0001" / "notes.txt").write_text("my notes")
    monkeypatch.chdir(work)
    code, output = segment(capsys, "synth_0001.mp4", "--out", ".")
    line = error_line(output)
    assert code == 2 and "synth_0001" in line and "--overwrite" in line and "--out" in line
    assert (work / "synth_0001" / "notes.txt").read_text() == "my notes"

    code, output = segment(capsys, "synth_0001.mp4", "--out", ".", "--overwrite")
    assert code == 0, output
    assert "--overwrite: replacing synth_0001" in output
    assert sorted(p.name for p in (work / "synth_0001").iterdir()) == [MARKER] + [f"{i:05d}.png" for i in range(5)]
    marker = json.loads((work / "synth_0001" / MARKER).read_text())
    assert marker["command"] == "vos segment" and marker["frames"] == 5
    assert marker["video"] == str((work / "synth_0001.mp4").resolve())
    assert marker["settings"]["resolution"] == [32, 48] and marker["settings"]["key_every"] == 3

    # the earlier result is ours (marker): replaced without --overwrite, and said so
    (work / "synth_0001" / "00003.png").unlink()
    code, output = segment(capsys, "synth_0001.mp4", "--out", ".")
    assert code == 0 and "replacing earlier result in synth_0001" in output
    assert (work / "synth_0001" / "00003.png").is_file()


def test_overlay_never_replaces_a_foreign_file(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(5, (48, 64)))
    foreign = write_mp4(tmp_path / "holiday.mp4", moving_square_frames(3, (48, 64), seed=1))
    notes = tmp_path / "notes.mp4"
    notes.write_text("not even a video")
    before = foreign.read_bytes()
    for target in (foreign, notes):
        code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", target)
        assert code == 2 and "--overwrite" in error_line(output) and target.name in error_line(output)
    assert foreign.read_bytes() == before and notes.read_text() == "not even a video"
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", video, "--overwrite")
    assert code == 2 and "input video" in error_line(output)
    assert not (tmp_path / "out").exists()

    ours = tmp_path / "overlay.mp4"
    assert segment(capsys, video, "--out", tmp_path / "out", "--overlay", ours)[0] == 0
    assert is_our_overlay(ours) and not is_our_overlay(foreign) and not is_our_overlay(notes)
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", ours)  # our own: replaced
    assert code == 0, output
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", foreign, "--overwrite")
    assert code == 0 and is_our_overlay(foreign)


def test_unwritable_outputs_fail_before_decoding(tmp_path, capsys, no_decoding):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file")
    code, output = segment(capsys, video, "--out", blocker)  # OUT is a file
    assert code == 2 and "is a file" in error_line(output)
    code, output = segment(capsys, video, "--out", blocker / "sub")  # a file on OUT's path
    assert code == 2 and "is a file" in error_line(output)
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", blocker / "o.mp4")
    assert code == 2 and "--overlay" in error_line(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "file.txt"]  # no .partial, no out


def test_read_only_folder_is_found_unwritable(tmp_path):
    """check_writable probes by creating a file, so it also sees what permission bits do not say
    (root ignores them): a read-only bind is not available here, so an unprivileged user is used."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    # tmp_path's parents are private to root: an unprivileged user needs a folder it can reach
    base = Path(tempfile.mkdtemp(dir=tmp_path if os.geteuid() != 0 else None))
    base.chmod(0o755)
    folder = base / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        with pytest.raises(Exception, match="cannot write"):
            check_writable(folder / "out", "--out")
        return
    code = ("import sys; from vos.infra.outputs import check_writable; from vos.infra.errors import UserError\n"
            "try:\n check_writable(__import__('pathlib').Path(sys.argv[1]), '--out')\n"
            "except UserError as e:\n print(e); sys.exit(3)\n")
    try:
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                 "-c", code, str(folder / "out")], capture_output=True, text=True,
                                env={"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", "")}, timeout=120)
    except FileNotFoundError:
        pytest.skip("setpriv is not installed: cannot run as an unprivileged user")
    finally:
        folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
    if result.returncode != 3 and ("No module named" in result.stderr or "Permission denied" in result.stderr):
        pytest.skip(f"the unprivileged user cannot run this checkout: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 3 and "cannot write in" in result.stdout, result.stdout + result.stderr


def test_stale_temporaries_of_the_target_only_are_removed(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    import subprocess
    import sys

    target = tmp_path / "overlay.mp4"
    # a process killed while writing the overlay (os._exit: no cleanup runs, as with kill -9)
    crash = ("import os, sys; from vos.infra.fileio import atomic_path\n"
             "with atomic_path(sys.argv[1]) as tmp:\n tmp.write_bytes(b'half an mp4'); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", crash, str(target)], cwd=REPO_ROOT, timeout=60).returncode == 9
    [stale] = [p for p in tmp_path.iterdir() if p.name.startswith(".overlay.")]
    others = [tmp_path / ".other.k2x_9abc.tmp.mp4", tmp_path / (stale.name + ".keep"),
              tmp_path / ".overlay.short.tmp.mp4", tmp_path / stale.name[1:]]
    for path in others:
        path.write_bytes(b"x")
    assert stale_temporaries(target) == [stale]
    code, output = segment(capsys, video, "--out", tmp_path / "out", "--overlay", target)
    assert code == 0, output
    assert not stale.exists() and all(p.exists() for p in others) and is_our_overlay(target)
    assert remove_stale_temporaries(target) == 0


def test_is_within():
    assert is_within(Path("/a/b"), Path("/a")) and is_within(Path("/a"), Path("/a"))
    assert not is_within(Path("/ab"), Path("/a")) and not is_within(Path("/a"), Path("/a/b"))


# ------------------------------------------------------------------- the other commands that write
def run_main(capsys, module_main, argv):
    code = module_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def foreign_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my notes")
    (path / "config.yaml").write_text("mine: 1\n")
    return path


@pytest.mark.parametrize("argv", [
    ["vos", "train", "--data", "{tmp}", "--out", "{out}", "--backbone", "test_vit_tiny16", "--weights", "random"],
    ["ssl-video", "pretrain", "--arch", "r3d_tiny", "--moco-k", "64", "--data-root", "{tmp}", "--out", "{out}"],
    ["ssl-video", "finetune", "--arch", "r3d_tiny", "--data-root", "{tmp}", "--out", "{out}"],
])
def test_run_folders_of_other_commands_are_never_reused(tmp_path, capsys, argv):
    from ssl_video.cli import main as ssl_main

    out = foreign_folder(tmp_path / "runs")
    before = snapshot(out)
    cli = main if argv[0] == "vos" else ssl_main
    args = [a.format(tmp=tmp_path, out=out) for a in argv[1:]]
    code, output = run_main(capsys, cli, args)
    line = error_line(output)
    assert code == 2 and str(out) in line and "new or empty --out" in line
    code, output = run_main(capsys, cli, args + ["--resume"])  # (vos train: config.yaml is not its own)
    assert code == 2 and str(out) in error_line(output)
    assert snapshot(out) == before


def test_run_folder_rules():
    from vos.infra.errors import UserError
    from vos.infra.outputs import check_run_dir, write_marker

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        check_run_dir(run, "vos train")  # new
        run.mkdir()
        check_run_dir(run, "vos train")  # empty
        (run / "log.csv").write_text("step\n")
        with pytest.raises(UserError, match="holds no `vos train` run"):
            check_run_dir(run, "vos train")
        write_marker(run, "ssl-video pretrain")
        with pytest.raises(UserError, match="holds no `vos train` run"):  # another command's run
            check_run_dir(run, "vos train")
        check_run_dir(run, "ssl-video pretrain")  # its own run (an interrupted one: no last.pt yet)
        (run / ".vos-output.json").unlink()
        (run / "last.pt").write_bytes(b"")
        check_run_dir(run, "vos train", resume=True)  # a run written before markers existed, resumed
        with pytest.raises(UserError):
            check_run_dir(run, "vos train")


def test_run_checkpoint_rules(tmp_path):
    """Both packages' training runs: a new run never overwrites a checkpoint; --resume continues
    from it, or starts a new run (with a warning) where there is none yet."""
    from vos.infra.errors import UserError
    from vos.infra.outputs import run_checkpoint, write_marker

    run = tmp_path / "run"
    assert run_checkpoint(run, "vos train", resume=False) is None
    with pytest.warns(UserWarning, match=r"--resume: .*last.pt does not exist yet; starting a new run"):
        assert run_checkpoint(run, "vos train", resume=True) is None
    run.mkdir()
    write_marker(run, "vos train")
    (run / "last.pt").write_bytes(b"weights")
    with pytest.raises(UserError, match=r"last.pt already exists; pass --resume to continue that run"):
        run_checkpoint(run, "vos train", resume=False)
    assert run_checkpoint(run, "vos train", resume=True) == run / "last.pt"
    with pytest.raises(UserError, match="holds no `ssl-video pretrain` run"):  # another command's run
        run_checkpoint(run, "ssl-video pretrain", resume=True)
    assert (run / "last.pt").read_bytes() == b"weights"


@pytest.mark.parametrize("argv,owned", [
    (["vos", "eval", "davis", "--davis-root", "{tmp}/none", "--results", "{tmp}", "--json", "{json}"],
     {"J&F-Mean": 0.5, "J-Mean": 0.5, "J-Recall": 0.5, "J-Decay": 0, "F-Mean": 0.5, "F-Recall": 0.5, "F-Decay": 0}),
    (["vos", "eval", "ytvis", "--root", "{tmp}/none", "--results", "{tmp}", "--json", "{json}"],
     {"FG-ARI": 0.5, "FG-ARI-per-frame": 0.5, "mIoU": 0.5, "mBO": 0.5}),
    (["ssl-video", "pretrain", "--arch", "r3d_tiny", "--moco-k", "64", "--data-root", "{tmp}/none",
      "--out", "{tmp}/run", "--json", "{json}"], {"epochs": 1, "steps": 2, "loss": 3.0, "checkpoint": "x"}),
    (["ssl-video", "finetune", "--arch", "r3d_tiny", "--data-root", "{tmp}/none", "--out", "{tmp}/run",
      "--json", "{json}"], {"video_top1": 1.0, "video_top5": 2.0, "clip_top1": 3.0}),
    (["ssl-video", "retrieve", "--arch", "r3d_tiny", "--data-root", "{tmp}/none", "--json", "{json}"],
     {"R@1": 1.0, "R@5": 2.0}),
    (["ssl-video", "retrieve", "--arch", "r3d_tiny", "--data-root", "{tmp}/none", "--out", "{tmp}"],
     {"R@10": 1.0}),
])
def test_json_outputs_replace_only_earlier_results(tmp_path, capsys, argv, owned):
    """A foreign file at --json is refused before any work; an earlier result of the same command,
    or --overwrite, gets past the check (the run then fails on the missing data, which is later)."""
    from ssl_video.cli import main as ssl_main

    json_path = tmp_path / "results.json"
    cli = main if argv[0] == "vos" else ssl_main
    args = [a.format(tmp=tmp_path, json=json_path) for a in argv[1:]]
    for foreign in ('{"name": "my settings"}', "plain notes", json.dumps({**owned, "x": 1})[:-3]):
        json_path.write_text(foreign)
        code, output = run_main(capsys, cli, args)
        line = error_line(output)
        assert code == 2 and str(json_path) in line and "--overwrite" in line
        assert json_path.read_text() == foreign
    for content, extra in ((json.dumps(owned), []), ("plain notes", ["--overwrite"])):
        json_path.write_text(content)
        code, output = run_main(capsys, cli, args + extra)
        assert code == 2 and "--overwrite" not in error_line(output)  # refused later: no data
    json_path.unlink()
    json_path.mkdir()
    code, output = run_main(capsys, cli, args + ["--overwrite"])
    assert code == 2 and "is a folder" in error_line(output)


def test_synth_outputs_check_writability_first(tmp_path, capsys):
    from ssl_video.cli import main as ssl_main

    blocker = tmp_path / "file.txt"
    blocker.write_text("a file")
    code, output = run_main(capsys, main, ["synth", blocker / "data", "--videos", "1", "--frames", "2"])
    assert code == 2 and "is a file" in error_line(output)
    code, output = run_main(capsys, ssl_main, ["synth", blocker / "data"])
    assert code == 2 and "is a file" in error_line(output)
    folder = foreign_folder(tmp_path / "mine")
    code, output = run_main(capsys, main, ["synth", folder, "--videos", "1", "--frames", "2"])
    assert code == 2 and "not empty" in error_line(output) and (folder / "notes.txt").is_file()


@pytest.mark.parametrize("size,ok", [((100000, 100000), False), ((4097, 16), False), ((2049, 2048), False),
                                     ((2048, 2048), True), ((4096, 1024), True), ((0, 10), False)])
def test_resolution_is_bounded(size, ok):
    from vos.infra.errors import UserError
    from vos.segment.config import check_resolution

    if ok:
        check_resolution(size)
    else:
        with pytest.raises(UserError, match="--resolution"):
            check_resolution(size)


def test_huge_resolution_is_a_one_line_error(tmp_path, capsys, no_decoding):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    code = main(["segment", str(video), "--out", str(tmp_path / "out"), *TINY, "--resolution", "100000", "100000"])
    output = capsys.readouterr().err
    assert code == 2 and "too large" in error_line(output)
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *TINY,
                 "--resolution", "100000", "100000"])
    assert code == 2 and "too large" in error_line(capsys.readouterr().err)


def test_a_corrupt_video_does_not_stop_the_batch(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_mp4(videos / "a.mp4", moving_square_frames(4, (48, 64)))
    (videos / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    frame_folder(videos / "c", frames=4)
    code, output = segment(capsys, videos, "--out", tmp_path / "out")
    assert code == 2
    assert "b: skipped:" in output and "b.mp4" in output  # reported when it happens, with the reason
    line = error_line(output)
    assert "1 of 3 video(s) failed" in line and line.endswith(f"b; the other results are in {tmp_path / 'out'}")
    assert "2 video(s)" in output and "1 failed" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "c"]
    assert len(list((tmp_path / "out" / "a").glob("*.png"))) == 4
    # a single video still fails at once with its own error
    code, output = segment(capsys, videos / "b.mp4", "--out", tmp_path / "out")
    assert code == 2 and "b.mp4" in error_line(output) and "failed and were skipped" not in output


def test_partial_folder_is_replaced_only_if_it_is_an_unfinished_result(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    out = tmp_path / "out"
    partial = out / "clip.partial"
    partial.mkdir(parents=True)
    (partial / "draft.txt").write_text("mine")
    code, output = segment(capsys, video, "--out", out)
    assert code == 2 and "clip.partial" in error_line(output) and (partial / "draft.txt").is_file()
    (partial / "draft.txt").unlink()
    for name in ("00000.png", ".00001.ab_3x9zq.tmp.png"):  # what an interrupted run leaves
        (partial / name).write_bytes(b"x")
    code, output = segment(capsys, video, "--out", out, "--overwrite")  # no marker: not ours, --overwrite or not
    assert code == 2 and "clip.partial" in error_line(output) and (partial / "00000.png").read_bytes() == b"x"
    (partial / MARKER).write_text(json.dumps({"command": "vos segment", "finished": False}))
    code, output = segment(capsys, video, "--out", out)
    assert code == 0, output
    assert not partial.exists() and len(list((out / "clip").glob("*.png"))) == 4
