"""Reading videos: video files (torchcodec, decord, PyAV) and folders of frames (PIL).

Every source yields RGB uint8 frames ``(H, W, 3)``, in bounded-memory chunks ``(n, H, W, 3)``.
``stride`` and ``max_frames`` select frames up front: frame ``i`` of a source is frame
``i * stride`` of the original, and there are at most ``max_frames`` of them.

Typical use::

    for path in discover_videos("DAVIS/JPEGImages/480p"):
        video = open_video(path, stride=2)
        for chunk in video.iter_chunks(16):   # n H W 3, uint8 RGB
            ...

One module per backend: :mod:`.torchcodec_source`, :mod:`.decord_source`, :mod:`.pyav_source`,
:mod:`.frame_folder`; what they share is in :mod:`.source` and :mod:`.random_access`.
"""

from __future__ import annotations

import os
from pathlib import Path

from vos.infra.errors import UserError
from vos.infra.video_reader.decord_source import DecordSource, decord_available
from vos.infra.video_reader.discovery import discover_videos, natural_key
from vos.infra.video_reader.frame_folder import FrameFolderSource, to_rgb_uint8
from vos.infra.video_reader.pyav_source import PyAVSource
from vos.infra.video_reader.source import (FRAME_FOLDER_FPS, FRAME_SUFFIXES, VIDEO_SUFFIXES, VideoSource, check_stride,
                                           fitting_stride, warn_short_video)
from vos.infra.video_reader.torchcodec_source import TorchCodecSource, torchcodec_available

__all__ = ["BACKENDS", "FRAME_FOLDER_FPS", "FRAME_SUFFIXES", "VIDEO_SUFFIXES", "DecordSource", "FrameFolderSource",
           "PyAVSource", "TorchCodecSource", "VideoSource", "decord_available", "discover_videos", "fitting_stride",
           "natural_key", "open_video", "to_rgb_uint8", "torchcodec_available", "warn_short_video"]

BACKENDS = ("auto", "torchcodec", "decord", "pyav")


def open_video(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
               backend: str = "auto", threads: int = 0) -> VideoSource:
    """Open a video file or a folder of frames.

    ``backend`` applies to video files: "torchcodec", "decord", "pyav", or "auto": torchcodec where
    it imports and its FFmpeg libraries load and it opens the file, else decord where it is
    installed and decodes the file's last frame (for reads by index; its ``iter_chunks`` is one
    sequential PyAV decode, see :class:`DecordSource`), else PyAV; frames torchcodec or decord fail
    on later are read with PyAV, with a warning. Frame folders are always read with PIL (backend
    "pil"). ``threads``: decoder threads (0: the decoder's automatic choice; 1 suits DataLoader
    workers, which are the parallelism there).

    Every backend gives frames upright, with the display rotation of the file applied. A video file
    that decodes fewer frames than its header announces (cut short or damaged) is read as the
    frames that decode, with a warning naming the file and both counts (decord alone refuses it);
    a file of which no frame decodes is an error.
    """
    path = Path(path)
    check_stride(stride, max_frames)
    if backend not in BACKENDS:
        raise UserError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a video file or a folder of frames")
    if path.is_dir():
        return FrameFolderSource(path, stride, max_frames)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path}: not a supported video file (expected one of {', '.join(VIDEO_SUFFIXES)})")
    if backend == "pyav":
        return PyAVSource(path, stride, max_frames, threads)
    if backend == "torchcodec":
        if not torchcodec_available():
            raise UserError("torchcodec cannot be loaded on this machine (pip install torchcodec, and FFmpeg 4 to 9 "
                           "for its libraries, e.g. apt-get install ffmpeg); use backend='pyav' (or 'auto')")
        return TorchCodecSource(path, stride, max_frames, threads)
    if backend == "decord":
        if not decord_available():
            raise UserError("decord is not installed on this machine; use backend='pyav' (or 'auto')")
        return DecordSource(path, stride, max_frames, threads)
    if torchcodec_available():
        try:
            return TorchCodecSource(path, stride, max_frames, threads, pyav_fallback=True)
        except UserError:
            pass  # decord or PyAV may open it; PyAV counts what decodes and diagnoses precisely
    if decord_available():
        try:
            return DecordSource(path, stride, max_frames, threads, pyav_fallback=True, sequential_with_pyav=True)
        except UserError:
            pass
    return PyAVSource(path, stride, max_frames, threads)
