"""Reading videos: video files (decord, PyAV fallback) and folders of frames (PIL).

Every source yields RGB uint8 frames ``(H, W, 3)``, in bounded-memory chunks ``(n, H, W, 3)``.
``stride`` and ``max_frames`` select frames up front: frame ``i`` of a source is frame
``i * stride`` of the original, and there are at most ``max_frames`` of them.

Typical use::

    for path in discover_videos("DAVIS/JPEGImages/480p"):
        video = open_video(path, stride=2)
        for chunk in video.iter_chunks(16):   # n H W 3, uint8 RGB
            ...
"""

from __future__ import annotations

import abc
import math
import os
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from vos.infra.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# Frame folders carry no timing; 24 fps is the usual rate of DAVIS / YouTube-VOS sources.
FRAME_FOLDER_FPS = 24.0
BACKENDS = ("auto", "decord", "pyav")


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _visible_entries(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, editor swap files) are never frames or videos.
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _is_frame_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in FRAME_SUFFIXES


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(_is_frame_file(p) for p in _visible_entries(path))


def discover_videos(path: str | os.PathLike) -> list[Path]:
    """The videos named by ``path``, sorted naturally.

    A video file or a folder of frames is one video (``[path]``); a folder holding video files
    and/or frame folders is a batch (each of them). Other entries of a batch folder are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a video file, a folder of frames or a folder of videos")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise UserError(f"{path}: not a supported video file (expected one of {', '.join(VIDEO_SUFFIXES)}) "
                           f"or a folder of {'/'.join(FRAME_SUFFIXES)} frames")
        return [path]
    if _is_frame_folder(path):
        return [path]
    videos = [p for p in _visible_entries(path) if _is_video_file(p) or _is_frame_folder(p)]
    if not videos:
        raise UserError(f"{path}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no folders of frames "
                       f"({'/'.join(FRAME_SUFFIXES)}) found here; point to a video, a frame folder or a folder "
                       "holding those (e.g. DAVIS/JPEGImages/480p)")
    return videos


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Any PIL image as an RGB uint8 array (H, W, 3).

    16-bit grayscale keeps its most significant 8 bits (PIL's own conversion would clip at 255);
    alpha is dropped, palette and grayscale images are expanded.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image).astype(np.int64)
        # PIL stores 16-bit PNGs as I;16 or I (0..65535); 8-bit data in mode I stays as is.
        gray = (wide >> 8) if wide.max(initial=0) > 255 else wide
        return np.repeat(gray.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _check_stride(stride: int, max_frames: int | None) -> None:
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise UserError(f"stride must be a positive integer, got {stride!r}")
    if max_frames is not None and (not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
        raise UserError(f"max_frames must be a positive integer or None, got {max_frames!r}")


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise UserError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _selected_count(total: int, stride: int, max_frames: int | None) -> int:
    count = math.ceil(total / stride)
    return count if max_frames is None else min(count, max_frames)


def fitting_stride(num_frames: int, clip_frames: int, stride: int) -> int:
    """``stride``, reduced (down to 1) so that a clip of ``clip_frames`` frames taken every
    ``stride`` frames fits in a video of ``num_frames`` frames; a one-frame clip keeps it."""
    if clip_frames <= 1:
        return stride
    return max(1, min(stride, (num_frames - 1) // (clip_frames - 1)))


class VideoSource(abc.ABC):
    """Frames of one video after stride/max_frames selection.

    Attributes: ``name`` (file stem or folder name), ``path``, ``backend`` ("decord", "pyav" or
    "pil"), ``num_frames`` (selected frames), ``height``, ``width``, ``fps`` (rate of the selected
    frames, i.e. source rate / stride), ``stride``, ``frame_names`` (one per selected frame: the
    file stem for frame folders, the zero-padded original index ``00012`` for video files, so
    results can be written with DAVIS file names).
    """

    backend: str

    def __init__(self, path: Path, total_frames: int, height: int, width: int, source_fps: float,
                 stride: int, max_frames: int | None):
        if total_frames <= 0:
            raise UserError(f"{path}: the video has no frames; check the file (re-encode or re-export it)")
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        self.stride = stride
        self.num_frames = _selected_count(total_frames, stride, max_frames)
        self.height, self.width = height, width
        self.fps = source_fps / stride
        self.source_indices = np.arange(self.num_frames) * stride  # original index of each frame

    @property
    def frame_names(self) -> list[str]:
        return [f"{i:05d}" for i in self.source_indices]

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, frames={self.num_frames}, size={self.height}x{self.width}, "
                f"fps={self.fps:g}, backend={self.backend!r})")

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Yield consecutive selected frames as uint8 RGB arrays (n, H, W, 3), n <= chunk_size."""
        _check_chunk_size(chunk_size)
        for start in range(0, self.num_frames, chunk_size):
            yield self.read_frames(range(start, min(start + chunk_size, self.num_frames)))

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Selected frames ``indices`` (positions after stride) as uint8 RGB (n, H, W, 3)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise UserError(f"{self.path}: frame index {bad[0]} out of range 0..{self.num_frames - 1}")
        if not indices:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        return self._read_source_frames([int(self.source_indices[i]) for i in indices])

    @abc.abstractmethod
    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        """Original frames ``source_indices`` (in the given order) as uint8 RGB (n, H, W, 3)."""

    def _check_shape(self, frames: np.ndarray, where: str) -> np.ndarray:
        if frames.shape[1:] != (self.height, self.width, 3):
            raise UserError(f"{self.path}: {where} decoded as {frames.shape[1:3]}, expected "
                           f"{(self.height, self.width)}; re-encode the video with a fixed frame size")
        return frames


