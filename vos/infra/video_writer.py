"""Writing videos: RGB uint8 frames one by one into an mp4 (or avi, mkv, mov), atomically.

``vos segment --overlay`` and ``vos synth`` write mp4s with it, ``ssl-video synth`` the avi files
of its UCF101-layout datasets.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_path

# Preferred first: H.264 plays everywhere; MPEG-4 part 2 is in every FFmpeg build.
MP4_CODECS = ("libx264", "mpeg4")
# container format of each file suffix the writer accepts (FFmpeg's names)
CONTAINER_FORMATS = {".mp4": "mp4", ".avi": "avi", ".mkv": "matroska", ".mov": "mov"}


def available_mp4_codec() -> str:
    """The first encoder of :data:`MP4_CODECS` that the installed PyAV/FFmpeg build provides."""
    import av

    for name in MP4_CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # av raises UnknownCodecError (a ValueError) or FFmpeg errors
            continue
        return name
    raise UserError(f"this PyAV build has none of the mp4 encoders {', '.join(MP4_CODECS)}; "
                    "install a PyAV wheel with FFmpeg encoders (pip install av)")


class VideoWriter:
    """Write RGB uint8 frames one by one into a video file, atomically.

    The container follows the suffix of ``path`` (:data:`CONTAINER_FORMATS`), unless ``container``
    names an FFmpeg format (e.g. ``"mp4"``) for any file name. Frames go to a
    temporary file beside ``path``; :meth:`close` renames it to ``path``. If an exception leaves the
    ``with`` block, the temporary file is removed and ``path`` is untouched. Odd frame sizes are
    padded by one replicated row/column (yuv420p needs even sizes).

    Quality: libx264 encodes at constant quality ``crf`` unless ``bit_rate`` (bits/s) is given;
    other codecs at ``bit_rate``, by default one bit per pixel and frame. ``threads`` sets the
    encoder's threads (1 makes the bitstream reproducible); ``comment`` is stored as the
    container's comment tag.

        with VideoWriter("overlay.mp4", fps=24) as writer:
            for frame in frames:          # H W 3 uint8
                writer.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float, codec: str | None = None, crf: int = 18,
                 bit_rate: int | None = None, threads: int | None = None, comment: str | None = None,
                 container: str | None = None):
        import av

        self.path = Path(path)
        container_format = container or CONTAINER_FORMATS.get(self.path.suffix.lower())
        if container_format is None:
            raise UserError(f"{self.path}: cannot write a video with suffix '{self.path.suffix}'; "
                            f"use one of {', '.join(CONTAINER_FORMATS)}")
        if not fps > 0:
            raise UserError(f"{path}: fps must be positive, got {fps}")
        self.codec = codec or available_mp4_codec()
        self.fps = fps
        self.crf = crf
        self.bit_rate = bit_rate
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # H, W of the frames given
        self._container = None
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._container = av.open(str(tmp), mode="w", format=container_format)
            if comment is not None:
                self._container.metadata["comment"] = comment
            self._stream = self._container.add_stream(self.codec, rate=Fraction(fps).limit_denominator(100000))
            self._stream.pix_fmt = "yuv420p"
            if threads is not None:
                self._stream.codec_context.thread_count = threads
        except Exception as exc:  # unknown codec name, unwritable folder
            self.abort()
            raise UserError(f"{self.path}: cannot start the {self.codec} encoder for {container_format} ({exc})") from exc

    def _configure(self, height: int, width: int) -> None:
        """Frame size and quality, known at the first frame."""
        self._stream.height = height + height % 2
        self._stream.width = width + width % 2
        if self.codec == "libx264" and self.bit_rate is None:
            # "veryfast" trades file size for encoding speed; CRF keeps the quality.
            self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:  # one bit per pixel and frame keeps MPEG-4 part 2 visually clean
            self._stream.bit_rate = self.bit_rate or int(self._stream.height * self._stream.width * self.fps)

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise UserError(f"{self.path}: frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if self.size is None:
            self.size = frame.shape[:2]
            self._configure(*self.size)
        elif frame.shape[:2] != self.size:
            raise UserError(f"{self.path}: frame {self.frames_written} is {frame.shape[0]}x{frame.shape[1]} but "
                            f"the video is {self.size[0]}x{self.size[1]}; all frames must have the same size")
        pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
        if any(p[1] for p in pad):
            frame = np.pad(frame, pad, mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to ``path``."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                raise UserError(f"{self.path}: no frames were written; nothing to save")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException:
            self.abort()
            raise
        self._stack.close()

    def abort(self) -> None:
        """Discard everything written so far; ``path`` is left as it was."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        # atomic_path deletes its temporary file when its block ends with an exception.
        aborted = RuntimeError("video writing aborted")
        self._stack.__exit__(type(aborted), aborted, None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
