"""Folders of frames (one image file per frame), read with PIL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vos.infra.errors import UserError
from vos.infra.video_reader.discovery import is_frame_file, visible_entries
from vos.infra.video_reader.source import FRAME_FOLDER_FPS, FRAME_SUFFIXES, VideoSource


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


class FrameFolderSource(VideoSource):
    """A folder of image files (one frame each), read with PIL; frames are ordered naturally by name."""

    backend = "pil"

    def __init__(self, path: Path, stride: int = 1, max_frames: int | None = None):
        entries = visible_entries(path)
        if not entries:
            raise UserError(f"{path}: the frame folder is empty; put {'/'.join(FRAME_SUFFIXES)} frames in it")
        others = [p for p in entries if not is_frame_file(p)]
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
