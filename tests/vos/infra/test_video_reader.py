"""vos.infra.video_reader: video files (torchcodec / decord / PyAV), frame folders, batch discovery, stride, errors."""

from __future__ import annotations

import sys

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers.paths import SHARED_DATA
from tests.helpers.video_files import (DECODERS, cut_video, decodable_frames, decoded_index, frame_pattern,
                                       needs_decord, needs_torchcodec, write_video)
from vos.infra import video_reader
from vos.infra.errors import UserError
from vos.infra.video_reader import discover_videos, natural_key, open_video

CONTAINERS = [("clip.mp4", "libx264"), ("clip.avi", "mpeg4"), ("clip.mov", "mpeg4"), ("clip.webm", "libvpx"),
              ("clip.mkv", "libx264")]


RANDOM_ACCESS = [pytest.param("torchcodec", marks=needs_torchcodec), pytest.param("decord", marks=needs_decord)]
BIG_BUCK_BUNNY = SHARED_DATA / "real-videos" / "bigbuckbunny.mp4"


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", 10)


@pytest.fixture
def without_torchcodec(monkeypatch):
    """open_video(backend="auto") as on a machine where torchcodec cannot load."""
    monkeypatch.setattr(video_reader, "torchcodec_available", lambda: False)


def break_decoder(video, failing) -> None:
    """Make the batch reads of a torchcodec or decord source call ``failing`` instead."""
    if video.backend == "torchcodec":
        video.decoder.get_frames_at = failing
    else:
        video.reader.get_batch = failing


def decoder_batches(video):
    """The batch read of a torchcodec or decord source (bound method)."""
    return video.decoder.get_frames_at if video.backend == "torchcodec" else video.reader.get_batch


def save_frames(folder, frames, suffix=".png", names=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"{i:05d}" for i in range(len(frames))]
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(folder / f"{name}{suffix}")
    return folder


@pytest.mark.parametrize("backend", DECODERS)
@pytest.mark.parametrize("filename,codec", CONTAINERS)
def test_containers_decode_to_the_encoded_frames(tmp_path, filename, codec, backend):
    path = write_video(tmp_path / filename, 7, codec=codec)
    video = open_video(path, backend=backend)
    assert video.backend == backend
    assert (video.name, video.num_frames, video.height, video.width, video.fps) == ("clip", 7, 48, 64, 10.0)
    frames = video.read_frames(range(7))
    assert frames.dtype == np.uint8 and frames.shape == (7, 48, 64, 3)
    assert [decoded_index(f) for f in frames] == list(range(7))
    for i, frame in enumerate(frames):  # lossy codecs, flat blocks: a few levels of error at most
        assert np.abs(frame.astype(int) - frame_pattern(i)).mean() < 4


@pytest.mark.parametrize("backend", RANDOM_ACCESS)
@pytest.mark.parametrize("filename,codec", CONTAINERS)
def test_backends_agree_with_pyav(tmp_path, filename, codec, backend):
    """torchcodec decodes and converts to RGB as PyAV does: equal frames. decord converts with its
    own filter graph: within about one grey level."""
    path = write_video(tmp_path / filename, 6, codec=codec)
    video, by_pyav = open_video(path, backend=backend), open_video(path, backend="pyav")
    assert video.num_frames == by_pyav.num_frames == 6
    a = np.concatenate(list(video.iter_chunks(4))).astype(int)
    b = np.concatenate(list(by_pyav.iter_chunks(4))).astype(int)
    assert a.shape == b.shape
    if backend == "torchcodec":
        np.testing.assert_array_equal(a, b)
    else:
        assert np.abs(a - b).mean() < 1.0


