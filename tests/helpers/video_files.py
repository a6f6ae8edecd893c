"""Small generated videos and frame folders for the video I/O tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vos.infra.video_reader import decord_available, torchcodec_available

# decord ships wheels for x86_64 only; elsewhere its tests are skipped and PyAV is used.
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed")
# torchcodec is an optional extra and needs FFmpeg's shared libraries (`.ci/run` installs both).
needs_torchcodec = pytest.mark.skipif(not torchcodec_available(),
                                      reason="torchcodec is not installed or its FFmpeg libraries do not load")
DECODERS = [pytest.param("torchcodec", marks=needs_torchcodec), pytest.param("decord", marks=needs_decord), "pyav"]


def frame_pattern(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame ``index`` of a test video: uint8 (H, W, 3) flat blocks whose red level encodes the index."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 10 + 20 * index
    frame[:, : width // 2, 1] = 200
    frame[:, width // 2:, 1] = 50
    frame[..., 2] = 100
    return frame


def decoded_index(frame: np.ndarray) -> int:
    """Invert :func:`frame_pattern` on a decoded (lossy) frame."""
    return int(round((float(frame[..., 0].mean()) - 10) / 20))


def write_video(path: Path, num_frames: int, codec: str = "libx264", height: int = 48, width: int = 64,
                fps: int = 10, rotation: int = 0) -> Path:
    """Encode ``num_frames`` frames of :func:`frame_pattern` with PyAV (container from the suffix);
    ``rotation``: display rotation in degrees counter-clockwise (the tag a phone writes), stored
    as the stream's display matrix."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, height, width), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_video(path: Path, out: Path, keep: float) -> Path:
    """Copy the first ``keep`` fraction of the bytes of ``path`` to ``out`` (a file cut short)."""
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def decodable_frames(path: Path) -> int:
    """Reference count, independent of vos.infra.video_reader: frames PyAV decodes before the end or an error."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(container.streams.video[0]):
                count += 1
    except av.error.FFmpegError:
        pass
    return count
