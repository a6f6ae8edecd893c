"""Video files decoded with PyAV (FFmpeg): sequential decoding, the reference the other backends
are held against, and the reader a random-access backend hands over to when it fails."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vos.infra.errors import UserError
from vos.infra.video_reader.source import FRAME_FOLDER_FPS, VideoSource, check_chunk_size, warn_short_video


def announced_frames(path: Path) -> int:
    """The frame count in the container's header (0 when it has none, e.g. Matroska), read by PyAV."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames if container.streams.video else 0
    except Exception:  # av.error.*: unreadable; decord's own checks report on the file
        return 0


def _count_packets(container, stream) -> int:
    """Non-empty packets of ``stream``, demuxed without decoding; a file cut short ends the count."""
    import av

    count = 0
    try:
        for packet in container.demux(stream):
            count += bool(packet.size)
    except av.error.FFmpegError:
        pass  # the packets before the damage are counted
    return count


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that put a decoded PyAV frame upright (its display matrix)."""
    return round(frame.rotation / 90) % 4


class PyAVSource(VideoSource):
    """A video file decoded with PyAV (FFmpeg). Decoding is sequential: reading frames costs a
    decode from the start up to the last requested frame, so prefer ``iter_chunks``.

    Frames are turned upright by the stream's display rotation (as decord does). The frame count is
    the header's (or, without one, the packets'); when the file holds fewer packets than its header
    announces it is decoded once to count the frames that decode (see :func:`open_video`).
    """

    backend = "pyav"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None, threads: int = 0):
        import av

        self.threads = threads
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise UserError(f"{path}: the file has no video stream (no frames); give a video file")
                stream = container.streams.video[0]
                height, width = stream.codec_context.height, stream.codec_context.width
                rate = stream.average_rate or stream.guessed_rate or Fraction(FRAME_FOLDER_FPS)
                # Matroska/WebM do not store a frame count: the packets tell (demuxing, no decoding).
                announced = stream.frames
                packets = _count_packets(container, stream)
        except UserError:
            raise
        except Exception as exc:  # av.error.* for unreadable / non-video files
            raise UserError(f"{path}: cannot decode this file as a video ({exc}); check that it is a complete "
                           "video file or re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)") from exc
        short = bool(announced) and packets < announced
        decodable, self.quarter_turns = self._probe(path, count_all=short)
        if decodable == 0:
            raise UserError(f"{path}: no frame of this video can be decoded (its header announces "
                           f"{announced or packets}); the file is damaged: re-encode or remove it")
        total = announced or packets
        if short and decodable < announced:
            warn_short_video(path, decodable, announced)
            total = decodable
        if self.quarter_turns % 2:
            height, width = width, height
        super().__init__(path, total, height, width, float(rate), stride, max_frames)

    def _open_stream(self, container):
        stream = container.streams.video[0]
        if self.threads == 1:
            stream.codec_context.thread_count = 1
        else:
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
        return stream

    def _probe(self, path: Path, count_all: bool) -> tuple[int, int]:
        """(frames that decode: all of them with ``count_all``, else at most 1; quarter turns)."""
        import av

        decoded, turns = 0, 0
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(self._open_stream(container)):
                    if decoded == 0:
                        turns = _quarter_turns(frame)
                    decoded += 1
                    if not count_all:
                        break
        except av.error.FFmpegError:
            pass  # the frames before the damage are the ones that decode
        return decoded, turns

    def _decode(self, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Decode from the start, yielding (source index, upright frame) for indices in ``wanted``."""
        import av

        last = max(wanted)
        try:
            with av.open(str(self.path)) as container:
                for index, frame in enumerate(container.decode(self._open_stream(container))):
                    if index in wanted:
                        yield index, np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), self.quarter_turns))
                    if index >= last:
                        return
        except av.error.FFmpegError as exc:
            raise UserError(f"{self.path}: decoding failed ({exc}); re-encode the video") from exc
        raise UserError(f"{self.path}: the video ended before frame {last} (its header promised more frames); "
                       "re-encode it or lower max_frames")

    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        decoded = dict(self._decode(set(source_indices)))
        return self._check_shape(np.stack([decoded[i] for i in source_indices]), f"frame {source_indices[0]}")

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        # One sequential decode for the whole video instead of one per chunk.
        check_chunk_size(chunk_size)
        yield from self.decode_chunks(self.source_indices.tolist(), chunk_size)

    def decode_chunks(self, source_indices: list[int], chunk_size: int) -> Iterator[np.ndarray]:
        """Original frames ``source_indices`` (increasing) in chunks of ``chunk_size``, decoded in
        one pass from the start of the file."""
        chunk = []
        for index, frame in self._decode(set(source_indices)):
            chunk.append(frame)
            if len(chunk) == chunk_size:
                yield self._check_shape(np.stack(chunk), f"frame {index}")
                chunk = []
        if chunk:
            yield self._check_shape(np.stack(chunk), f"frame {index}")
