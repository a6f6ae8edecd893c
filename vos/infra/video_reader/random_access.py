"""Random-access decoders (torchcodec, decord) and their hand-over to PyAV.

Such a decoder reads any frames by index in batches. When it fails on some of them (decord 0.6
mis-decodes some files; any decoder can meet a damaged packet), a source opened with
``pyav_fallback`` (``open_video(backend="auto")``) reads them with PyAV, from then on for the whole
file, with a warning; without it the failure is a one-line error.
"""

from __future__ import annotations

import abc
import warnings
from typing import Iterator

import numpy as np

from vos.infra.errors import UserError
from vos.infra.video_reader.pyav_source import PyAVSource
from vos.infra.video_reader.source import VideoSource, check_chunk_size


class RandomAccessSource(VideoSource):
    """A source whose decoder reads frames by index; subclasses give ``_decode_batch``."""

    # what the one-line error advises after a failed read
    advice = "; try backend='pyav' or re-encode the video"

    def _init_fallback(self, threads: int, pyav_fallback: bool) -> None:
        self.threads = threads
        self.pyav_fallback = pyav_fallback
        self._pyav: PyAVSource | None = None  # the reader after a fallback

    @abc.abstractmethod
    def _decode_batch(self, source_indices: list[int]) -> tuple[np.ndarray | None, str | None]:
        """(frames (n, H, W, 3) uint8 RGB, None), or (None, what went wrong, naming the file)."""

    def _decode_checked(self, source_indices: list[int]) -> tuple[np.ndarray | None, str | None]:
        frames, problem = self._decode_batch(source_indices)
        if problem is None and frames.shape[1:] != (self.height, self.width, 3):
            return None, (f"{self.path}: {self.backend} decoded frame {source_indices[0]} as {frames.shape[1:3]}, "
                          f"expected {(self.height, self.width)}")
        return frames, problem

    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        if self._pyav is None:
            frames, problem = self._decode_checked(source_indices)
            if problem is None:
                return frames
            if not self.pyav_fallback:
                raise UserError(problem + self.advice)
            warnings.warn(f"{problem}; reading the file with PyAV from now on")
            self._pyav = PyAVSource(self.path, threads=self.threads)
            self.backend = "pyav"
        return self._pyav._read_source_frames(source_indices)

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        check_chunk_size(chunk_size)
        for start in range(0, self.num_frames, chunk_size):
            if self._pyav is not None:
                # after a fallback, the remaining frames in one sequential decode (not one per chunk)
                yield from self._pyav.decode_chunks(self.source_indices[start:].tolist(), chunk_size)
                return
            yield self.read_frames(range(start, min(start + chunk_size, self.num_frames)))