class FrameFolderSource(VideoSource):
    """A folder of image files (one frame each), read with PIL; frames are ordered naturally by name."""

    backend = "pil"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None):
        entries = _visible_entries(path)
        if not entries:
            raise UserError(f"{path}: the frame folder is empty; put {'/'.join(FRAME_SUFFIXES)} frames in it")
        others = [p for p in entries if not _is_frame_file(p)]
        if others:
            raise UserError(f"{path}: '{others[0].name}' is not a {'/'.join(FRAME_SUFFIXES)} frame; a frame folder "
                           "must hold only frames (move other files out or convert them)")
        self.files = entries
        selected = entries[::stride][:max_frames]
        size = None
        for file in selected:  # headers only: cheap, and catches bad files before any work is done
            file_size = self._header_size(file)
            if size is None:
                size = file_size
            elif file_size != size:
                raise UserError(f"{file}: frame is {file_size[1]}x{file_size[0]} (HxW) but {selected[0].name} is "
                               f"{size[1]}x{size[0]}; all frames of a video must have the same size")
        super().__init__(path, len(entries), size[1], size[0], FRAME_FOLDER_FPS, stride, max_frames)

    @staticmethod
    def _header_size(file: Path) -> tuple[int, int]:
        try:
            with Image.open(file) as image:
                return image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{file}: cannot read this frame ({exc}); replace or remove it") from exc

    @property
    def frame_names(self) -> list[str]:
        return [self.files[i].stem for i in self.source_indices]

    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        frames = []
        for i in source_indices:
            try:
                with Image.open(self.files[i]) as image:
                    frames.append(to_rgb_uint8(image))
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:  # truncated/corrupt image data
                raise UserError(f"{self.files[i]}: cannot decode this frame ({exc}); replace or remove it") from exc
        return self._check_shape(np.stack(frames), f"frame {self.files[source_indices[0]].name}")


_DECORD_ADVICE = "; try backend='pyav' or re-encode the video"


