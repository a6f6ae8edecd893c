"""Video files decoded with decord (random access, batched ``get_batch``; wheels for x86_64 only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from vos.infra.errors import UserError
from vos.infra.video_reader.pyav_source import PyAVSource, announced_frames
from vos.infra.video_reader.random_access import RandomAccessSource
from vos.infra.video_reader.source import check_chunk_size


class DecordSource(RandomAccessSource):
    """A video file decoded with decord. decord applies the display rotation itself. Opening checks
    the frame count against the container's header and decodes the last frame: decord 0.6 opens
    some files it then mis-decodes (e.g. small MPEG-4 frames come out with the wrong buffer size),
    and cut-short files give it fewer frames than announced or an undecodable last frame; all of
    these raise UserError here, before any work. With ``pyav_fallback``, frames decord fails on
    later are read with PyAV (:class:`RandomAccessSource`): decord 0.6 also mis-decodes some frames
    of files whose last frame it decodes. With ``sequential_with_pyav`` (also set by
    ``open_video(backend="auto")``), ``iter_chunks`` is one sequential PyAV decode and decord reads
    only the frames asked for by index (``read_frames``): see below.

    Memory: to return the first frame of a read, decord 0.6 queues the file's packets ahead of its
    background decoding thread without a bound (``VideoReader::NextFrameImpl`` pushes a packet each
    time the frame queue is still empty), and that thread keeps decoding them into full-size RGB
    frames after the read has returned, up to the end of the file: a reader left open between
    reads grows by a frame's size (2.8 MB at 720p) per frame of the file. Every read here therefore
    ends with :meth:`_stop_read_ahead`, which stops that thread and frees its queues; the cost is
    that the next read decodes again from the key frame before it, which makes a sequential pass
    re-decode, chunk after chunk, the frames since the last key frame (8x slower than PyAV on a 720p
    video with one key frame every 250 frames; docs/benchmarks.md)."""

    backend = "decord"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None, threads: int = 0,
                 pyav_fallback: bool = False, sequential_with_pyav: bool = False):
        import decord  # optional: only present on x86_64

        try:
            self.reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
            total = len(self.reader)
            height, width = self.reader[0].shape[:2] if total else (0, 0)
            fps = float(self.reader.get_avg_fps())
        except Exception as exc:  # decord raises bare RuntimeErrors/DECORDErrors for anything
            raise UserError(f"{path}: decord cannot decode this file ({_decord_message(exc)}); "
                           "try backend='pyav' or re-encode the video") from exc
        announced = announced_frames(path)
        if total and total < announced:
            raise UserError(f"{path}: decord finds {total} of the {announced} frames the header announces (cut short "
                           "or damaged); backend='pyav' (or 'auto') reads the frames that decode")
        super().__init__(path, total, height, width, fps, stride, max_frames)
        self._init_fallback(threads, pyav_fallback)
        self.sequential_with_pyav = sequential_with_pyav
        _, problem = self._decode_checked([total - 1])
        if problem is not None:  # refused here, so that open_video(backend="auto") reads the file with PyAV
            raise UserError(problem + self.advice)

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        if not self.sequential_with_pyav:
            yield from super().iter_chunks(chunk_size)
            return
        check_chunk_size(chunk_size)
        reader = self._pyav or PyAVSource(self.path, threads=self.threads)
        yield from reader.decode_chunks(self.source_indices.tolist(), chunk_size)

    def _decode_batch(self, source_indices: list[int]) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.reader.get_batch(source_indices).asnumpy(), None
        except Exception as exc:  # decord raises bare RuntimeErrors/DECORDErrors for anything
            return None, (f"{self.path}: decord failed on frames {source_indices[0]}..{source_indices[-1]} "
                          f"({_decord_message(exc)})")
        finally:
            self._stop_read_ahead()

    def _stop_read_ahead(self) -> None:
        """Stop decord's background decoding of the packets it queued ahead, and free its frames.

        ``seek`` to another frame is decord's only entry point that clears its decoder (stops the
        thread, drops both queues); frame 0 is where the next read starts from anyway when it
        seeks (``SeekAccurate`` rewinds to the start first)."""
        try:
            self.reader.seek(0)
        except Exception:  # decord raises bare RuntimeErrors/DECORDErrors; a failed read says what went wrong
            pass


def _decord_message(exc: Exception) -> str:
    """First line of a decord error without its C++ log prefix ``[12:00:00] /src/file.cc:151: ``."""
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)[:200]


def decord_available() -> bool:
    """Whether decord imports (it has wheels for x86_64 only)."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True