@needs_torchcodec
@pytest.mark.skipif(not BIG_BUCK_BUNNY.exists(), reason="real video ../shared/data/real-videos/bigbuckbunny.mp4 absent")
def test_torchcodec_equals_pyav_on_a_real_h264_video():
    """Real 720p H.264 (B-frames, 132 frames): every third of the first 60 frames, and a
    random-access read out of order."""
    by_torchcodec = open_video(BIG_BUCK_BUNNY, stride=3, max_frames=20, backend="torchcodec")
    by_pyav = open_video(BIG_BUCK_BUNNY, stride=3, max_frames=20, backend="pyav")
    assert (by_torchcodec.num_frames, by_torchcodec.height, by_torchcodec.width, by_torchcodec.fps) == (20, 720, 1280,
                                                                                                       25 / 3)
    expected = np.concatenate(list(by_pyav.iter_chunks(8)))
    np.testing.assert_array_equal(np.concatenate(list(by_torchcodec.iter_chunks(8))), expected)
    np.testing.assert_array_equal(by_torchcodec.read_frames([19, 3, 3, 11]), expected[[19, 3, 3, 11]])


def test_auto_tries_torchcodec_then_decord_then_pyav(mp4, monkeypatch):
    def unreadable(*args, **kwargs):
        raise RuntimeError("cannot open")

    if video_reader.torchcodec_available():
        assert open_video(mp4).backend == "torchcodec"
        import torchcodec.decoders

        monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", unreadable)
    if video_reader.decord_available():
        assert open_video(mp4).backend == "decord"
        import decord

        monkeypatch.setattr(decord, "VideoReader", unreadable)
    video = open_video(mp4)
    assert video.backend == "pyav" and video.num_frames == 10


@needs_decord
def test_auto_falls_back_to_pyav_when_decord_misdecodes(tmp_path, without_torchcodec):
    """decord 0.6 opens a 48x48 MPEG-4 file but cannot decode its frames (buffer size check)."""
    from vos.infra.video_writer import VideoWriter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, 48, 48, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "small.mp4", fps=10, codec="mpeg4") as writer:
        for frame in frames:
            writer.write(frame)
    with pytest.raises(UserError, match="decord failed on frames"):
        open_video(tmp_path / "small.mp4", backend="decord").read_frames([0])
    video = open_video(tmp_path / "small.mp4")
    assert video.backend == "pyav"
    assert video.read_frames([0, 5]).shape == (2, 48, 48, 3)


@pytest.mark.parametrize("backend", RANDOM_ACCESS)
def test_frames_a_random_access_backend_fails_on_later_are_read_with_pyav(mp4, monkeypatch, backend):
    """A file the backend opens, and a later read it fails on: with backend "auto" the frames
    come from PyAV, from then on, with a warning; with the backend named it is an error."""
    if backend == "decord":
        monkeypatch.setattr(video_reader, "torchcodec_available", lambda: False)
    expected = open_video(mp4, backend="pyav").read_frames(range(10))
    cause = {"decord": ("[12:00:00] /src/video_reader.cc:151: Check failed: buffer size", "Check failed: buffer size"),
             "torchcodec": ("decode_av_frame, /src/SingleStreamDecoder.cpp:1493, Could not push packet",
                            "Could not push packet")}[backend]

    def failing(*args, **kwargs):
        raise RuntimeError(cause[0])

    strict = open_video(mp4, backend=backend)
    break_decoder(strict, failing)
    with pytest.raises(UserError, match=rf"clip.mp4: {backend} failed on frames 2..4 \({cause[1]}\); "
                                        r"try backend='pyav' or re-encode the video$"):
        strict.read_frames([2, 3, 4])

    video = open_video(mp4)
    assert video.backend == backend
    np.testing.assert_array_equal(video.read_frames([0, 1]), expected[[0, 1]])
    break_decoder(video, failing)
    with pytest.warns(UserWarning, match=rf"clip.mp4: {backend} failed on frames 2..4 \({cause[1]}\); "
                                         r"reading the file with PyAV from now on$"):
        frames = video.read_frames([2, 3, 4])
    assert video.backend == "pyav"
    np.testing.assert_array_equal(frames, expected[[2, 3, 4]])
    np.testing.assert_array_equal(np.concatenate(list(video.iter_chunks(4))), expected)


