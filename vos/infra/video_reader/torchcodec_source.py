"""Video files decoded with torchcodec, PyTorch's decoder (frame-exact random access in batches;
it needs FFmpeg's shared libraries, major versions 4 to 9 for torchcodec 0.17, on the machine)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from vos.infra.errors import UserError
from vos.infra.video_reader.random_access import RandomAccessSource
from vos.infra.video_reader.source import FRAME_FOLDER_FPS, warn_short_video


class TorchCodecSource(RandomAccessSource):
    """A video file decoded with torchcodec's ``VideoDecoder`` (``seek_mode="exact"``: opening
    demuxes the file once to index every frame, so a frame index is the same frame as PyAV's
    ``index``-th decoded frame). torchcodec applies the display rotation itself (``height``/``width``
    are the upright ones) and converts to RGB as PyAV does (the same FFmpeg conversion: equal
    pixels on the test videos, tests/vos/infra/test_video_reader.py).

    Files cut short follow the rule of :func:`vos.infra.video_reader.open_video`: when the file holds
    fewer frames than its header announces, opening decodes it once to count the frames that
    decode; none decoding is an error. With ``pyav_fallback``, frames torchcodec fails on later are
    read with PyAV (:class:`RandomAccessSource`).

    Memory: the frame index (a few dozen bytes per frame) and FFmpeg's decoder state; frames are
    decoded only when asked for, into the batch that is returned."""

    backend = "torchcodec"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None, threads: int = 0,
                 pyav_fallback: bool = False):
        from torchcodec.decoders import VideoDecoder

        try:
            # threads=0: FFmpeg's own choice, as for the other backends
            self.decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads,
                                        seek_mode="exact")
            meta = self.decoder.metadata
        except Exception as exc:  # RuntimeError/ValueError from torchcodec's C++ core
            raise UserError(f"{path}: torchcodec cannot decode this file ({_torchcodec_message(exc)}); check that it "
                           "is a complete video file, or use backend='pyav' or re-encode it") from exc
        indexed, announced = meta.num_frames_from_content or 0, meta.num_frames_from_header or 0
        total = indexed
        if announced and indexed < announced:
            total = self._count_decodable(indexed)
            if total == 0:
                raise UserError(f"{path}: no frame of this video can be decoded (its header announces {announced}); "
                               "the file is damaged: re-encode or remove it")
            if total < announced:
                warn_short_video(path, total, announced)
        fps = meta.average_fps or FRAME_FOLDER_FPS  # no rate in the file: the usual one, as PyAVSource does
        super().__init__(path, total, meta.height, meta.width, float(fps), stride, max_frames)
        self._init_fallback(threads, pyav_fallback)

    def _count_decodable(self, indexed: int) -> int:
        """Frames that decode, in order from the first, stopping at the first that does not."""
        for index in range(indexed):
            try:
                self.decoder.get_frame_at(index)
            except Exception:  # RuntimeError from FFmpeg: the damage starts here
                return index
        return indexed

    def _decode_batch(self, source_indices: list[int]) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.decoder.get_frames_at(source_indices).data.numpy(), None  # n H W 3
        except Exception as exc:  # RuntimeError from FFmpeg
            return None, (f"{self.path}: torchcodec failed on frames {source_indices[0]}..{source_indices[-1]} "
                          f"({_torchcodec_message(exc)})")


def _torchcodec_message(exc: Exception) -> str:
    """First line of a torchcodec error without its C++ location ``function, /src/file.cpp:41, ``."""
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^[\w:]+, \S+:\d+, ", "", line)[:200]


@functools.cache
def torchcodec_available() -> bool:
    """Whether torchcodec imports and its FFmpeg libraries load (it needs FFmpeg 4 to 9 installed:
    ``apt-get install ffmpeg``, ``brew install ffmpeg``, or ``conda install ffmpeg``). Asked once per
    process: a failed load tries every FFmpeg version torchcodec knows."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # RuntimeError: none of the FFmpeg libraries loads
        return False
    return True
