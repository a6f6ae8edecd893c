"""Finding videos: a video file, a folder of frames, or a folder holding several of either."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vos.infra.errors import UserError
from vos.infra.video_reader.source import FRAME_SUFFIXES, VIDEO_SUFFIXES


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def visible_entries(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, editor swap files) are never frames or videos.
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def is_frame_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in FRAME_SUFFIXES


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(is_frame_file(p) for p in visible_entries(path))


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
    if is_frame_folder(path):
        return [path]
    videos = [p for p in visible_entries(path) if is_video_file(p) or is_frame_folder(p)]
    if not videos:
        raise UserError(f"{path}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no folders of frames "
                       f"({'/'.join(FRAME_SUFFIXES)}) found here; point to a video, a frame folder or a folder "
                       "holding those (e.g. DAVIS/JPEGImages/480p)")
    return videos