@pytest.mark.parametrize("backend", RANDOM_ACCESS)
@pytest.mark.parametrize("stride, max_frames", [(1, None), (2, None), (3, 3)])
def test_after_a_fallback_the_remaining_chunks_take_one_decode(mp4, monkeypatch, backend, stride, max_frames):
    """The backend fails on the second chunk: the rest of the video comes from one sequential PyAV
    decode, not one decode from the start per chunk, and the frames are the selected ones."""
    expected = np.concatenate(list(open_video(mp4, stride, max_frames, backend="pyav").iter_chunks(2)))
    if backend == "decord":  # as "auto" opens it, but reading its chunks with decord (as "decord" does)
        video = video_reader.DecordSource(mp4, stride, max_frames, pyav_fallback=True)
    else:
        video = open_video(mp4, stride, max_frames)
    assert video.backend == backend
    real, calls = decoder_batches(video), []

    def fails_after_the_first_chunk(indices):
        calls.append(indices)
        if len(calls) > 1:
            raise RuntimeError("mis-decoded")
        return real(indices)

    break_decoder(video, fails_after_the_first_chunk)
    decodes = []
    real_decode = video_reader.PyAVSource._decode
    monkeypatch.setattr(video_reader.PyAVSource, "_decode", lambda self, wanted: decodes.append(sorted(wanted)) or
                        real_decode(self, wanted))
    with pytest.warns(UserWarning, match="reading the file with PyAV from now on"):
        chunks = list(video.iter_chunks(2))
    np.testing.assert_array_equal(np.concatenate(chunks), expected)
    # the failed chunk is read once, then everything after it in a single decode
    rest = [int(i) for i in video.source_indices[4:]]
    assert decodes[1:] == ([rest] if rest else [])
    assert decodes[0] == [int(i) for i in video.source_indices[2:4]]


@needs_decord
@pytest.mark.parametrize("stride, max_frames", [(1, None), (3, 3)])
def test_auto_reads_the_chunks_of_a_decord_source_in_one_pyav_decode(mp4, monkeypatch, without_torchcodec, stride,
                                                                     max_frames):
    """decord bounds its memory only by decoding again from the key frame at every read: "auto"
    reads a sequential pass with PyAV (bounded and fast) and keeps decord for reads by index."""
    expected = np.concatenate(list(open_video(mp4, stride, max_frames, backend="pyav").iter_chunks(2)))
    video = open_video(mp4, stride, max_frames)
    assert video.backend == "decord"
    batches = []
    real = video.reader.get_batch
    video.reader.get_batch = lambda indices: batches.append(list(indices)) or real(indices)
    decodes = []
    real_decode = video_reader.PyAVSource._decode
    monkeypatch.setattr(video_reader.PyAVSource, "_decode", lambda self, wanted: decodes.append(sorted(wanted)) or
                        real_decode(self, wanted))
    np.testing.assert_array_equal(np.concatenate(list(video.iter_chunks(2))), expected)
    assert batches == [] and decodes == [video.source_indices.tolist()]
    np.testing.assert_array_equal(video.read_frames([len(expected) - 1, 0]), expected[[-1, 0]])
    assert batches == [[int(video.source_indices[-1]), 0]]