class DecordSource(VideoSource):
    """A video file decoded with decord (random access, batched ``get_batch``). decord applies the
    display rotation itself. Opening checks the frame count against the container's header and
    decodes the last frame: decord 0.6 opens some files it then mis-decodes (e.g. small MPEG-4
    frames come out with the wrong buffer size), and cut-short files give it fewer frames than
    announced or an undecodable last frame; all of these raise UserError here, before any work.

    With ``pyav_fallback`` (``open_video(backend="auto")``), frames that decord fails on later are
    read with PyAV, from then on for the whole file, with a warning: decord 0.6 also mis-decodes
    some frames of files whose last frame it decodes."""

    backend = "decord"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None, threads: int = 0,
                 pyav_fallback: bool = False):
        import decord  # optional: only present on x86_64

        try:
            self.reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
            total = len(self.reader)
            height, width = self.reader[0].shape[:2] if total else (0, 0)
            fps = float(self.reader.get_avg_fps())
        except Exception as exc:  # decord raises bare RuntimeErrors/DECORDErrors for anything
            raise UserError(f"{path}: decord cannot decode this file ({_decord_message(exc)}); "
                           "try backend='pyav' or re-encode the video") from exc
        announced = _announced_frames(path)
        if total and total < announced:
            raise UserError(f"{path}: decord finds {total} of the {announced} frames the header announces (cut short "
                           "or damaged); backend='pyav' (or 'auto') reads the frames that decode")
        super().__init__(path, total, height, width, fps, stride, max_frames)
        self.threads = threads
        self.pyav_fallback = pyav_fallback
        self._pyav: PyAVSource | None = None  # the reader after a fallback
        _, problem = self._decord_frames([total - 1])
        if problem is not None:  # refused here, so that open_video(backend="auto") reads the file with PyAV
            raise UserError(problem + _DECORD_ADVICE)

    def _read_source_frames(self, source_indices: list[int]) -> np.ndarray:
        if self._pyav is None:
            frames, problem = self._decord_frames(source_indices)
            if problem is None:
                return frames
            if not self.pyav_fallback:
                raise UserError(problem + _DECORD_ADVICE)
            warnings.warn(f"{problem}; reading the file with PyAV from now on")
            self._pyav = PyAVSource(self.path, threads=self.threads)
            self.backend = "pyav"
        return self._pyav._read_source_frames(source_indices)

    def _decord_frames(self, source_indices: list[int]) -> tuple[np.ndarray | None, str | None]:
        """(frames, None), or (None, what went wrong) when decord fails or returns frames of another size."""
        try:
            frames = self.reader.get_batch(source_indices).asnumpy()
        except Exception as exc:  # decord raises bare RuntimeErrors/DECORDErrors for anything
            return None, (f"{self.path}: decord failed on frames {source_indices[0]}..{source_indices[-1]} "
                          f"({_decord_message(exc)})")
        if frames.shape[1:] != (self.height, self.width, 3):
            return None, (f"{self.path}: decord decoded frame {source_indices[0]} as {frames.shape[1:3]}, expected "
                          f"{(self.height, self.width)}")
        return frames, None

    def iter_chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        _check_chunk_size(chunk_size)
        for start in range(0, self.num_frames, chunk_size):
            if self._pyav is not None:
                # after a fallback, the remaining frames in one sequential decode (not one per chunk)
                yield from self._pyav.decode_chunks(self.source_indices[start:].tolist(), chunk_size)
                return
            yield self.read_frames(range(start, min(start + chunk_size, self.num_frames)))


def _announced_frames(path: Path) -> int:
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


def warn_short_video(path: Path, decodable: int, announced: int) -> None:
    warnings.warn(f"{path}: only {decodable} of the {announced} frames its header announces can be decoded "
                  f"(cut short or damaged); using those {decodable}", stacklevel=3)


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
        _check_chunk_size(chunk_size)
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


def open_video(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
               backend: str = "auto", threads: int = 0) -> VideoSource:
    """Open a video file or a folder of frames.

    ``backend`` applies to video files: "decord", "pyav", or "auto" (decord when it is installed
    and can decode the file's last frame, else PyAV; frames decord fails on later are read with
    PyAV, with a warning). Frame folders are always read with PIL
    (backend "pil"). ``threads``: decoder threads (0: the decoder's automatic choice; 1 suits
    DataLoader workers, which are the parallelism there).

    Both backends give frames upright, with the display rotation of the file applied. A video file
    that decodes fewer frames than its header announces (cut short or damaged) is read as the
    frames that decode, with a warning naming the file and both counts; a file of which no frame
    decodes is an error.
    """
    path = Path(path)
    _check_stride(stride, max_frames)
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
    if backend == "decord":
        if not decord_available():
            raise UserError("decord is not installed on this machine; use backend='pyav' (or 'auto')")
        return DecordSource(path, stride, max_frames, threads)
    if decord_available():
        try:
            return DecordSource(path, stride, max_frames, threads, pyav_fallback=True)
        except UserError:
            pass  # PyAV opens more containers than decord, counts what decodes and diagnoses precisely
    return PyAVSource(path, stride, max_frames, threads)
