"""Where `vos segment` may write: its result folders and overlays, checked before any frame is
decoded, by the rules of :mod:`vos.infra.outputs` that every command follows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from vos.infra.errors import UserError
from vos.infra.outputs import (MARKER, resolve_path, check_output_dir, check_output_file, is_within,
                               remove_stale_temporaries)
from vos.segment.overlay import is_our_overlay

SEGMENT_COMMAND = "vos segment"
_FRAME_NUMBER_PNG = re.compile(r"\d+\.png")
_TEMPORARY_PNG = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp\.png")  # vos.infra.fileio.atomic_path's, left by a kill


def segment_result_owned(video: Path) -> Callable[[Path], bool]:
    """A result folder of ``vos segment`` without marker (written before markers existed, or an
    unfinished ``.partial``): files only, each a frame PNG (``NNNNN.png`` or named as a frame of the
    input frame folder ``video``), a PNG temporary of ours, or the marker."""
    def owned(folder: Path) -> bool:
        frame_stems = {p.stem for p in Path(video).iterdir()} if Path(video).is_dir() else set()
        for entry in Path(folder).iterdir():
            name = entry.name
            if not (entry.is_file() and (name == MARKER or _TEMPORARY_PNG.fullmatch(name) or (
                    entry.suffix == ".png" and (_FRAME_NUMBER_PNG.fullmatch(name) or entry.stem in frame_stems)))):
                return False
        return True
    return owned


def check_segment_jobs(jobs: Sequence, input_path: Path, batch: bool, overwrite: bool = False,
                       announce: Callable[[str], None] = print) -> None:
    """Preflight of ``vos segment`` for jobs with ``video``, ``out_dir`` and ``overlay`` (see
    :class:`vos.segment.VideoJob`): every result folder and overlay is outside the inputs, writable,
    and new or ours (or ``overwrite``). Stale temporaries of the overlays are removed;
    ``announce`` receives one line per earlier result that will be replaced."""
    input_path = resolve_path(input_path)
    videos = {resolve_path(job.video) for job in jobs}

    def conflict(target: Path) -> Optional[str]:
        target = resolve_path(target)
        if target in videos:
            return "is an input video"
        if any(parent in videos for parent in target.parents):
            return "lies inside an input video's frame folder"
        if is_within(input_path, target):
            return f"contains the input {input_path}"
        if batch and target.parent == input_path:
            return f"lies in the input folder {input_path} (the next run would take it for a video)"
        return None

    for job in jobs:
        problem = conflict(job.out_dir)
        if problem:
            raise UserError(f"--out: the result folder {job.out_dir} {problem}; choose an --out outside the input")
        state = check_output_dir(job.out_dir, SEGMENT_COMMAND, overwrite, owned=segment_result_owned(job.video))
        if state == "ours":
            announce(f"{SEGMENT_COMMAND}: replacing earlier result in {job.out_dir}")
        elif state == "overwrite":
            announce(f"{SEGMENT_COMMAND}: --overwrite: replacing {job.out_dir}")
        # the result is written to OUT/<name>.partial first, which must be an unfinished result of ours
        partial = job.out_dir.with_name(job.out_dir.name + ".partial")
        if (partial.exists() or partial.is_symlink()) and not overwrite and not (
                partial.is_dir() and not partial.is_symlink() and segment_result_owned(job.video)(partial)):
            raise UserError(f"{partial} exists and is not an unfinished result of `{SEGMENT_COMMAND}`; "
                           "pass --overwrite to replace it, or choose another --out")
        if job.overlay is None:
            continue
        problem = conflict(job.overlay)
        if problem is None and is_within(job.overlay, job.out_dir):
            problem = f"lies inside the result folder {job.out_dir}"
        if problem:
            raise UserError(f"--overlay: {job.overlay} {problem}; choose an --overlay outside the input")
        check_output_file(job.overlay, "--overlay", is_our_overlay, f"an overlay written by `{SEGMENT_COMMAND}`",
                          overwrite)
        remove_stale_temporaries(job.overlay)
