"""vos.infra.video_writer: frames written and decoded back, atomic replacement, containers by suffix."""

from __future__ import annotations

import numpy as np
import pytest

import vos.infra.video_reader
from tests.helpers.video_files import decoded_index, frame_pattern
from vos.infra.errors import UserError
from vos.infra.video_reader import open_video
from vos.infra.video_writer import MP4_CODECS, VideoWriter, available_mp4_codec


def test_an_mp4_encoder_is_available():
    assert available_mp4_codec() in MP4_CODECS


@pytest.mark.parametrize("codec", MP4_CODECS)
def test_writer_round_trip(tmp_path, codec):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=12.5, codec=codec) as writer:
        for i in range(9):
            writer.write(frame_pattern(i, 31, 45))  # odd size: padded to 32x46
    assert writer.frames_written == 9 and writer.size == (31, 45)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left behind
    for backend in ("decord", "pyav") if vos.infra.video_reader.decord_available() else ("pyav",):
        video = open_video(path, backend=backend)
        assert (video.num_frames, video.height, video.width, video.fps) == (9, 32, 46, 12.5)
        frames = video.read_frames(range(9))
        assert [decoded_index(f) for f in frames] == list(range(9))
        for i, frame in enumerate(frames):
            assert np.abs(frame[:31, :45].astype(int) - frame_pattern(i, 31, 45)).mean() < 4
        np.testing.assert_array_equal(frames[:, 31], frames[:, 30])  # the padding replicates the edge


def test_writer_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(KeyError):
        with VideoWriter(path, fps=10) as writer:
            writer.write(frame_pattern(0))
            raise KeyError("crash while writing")
    assert path.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(UserError, match="no frames were written"):
        with VideoWriter(tmp_path / "empty.mp4", fps=10):
            pass
    with pytest.raises(UserError, match="frame 1 is 40x64 but the video is 48x64"):
        with VideoWriter(tmp_path / "sizes.mp4", fps=10) as writer:
            writer.write(frame_pattern(0, 48, 64))
            writer.write(frame_pattern(1, 40, 64))
    with pytest.raises(UserError, match="fps must be positive"):
        VideoWriter(tmp_path / "fps.mp4", fps=0)
    with pytest.raises(UserError, match=r"cannot write a video with suffix '\.gif'; use one of \.mp4, \.avi"):
        VideoWriter(tmp_path / "clip.gif", fps=10)
    with pytest.raises(UserError, match="cannot start the no-such-codec encoder for mp4"):
        VideoWriter(tmp_path / "codec.mp4", fps=10, codec="no-such-codec")
    assert list(tmp_path.iterdir()) == []


def test_avi_at_a_fixed_bit_rate_is_reproducible(tmp_path):
    """ssl-video synth's setting: MPEG-4 part 2 in AVI at 4 Mbit/s on one encoder thread gives the
    same bytes every time, and the frames decode back in order."""
    frames = [frame_pattern(i, 32, 48) for i in range(6)]
    for name in ("a.avi", "b.avi"):
        with VideoWriter(tmp_path / name, fps=25, codec="mpeg4", bit_rate=4_000_000, threads=1) as writer:
            for frame in frames:
                writer.write(frame)
    assert (tmp_path / "a.avi").read_bytes() == (tmp_path / "b.avi").read_bytes()
    assert (tmp_path / "a.avi").read_bytes()[8:12] == b"AVI "  # RIFF header of an AVI container
    video = open_video(tmp_path / "a.avi", backend="pyav")
    assert (video.num_frames, video.height, video.width) == (6, 32, 48)
    decoded = video.read_frames(range(6))
    assert [decoded_index(f) for f in decoded] == list(range(6))
    assert max(np.abs(d.astype(int) - f).mean() for d, f in zip(decoded, frames)) < 3
