"""Overlays for people to look at: label maps blended onto frames, and an atomic mp4 writer."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vos.errors import VosError
from vos.fileio import atomic_path
from vos.palette import davis_palette

_PALETTE_LUT = davis_palette().reshape(256, 1, 3)  # cv2.LUT table: label -> RGB
# Preferred first: H.264 plays everywhere; MPEG-4 part 2 is in every FFmpeg build.
MP4_CODECS = ("libx264", "mpeg4")
# mp4 "comment" tag of the overlays `vos segment` writes: an existing file carrying it may be replaced
OVERLAY_COMMENT = "vos segment overlay"


def is_our_overlay(path: str | os.PathLike) -> bool:
    """``path`` is an mp4 whose comment tag is :data:`OVERLAY_COMMENT` (an earlier overlay of ours)."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment") == OVERLAY_COMMENT
    except Exception:  # not a video at all: FFmpeg's errors are not one class
        return False


def object_contours(labels: np.ndarray) -> np.ndarray:
    """Bool (H, W): object pixels (label > 0) with a 4-neighbour of a different label."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return differs & (labels > 0)


def blend(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5, contours: bool = False) -> np.ndarray:
    """Colour objects of ``labels`` (H, W ints, 0 = background) onto ``frame`` (H, W, 3 uint8 RGB).

    Object pixels become ``(1 - alpha) * frame + alpha * palette[label]`` (DAVIS palette); the
    background stays exactly as it was. With ``contours`` the object borders are drawn black,
    as in the DAVIS overlays.
    """
    frame = np.asarray(frame)
    labels = np.asarray(labels)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise VosError(f"blend: frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    if labels.shape != frame.shape[:2]:
        raise VosError(f"blend: labels {labels.shape} do not match the frame size {frame.shape[:2]}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise VosError(f"blend: label values must lie in 0..255, got {labels.min()}..{labels.max()}")
    if not 0.0 <= alpha <= 1.0:
        raise VosError(f"blend: alpha must lie in [0, 1], got {alpha}")
    # Whole-image table lookup and blend, then copy back the objects: whole-image cv2 passes are
    # cheaper than indexing the palette with the label array and blending only object pixels.
    index = labels.astype(np.uint8)
    colours = cv2.LUT(cv2.merge([index, index, index]), _PALETTE_LUT)
    blended = cv2.addWeighted(frame, 1.0 - alpha, colours, alpha, 0.0)
    out = frame.copy()
    np.copyto(out, blended, where=(index > 0)[..., None])
    if contours:
        out[object_contours(labels)] = 0
    return out


def available_mp4_codec() -> str:
    """The first encoder of :data:`MP4_CODECS` that the installed PyAV/FFmpeg build provides."""
    import av

    for name in MP4_CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # av raises UnknownCodecError (a ValueError) or FFmpeg errors
            continue
        return name
    raise VosError(f"this PyAV build has none of the mp4 encoders {', '.join(MP4_CODECS)}; "
                   "install a PyAV wheel with FFmpeg encoders (pip install av)")


class Mp4Writer:
    """Write RGB uint8 frames one by one into an mp4, atomically.

    Frames go to a temporary file beside ``path``; :meth:`close` renames it to ``path``. If an
    exception leaves the ``with`` block, the temporary file is removed and ``path`` is untouched.
    Odd frame sizes are padded by one replicated row/column (yuv420p needs even sizes).

        with Mp4Writer("overlay.mp4", fps=24) as writer:
            for frame in frames:          # H W 3 uint8
                writer.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float, codec: str | None = None, crf: int = 18,
                 comment: str | None = None):
        import av

        if not fps > 0:
            raise VosError(f"{path}: fps must be positive, got {fps}")
        self.path = Path(path)
        self.codec = codec or available_mp4_codec()
        self.fps = fps
        self.crf = crf
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # H, W of the frames given
        self._container = None
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._container = av.open(str(tmp), mode="w", format="mp4")
            if comment is not None:
                self._container.metadata["comment"] = comment
            self._stream = self._container.add_stream(self.codec, rate=Fraction(fps).limit_denominator(100000))
            self._stream.pix_fmt = "yuv420p"
        except Exception as exc:  # unknown codec name, unwritable folder
            self.abort()
            raise VosError(f"{self.path}: cannot start the {self.codec} mp4 encoder ({exc})") from exc

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VosError(f"{self.path}: frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if self.size is None:
            self.size = frame.shape[:2]
            self._stream.height = frame.shape[0] + frame.shape[0] % 2
            self._stream.width = frame.shape[1] + frame.shape[1] % 2
            if self.codec == "libx264":
                # "veryfast" trades file size for encoding speed; CRF keeps the quality.
                self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
            else:  # mpeg4 has no CRF; one bit per pixel and frame keeps it visually clean
                self._stream.bit_rate = int(self._stream.height * self._stream.width * self.fps)
        elif frame.shape[:2] != self.size:
            raise VosError(f"{self.path}: frame {self.frames_written} is {frame.shape[0]}x{frame.shape[1]} but the "
                           f"video is {self.size[0]}x{self.size[1]}; all frames must have the same size")
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
                raise VosError(f"{self.path}: no frames were written; nothing to save")
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
        aborted = RuntimeError("mp4 writing aborted")
        self._stack.__exit__(type(aborted), aborted, None)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
