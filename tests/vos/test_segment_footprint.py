"""The full mode's memory estimate, and the one-line refusal of a run that cannot fit (before any
frame is decoded), with a made-up amount of available memory."""

import math

import pytest

from tests.helpers.vos_clips import TINY, moving_square_frames, write_mp4
from tests.vos.test_segment import run_cli
from vos.infra.video_reader import VideoSource
from vos.segment import footprint
from vos.segment.footprint import FullModeShape, full_mode_bytes

MIB = 2 ** 20
FAST = TINY + ["--resolution", "64", "96", "--key-every", "4"]


def shape_320x480(frames: int, workers: int, patches: int = 600) -> FullModeShape:
    """ViT-S/16 at 320×480 (600 patches; 240×320: 300), 384 channels, a key frame every 10th frame."""
    return FullModeShape(frames, patches, math.ceil(frames / 10) * patches, 384, 3, workers, 1024 * MIB)


@pytest.mark.parametrize("frames, workers, patches, measured_mib", [
    (25, 1, 600, 310), (50, 1, 600, 687), (100, 1, 600, 1706), (25, 2, 600, 352), (50, 2, 600, 757),
    (100, 2, 600, 1850), (200, 2, 300, 1710)])
def test_estimate_is_near_the_measured_peaks(frames, workers, patches, measured_mib):
    # peak minus model of tools/bench_segment.py runs (docs/benchmarks.md#memory-of-the-full-mode)
    rel = 0.1 if frames < 50 else 0.02
    assert full_mode_bytes(shape_320x480(frames, workers, patches)) / MIB == pytest.approx(measured_mib, rel=rel)


def test_estimate_by_hand_for_one_window():
    # T = 3 frames of N = 10 patches, K = 10, C = 4, one worker, no cache: queries 3·10·4, keys 10·4,
    # 0.4 + 3.5 windows of 3·10·10 floats, and 7532 bytes for each of the 30 patches
    shape = FullModeShape(3, 10, 10, 4, 3, 1, 0)
    assert full_mode_bytes(shape) == int(4 * (120 + 40 + 3.9 * 300) + 7532 * 30)
    # the cache holds at most every window's attention (T·N·K floats)
    assert full_mode_bytes(FullModeShape(3, 10, 10, 4, 3, 1, 10 ** 9)) - full_mode_bytes(shape) == 4 * 300


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("videos") / "square.mp4", moving_square_frames(12, (90, 130)))


def test_a_compat_run_that_cannot_fit_is_refused_before_decoding(clip, tmp_path, capsys, monkeypatch):
    # the tiny run needs about 2.3 MB (12 frames of 24 patches, 64 channels)
    monkeypatch.setattr(footprint, "available_memory_bytes", lambda: MIB)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(VideoSource, "iter_chunks", no_decoding)
    monkeypatch.setattr(VideoSource, "read_frames", no_decoding)
    code, output = run_cli(capsys, clip, "--out", tmp_path / "out", "--compat", "ssl-uvos", *FAST)
    assert code == 2
    [error] = [line for line in output.splitlines() if "error" in line]
    assert "full mode" in error and "--mode chunked" in error and "12 frames" in error
    assert 0 < int(error.split("--max-frames ")[1].split()[0]) < 12
    assert not (tmp_path / "out" / "square").exists() and not (tmp_path / "out" / "square.partial").exists()


def test_the_suggested_length_is_the_longest_that_fits():
    available = 500 * MIB
    with pytest.raises(footprint.UserError) as error:
        footprint.check_full_mode_fits(shape_320x480(200, 2), lambda frames: shape_320x480(frames, 2), "v.mp4", available)
    message = str(error.value)
    assert message.startswith("v.mp4: the full mode") and "for 200 frames" and "0.5 GiB is available" in message
    fits = int(message.split("--max-frames ")[1].split()[0])
    budget = footprint.HEADROOM * available
    assert full_mode_bytes(shape_320x480(fits, 2)) <= budget < full_mode_bytes(shape_320x480(fits + 1, 2))
    footprint.check_full_mode_fits(shape_320x480(fits, 2), None, "v.mp4", available)  # fits: no error
    footprint.check_full_mode_fits(shape_320x480(10 ** 4, 2), None, "v.mp4", None)  # unknown: no check


def test_runs_that_fit_and_chunked_runs_are_not_refused(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(footprint, "available_memory_bytes", lambda: MIB)
    code, output = run_cli(capsys, clip, "--out", tmp_path / "chunked", "--compat", "ssl-uvos", "--mode", "chunked",
                           "--chunk-frames", "6", *FAST)
    assert code == 0, output
    monkeypatch.setattr(footprint, "available_memory_bytes", lambda: 8 * 2 ** 30)
    code, output = run_cli(capsys, clip, "--out", tmp_path / "full", "--compat", "ssl-uvos", *FAST)
    assert code == 0, output
    assert len(list((tmp_path / "full" / "square").glob("*.png"))) == 12
