"""vos.overlay: palette blending, contours and the atomic mp4 writer."""

from __future__ import annotations

import numpy as np
import pytest

import vos.video_io
from tests.helpers.video_files import decoded_index, frame_pattern
from vos.errors import VosError
from vos.overlay import MP4_CODECS, Mp4Writer, available_mp4_codec, blend, object_contours
from vos.palette import davis_palette
from vos.video_io import open_video


def test_blend_hand_computed():
    frame = np.full((4, 5, 3), 100, np.uint8)
    frame[0, 0] = (1, 2, 3)
    labels = np.zeros((4, 5), np.int64)
    labels[1:3, 1:3] = 1  # palette[1] = (128, 0, 0)
    labels[3, 4] = 2      # palette[2] = (0, 128, 0)
    out = blend(frame, labels, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    np.testing.assert_array_equal(out[1:3, 1:3].reshape(-1, 3), [[114, 50, 50]] * 4)
    np.testing.assert_array_equal(out[3, 4], [50, 114, 50])
    background = labels == 0
    np.testing.assert_array_equal(out[background], frame[background])  # untouched, bit for bit
    np.testing.assert_array_equal(blend(frame, labels, alpha=0.0), frame)
    np.testing.assert_array_equal(blend(frame, labels, alpha=1.0)[labels > 0], davis_palette()[labels[labels > 0]])


def test_contours_are_the_object_border():
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 3
    border = object_contours(labels)
    assert border.sum() == 16  # the ring of a 5x5 square
    assert not border[2:5, 2:5].any() and not border[labels == 0].any()
    frame = np.full((7, 7, 3), 200, np.uint8)
    out = blend(frame, labels, alpha=0.5, contours=True)
    np.testing.assert_array_equal(out[border], np.zeros((16, 3)))
    np.testing.assert_array_equal(out[3, 3], np.rint(0.5 * 200 + 0.5 * davis_palette()[3]).astype(np.uint8))


def test_blend_rejects_bad_input():
    frame = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(VosError, match=r"labels \(4, 4\) do not match the frame size \(4, 5\)"):
        blend(frame, np.zeros((4, 4), int))
    with pytest.raises(VosError, match="frame must be uint8"):
        blend(frame.astype(np.float32), np.zeros((4, 5), int))
    with pytest.raises(VosError, match="alpha must lie in"):
        blend(frame, np.zeros((4, 5), int), alpha=1.5)


def test_an_mp4_encoder_is_available():
    assert available_mp4_codec() in MP4_CODECS


@pytest.mark.parametrize("codec", MP4_CODECS)
def test_mp4_writer_round_trip(tmp_path, codec):
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, fps=12.5, codec=codec) as writer:
        for i in range(9):
            writer.write(frame_pattern(i, 31, 45))  # odd size: padded to 32x46
    assert writer.frames_written == 9 and writer.size == (31, 45)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind
    for backend in ("decord", "pyav") if vos.video_io.decord_available() else ("pyav",):
        video = open_video(path, backend=backend)
        assert (video.num_frames, video.height, video.width, video.fps) == (9, 32, 46, 12.5)
        frames = video.read_frames(range(9))
        assert [decoded_index(f) for f in frames] == list(range(9))
        for i, frame in enumerate(frames):
            assert np.abs(frame[:31, :45].astype(int) - frame_pattern(i, 31, 45)).mean() < 4
        np.testing.assert_array_equal(frames[:, 31], frames[:, 30])  # the padding replicates the edge


def test_mp4_writer_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(KeyError):
        with Mp4Writer(path, fps=10) as writer:
            writer.write(frame_pattern(0))
            raise KeyError("crash while writing")
    assert path.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_mp4_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(VosError, match="no frames were written"):
        with Mp4Writer(tmp_path / "empty.mp4", fps=10):
            pass
    with pytest.raises(VosError, match="frame 1 is 40x64 but the video is 48x64"):
        with Mp4Writer(tmp_path / "sizes.mp4", fps=10) as writer:
            writer.write(frame_pattern(0, 48, 64))
            writer.write(frame_pattern(1, 40, 64))
    with pytest.raises(VosError, match="fps must be positive"):
        Mp4Writer(tmp_path / "fps.mp4", fps=0)
    with pytest.raises(VosError, match="cannot start the no-such-codec mp4 encoder"):
        Mp4Writer(tmp_path / "codec.mp4", fps=10, codec="no-such-codec")
    assert list(tmp_path.iterdir()) == []
