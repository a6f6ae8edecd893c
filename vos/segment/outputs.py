"""Where `vos segment` may write: its result folders and overlays, checked before any frame is
decoded, by the rules of :mod:`vos.infra.outputs` that every command follows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

from vos.infra.errors import UserError
from vos.infra.outputs import (MARKER, check_output_dir, check_output_file, check_outside_datasets, is_within,
                               marked_by, read_marker, remove_stale_temporaries, resolve_path, write_marker)
from vos.segment.overlay import is_our_overlay

SEGMENT_COMMAND = "vos segment"
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp\.(png|json)")  # vos.infra.fileio.atomic_path's, left by a kill


def is_result_file(entry: Path) -> bool:
    """An entry `vos segment` writes into a result folder: a PNG, the marker, or a temporary of
    either. Anything else was put there by someone else and is not deleted with the result."""
    return entry.is_file() and not entry.is_symlink() and (
        entry.suffix == ".png" or entry.name == MARKER or _TEMPORARY.fullmatch(entry.name) is not None)


def partial_folder(out_dir: Path) -> Path:
    """Where a result is written before it takes its final name ``out_dir``."""
    return out_dir.with_name(out_dir.name + ".partial")


def check_partial_folder(out_dir: Path) -> None:
    """``<out_dir>.partial`` is absent, empty, or an unfinished result of ours (its marker is written
    when it is made; nothing but :func:`is_result_file` entries); anything else is the user's and is
    never replaced, with ``--overwrite`` neither."""
    partial = partial_folder(out_dir)
    if not (partial.exists() or partial.is_symlink()):
        return
    if partial.is_dir() and not partial.is_symlink() and (not any(partial.iterdir()) or (
            marked_by(partial, SEGMENT_COMMAND) is not None and all(map(is_result_file, partial.iterdir())))):
        return
    raise UserError(f"{partial} exists and is not an unfinished result of `{SEGMENT_COMMAND}` (no {MARKER}, or files "
                    f"it does not write), which writes {out_dir.name} there first; move it away (or delete it if "
                    "it is an unfinished result of 0.2 or earlier)")


def start_partial_result(out_dir: Path, video: Path) -> Path:
    """Make ``<out_dir>.partial`` anew, marked from the start as an unfinished result of ``video``, so an
    interrupted run leaves a folder the next run knows as its own; an earlier one is removed only
    when :func:`check_partial_folder` allows it."""
    check_partial_folder(out_dir)
    partial = partial_folder(out_dir)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    write_marker(partial, SEGMENT_COMMAND, finished=False, video=str(resolve_path(video)))
    return partial


def is_finished_result(out_dir: Path, video: Path) -> bool:
    """Does ``out_dir`` hold a finished result of ``vos segment`` for ``video`` (the same file or
    frame folder)? Only its marker says so (markers of 0.2 have no ``finished``: written when done)."""
    marker = read_marker(out_dir) if out_dir.is_dir() else None
    return (marker is not None and marker["command"] == SEGMENT_COMMAND and marker.get("finished", True) is True
            and marker.get("video") == str(resolve_path(video)))


def check_segment_jobs(jobs: Sequence, input_path: Path, batch: bool, overwrite: bool = False,
                       announce: Callable[[str], None] = print, skip_existing: bool = False) -> list:
    """Preflight of ``vos segment`` for jobs with ``video``, ``out_dir`` and ``overlay`` (see
    :class:`vos.segment.VideoJob`): every result folder and overlay is outside the inputs and outside
    a dataset's frames and annotations, writable, and new or ours (or ``overwrite``). Returns the
    jobs to run: with ``skip_existing``, those whose folder holds no finished result of the same
    video (:func:`is_finished_result`); a folder we did not write is refused as always, never taken
    for done. Stale temporaries of the overlays are removed; ``announce`` receives one line per
    earlier result that will be replaced."""
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

    todo = []
    for job in jobs:
        problem = conflict(job.out_dir)
        if problem:
            raise UserError(f"--out: the result folder {job.out_dir} {problem}; choose an --out outside the input")
        if skip_existing and is_finished_result(job.out_dir, job.video):
            continue
        todo.append(job)
        state = check_output_dir(job.out_dir, SEGMENT_COMMAND, overwrite, writes=is_result_file)
        check_partial_folder(job.out_dir)
        if state == "ours":
            announce(f"{SEGMENT_COMMAND}: replacing earlier result in {job.out_dir}")
        elif state == "overwrite":
            announce(f"{SEGMENT_COMMAND}: --overwrite: replacing {job.out_dir}")
        if job.overlay is None:
            continue
        problem = conflict(job.overlay)
        if problem is None and is_within(job.overlay, job.out_dir):
            problem = f"lies inside the result folder {job.out_dir}"
        if problem:
            raise UserError(f"--overlay: {job.overlay} {problem}; choose an --overlay outside the input")
        check_outside_datasets(job.overlay, "--overlay")
        check_output_file(job.overlay, "--overlay", is_our_overlay, f"an overlay written by `{SEGMENT_COMMAND}`",
                          overwrite)
        remove_stale_temporaries(job.overlay)
    return todo