def test_missing_decord_means_pyav(mp4, monkeypatch, without_torchcodec):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` raise ImportError
    assert open_video(mp4).backend == "pyav"
    with pytest.raises(UserError, match="decord is not installed.*backend='pyav'"):
        open_video(mp4, backend="decord")


class _FFmpegLibrariesMissing:
    """An import hook that fails loading torchcodec's decoders as torchcodec does when no FFmpeg
    library of a version it supports is on the machine (RuntimeError at import)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchcodec.decoders" or name.startswith("torchcodec.decoders."):
            raise RuntimeError("Could not load libtorchcodec. Likely causes: FFmpeg is not installed")
        return None


@pytest.mark.parametrize("cause", ["not installed", "FFmpeg libraries missing"])
def test_torchcodec_that_cannot_load_is_skipped_by_auto_and_named_when_asked_for(mp4, monkeypatch, cause):
    for name in [m for m in sys.modules if m == "torchcodec" or m.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    if cause == "not installed":
        monkeypatch.setitem(sys.modules, "torchcodec", None)  # `import torchcodec...` raises ImportError
    else:
        monkeypatch.setattr(sys, "meta_path", [_FFmpegLibrariesMissing(), *sys.meta_path])
    video_reader.torchcodec_available.cache_clear()
    try:
        assert not video_reader.torchcodec_available()
        assert open_video(mp4).backend == ("decord" if video_reader.decord_available() else "pyav")
        message = one_line_error(open_video, mp4, backend="torchcodec")
        assert "torchcodec cannot be loaded on this machine (pip install torchcodec, and FFmpeg" in message
        assert "use backend='pyav' (or 'auto')" in message
    finally:
        video_reader.torchcodec_available.cache_clear()  # the next test sees this machine again


@pytest.mark.parametrize("backend", DECODERS)
def test_chunks_equal_full_read(mp4, backend):
    video = open_video(mp4, backend=backend)
    chunks = list(video.iter_chunks(3))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), video.read_frames(range(10)))


@pytest.mark.parametrize("backend", DECODERS)
@pytest.mark.parametrize("stride,max_frames,expected", [(1, None, list(range(10))), (3, None, [0, 3, 6, 9]),
                                                         (1, 4, [0, 1, 2, 3]), (3, 2, [0, 3]), (4, 10, [0, 4, 8])])
def test_stride_and_max_frames(mp4, backend, stride, max_frames, expected):
    video = open_video(mp4, stride=stride, max_frames=max_frames, backend=backend)
    assert video.num_frames == len(video) == len(expected)
    assert video.fps == pytest.approx(10.0 / stride)
    assert video.frame_names == [f"{i:05d}" for i in expected]
    frames = np.concatenate(list(video.iter_chunks(2)))
    assert [decoded_index(f) for f in frames] == expected
    assert [decoded_index(f) for f in video.read_frames([len(expected) - 1, 0])] == [expected[-1], 0]


def test_frame_folder_modes_are_converted_to_rgb(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.fromarray(np.full((5, 7), 77, np.uint8), mode="L").save(folder / "00000.png")
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[...] = (10, 20, 30, 0)  # fully transparent: the colour is kept, alpha dropped
    Image.fromarray(rgba, mode="RGBA").save(folder / "00001.png")
    Image.fromarray(np.full((5, 7), 0x8000 + 0x0123, np.uint16)).save(folder / "00002.png")  # 16-bit gray
    palette = Image.fromarray(np.full((5, 7), 3, np.uint8), mode="P")
    palette.putpalette([0, 0, 0] * 3 + [200, 100, 50] + [0, 0, 0] * 252)
    palette.save(folder / "00003.png")
    Image.fromarray(np.full((5, 7, 3), (40, 80, 120), np.uint8)).save(folder / "00004.jpeg", quality=100)
    Image.fromarray(np.full((5, 7), 255, np.uint8)).convert("1").save(folder / "00005.png")
    cv2.imwrite(str(folder / "00006.png"), np.full((5, 7, 3), (0x1000, 0x8000, 0xFFFF), np.uint16))  # 16-bit BGR

    video = open_video(folder)
    assert (video.backend, video.name, video.num_frames, video.height, video.width) == ("pil", "modes", 7, 5, 7)
    assert video.fps == video_reader.FRAME_FOLDER_FPS
    frames = video.read_frames(range(7))
    assert frames.dtype == np.uint8 and frames.shape == (7, 5, 7, 3)
    expected = [(77, 77, 77), (10, 20, 30), (0x81, 0x81, 0x81), (200, 100, 50), (40, 80, 120), (255, 255, 255),
                (255, 128, 16)]
    for frame, colour in zip(frames, expected):
        assert np.abs(frame.astype(int) - colour).max() <= 2, (frame[0, 0], colour)


def test_frame_folder_natural_order_odd_size_and_names(tmp_path):
    frames = [frame_pattern(i, 17, 23) for i in range(11)]
    names = [f"frame{i}" for i in range(11)]  # frame10 must come after frame9, not after frame1
    folder = save_frames(tmp_path / "seq", frames, names=names)
    video = open_video(folder, stride=2)
    assert (video.height, video.width, video.num_frames) == (17, 23, 6)
    assert video.frame_names == ["frame0", "frame2", "frame4", "frame6", "frame8", "frame10"]
    np.testing.assert_array_equal(np.concatenate(list(video.iter_chunks(4))), np.stack(frames[::2]))
    assert sorted(["b10", "b9", "a1", "b1"], key=natural_key) == ["a1", "b1", "b9", "b10"]


def test_discover_single_and_batch(tmp_path, mp4):
    assert discover_videos(mp4) == [mp4]
    seq = save_frames(tmp_path / "batch" / "video10", [frame_pattern(0)], suffix=".jpg")
    assert discover_videos(seq) == [seq]
    batch = tmp_path / "batch"
    write_video(batch / "video2.mp4", 3)
    save_frames(batch / "video1", [frame_pattern(0)] * 2)
    (batch / "notes.txt").write_text("not a video")
    (batch / "empty").mkdir()
    (batch / ".hidden.mp4").write_text("ignored")
    found = discover_videos(batch)
    assert [p.name for p in found] == ["video1", "video2.mp4", "video10"]
    assert [open_video(p).num_frames for p in found] == [2, 3, 1]


def test_discover_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        discover_videos(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="notes.txt: not a supported video file"):
        discover_videos(tmp_path / "notes.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="no videos .* and no folders of frames"):
        discover_videos(tmp_path)


def one_line_error(callable_, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        callable_(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("backend", ["auto"] + DECODERS)
def test_bad_video_files(tmp_path, backend):
    missing = one_line_error(open_video, tmp_path / "missing.mp4", backend=backend)
    assert "missing.mp4: no such file" in missing

    fake = tmp_path / "fake.mp4"
    fake.write_text("this is text, not a video")
    message = one_line_error(open_video, fake, backend=backend)
    assert "fake.mp4" in message and "decode" in message and "re-encode" in message

    empty = tmp_path / "empty.mp4"  # a valid mp4 container without a single frame
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    writer.release()
    assert empty.stat().st_size > 0
    message = one_line_error(open_video, empty, backend=backend)
    assert "empty.mp4" in message
    if backend in ("auto", "pyav"):  # torchcodec and decord cannot tell why; "auto" ends with PyAV's diagnosis
        assert "no video stream (no frames)" in message


def test_bad_options(mp4, tmp_path):
    assert "stride must be a positive integer" in one_line_error(open_video, mp4, stride=0)
    assert "max_frames must be" in one_line_error(open_video, mp4, max_frames=0)
    assert "unknown video backend 'ffmpeg'" in one_line_error(open_video, mp4, backend="ffmpeg")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    assert "clip.gif: not a supported video file" in one_line_error(open_video, tmp_path / "clip.gif")
    video = open_video(mp4)
    assert "frame index 10 out of range 0..9" in one_line_error(video.read_frames, [10])
    assert "chunk_size" in one_line_error(lambda: next(video.iter_chunks(0)))


def test_bad_frame_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "empty: the frame folder is empty" in one_line_error(open_video, tmp_path / "empty")

    mixed = save_frames(tmp_path / "mixed", [frame_pattern(0, 48, 64), frame_pattern(1, 48, 64)])
    save_frames(mixed, [frame_pattern(2, 40, 64)], names=["00002"])
    message = one_line_error(open_video, mixed)
    assert "00002.png: frame is 40x64" in message and "00000.png is 48x64" in message

    broken = save_frames(tmp_path / "broken", [frame_pattern(0)] * 2, suffix=".jpg")
    (broken / "00002.jpg").write_text("not an image")
    assert "00002.jpg: cannot read this frame" in one_line_error(open_video, broken)

    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)  # big data, small header
    truncated = save_frames(tmp_path / "truncated", [noise] * 2, suffix=".jpg")
    data = (truncated / "00001.jpg").read_bytes()
    (truncated / "00001.jpg").write_bytes(data[: len(data) // 2])
    video = open_video(truncated)  # the header is intact; the pixel data is not
    assert "00001.jpg: cannot decode this frame" in one_line_error(video.read_frames, [1])

    other = save_frames(tmp_path / "other", [frame_pattern(0)])
    (other / "labels.txt").write_text("x")
    assert "'labels.txt' is not a .jpg/.jpeg/.png frame" in one_line_error(open_video, other)


@pytest.mark.parametrize("backend", ["auto"] + DECODERS)
@pytest.mark.parametrize("rotation,turns", [(90, 1), (-90, 3), (180, 2), (270, 3)])
def test_display_rotation_is_applied(tmp_path, backend, rotation, turns):
    """A phone video stores landscape frames plus a display rotation: every backend returns the
    frames turned as a player shows them (np.rot90 by the counter-clockwise quarter turns)."""
    path = write_video(tmp_path / "phone.mp4", 4, height=64, width=128, rotation=rotation)
    video = open_video(path, backend=backend)
    upright = (128, 64) if turns % 2 else (64, 128)
    assert (video.height, video.width) == upright
    frames = np.concatenate(list(video.iter_chunks(3)))
    assert frames.shape == (4, *upright, 3) and frames.flags.c_contiguous
    for i, frame in enumerate(frames):
        assert np.abs(frame.astype(int) - np.rot90(frame_pattern(i, 64, 128), turns)).mean() < 4
    np.testing.assert_array_equal(video.read_frames([2])[0], frames[2])


@needs_decord
def test_decord_and_pyav_give_the_same_rotated_frames(tmp_path):
    path = write_video(tmp_path / "phone.mp4", 5, height=64, width=128, rotation=-90)
    by_decord, by_pyav = open_video(path, backend="decord"), open_video(path, backend="pyav")
    a, b = by_decord.read_frames(range(5)), by_pyav.read_frames(range(5))
    assert a.shape == b.shape == (5, 128, 64, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def cut_avi(tmp_path_factory):
    """An AVI of 12 frames with its last 10% of bytes cut off: its header still announces 12."""
    folder = tmp_path_factory.mktemp("cut")
    whole = write_video(folder / "whole.avi", 12, codec="mpeg4")
    cut = cut_video(whole, folder / "cut.avi", 0.9)
    expected = decodable_frames(cut)
    assert 0 < expected < 12
    return cut, expected


@pytest.mark.parametrize("backend", ["auto", pytest.param("torchcodec", marks=needs_torchcodec), "pyav"])
def test_cut_short_video_gives_the_frames_that_decode_with_a_warning(cut_avi, backend):
    path, expected = cut_avi
    with pytest.warns(UserWarning, match=rf"cut.avi: only {expected} of the 12 frames its header announces can be "
                                         rf"decoded \(cut short or damaged\); using those {expected}"):
        video = open_video(path, backend=backend)
    # "auto": torchcodec where it loads (it counts as PyAV does); decord refuses the file
    auto = "torchcodec" if video_reader.torchcodec_available() else "pyav"
    assert video.backend == (auto if backend == "auto" else backend) and video.num_frames == expected
    frames = np.concatenate(list(video.iter_chunks(8)))
    assert [decoded_index(f) for f in frames] == list(range(expected))
    assert decoded_index(video.read_frames([expected - 1])[0]) == expected - 1


@needs_decord
def test_decord_alone_refuses_a_cut_short_video(cut_avi):
    message = one_line_error(open_video, cut_avi[0], backend="decord")
    # decord either counts fewer frames than the header announces or fails on the damaged frame,
    # depending on the FFmpeg libraries it resolves (torchcodec loaded in the same process brings the
    # system's): either way one line naming the file and the way out
    assert ("cut.avi: decord finds" in message and "of the 12 frames the header announces" in message) or \
        "cut.avi: decord cannot decode this file" in message
    assert "backend='pyav'" in message


@pytest.mark.parametrize("backend", ["auto"] + DECODERS)
def test_video_without_a_decodable_frame_is_an_error(tmp_path, backend):
    whole = write_video(tmp_path / "whole.mp4", 12)
    with av.open(str(whole)) as source, av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    # index first (faststart), then the frames: half the file keeps the index but no whole frame
    cut = cut_video(tmp_path / "fast.mp4", tmp_path / "cut.mp4", 0.5)
    assert decodable_frames(cut) == 0
    message = one_line_error(open_video, cut, backend=backend)
    assert "cut.mp4" in message
    if backend != "decord":
        assert "no frame of this video can be decoded (its header announces 12)" in message


@pytest.mark.parametrize("num_frames, clip_frames, stride, expected", [
    (100, 3, 4, 4),  # fits as asked
    (9, 3, 4, 4),    # frames 0, 4, 8: just fits
    (8, 3, 4, 3),    # (8 - 1) // 2
    (3, 3, 4, 1),    # only consecutive frames fit
    (2, 5, 2, 1),    # nothing fits: stride 1 (the clip samplers then repeat the last frame)
    (5, 1, 4, 4),    # a one-frame clip keeps the stride
])
def test_fitting_stride(num_frames, clip_frames, stride, expected):
    assert video_reader.fitting_stride(num_frames, clip_frames, stride) == expected


# Run in a fresh process: memory the test process freed earlier (and malloc keeps) would absorb
# decord's growth. The plain reader is given up to a minute to grow.
_READ_AHEAD_CHECK = """
import sys, time
import numpy as np
import decord
from vos.infra.video_reader import open_video

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

path = sys.argv[1]
plain = decord.VideoReader(path, num_threads=1)
before = rss_mib()
plain.get_batch(list(range(8))).asnumpy()
deadline = time.monotonic() + 60
while rss_mib() - before < 60 and time.monotonic() < deadline:
    time.sleep(0.1)
grown = rss_mib() - before
waited = 60 - (deadline - time.monotonic())
del plain
assert grown >= 60, "decord no longer decodes ahead: the read-ahead stop of DecordSource may be dropped"
video = open_video(path, backend="decord", threads=1)
before = rss_mib()
first = video.read_frames(range(8))
time.sleep(waited)  # as long as the plain reader took to grow
grown = rss_mib() - before
assert grown < 30 + first.nbytes / 2 ** 20, f"DecordSource grew by {grown:.0f} MiB between reads"
np.testing.assert_array_equal(video.read_frames(range(8, 16)), open_video(path, backend="pyav").read_frames(range(8, 16)))
"""


@needs_decord
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident set size from /proc")
def test_decord_source_does_not_decode_the_rest_of_the_file_between_reads(tmp_path):
    """decord 0.6 alone keeps decoding the rest of the file into memory after a read returns: a
    plain VideoReader grows by frames of the file while nobody reads; a DecordSource stops that."""
    import subprocess

    from vos.infra.video_writer import VideoWriter

    path = tmp_path / "long.mp4"  # 240 frames of 480x640: 0.9 MiB per RGB frame, 220 MiB in all
    ramp = np.linspace(0, 150, 640).astype(np.uint8)[None, :, None]
    with VideoWriter(path, fps=25) as writer:
        for i in range(240):
            writer.write(np.broadcast_to(ramp + i % 100, (480, 640, 3)).copy())
    run = subprocess.run([sys.executable, "-c", _READ_AHEAD_CHECK, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr.strip().splitlines()[-1:]
