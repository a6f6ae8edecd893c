"""Where commands may write: checked before any work starts, and never over files they did not write.

Rules shared by every command of ``vos`` and ``ssl-video``:

- an output never is, contains or lies inside an input (a video file, a frame folder, a folder of
  videos): writing there would replace or pollute the input;
- an existing output is replaced only when it is recognisably this command's own earlier result:
  a result folder carries a marker file :data:`MARKER` (``{"command": ..., ...}``) written with it
  (what a folder holds never makes it ours: numbered PNGs are also ground truth and frame dumps);
  a JSON file holds the keys the command writes; an overlay mp4 carries the command's comment tag.
  Anything else is replaced only with ``--overwrite``; otherwise a one-line error names the
  location and the way out;
- a result folder never lies inside the frames or annotations of a dataset (:func:`dataset_folder`),
  with ``--overwrite`` neither: those folders hold the ground truth;
- every output location is checked for writability first (a probe file is created and removed in
  the folder that will receive it), so that an unwritable ``--out`` fails before any frame is
  decoded, not after the work is done.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text

MARKER = ".vos-output.json"  # inside every result folder and run folder a command writes
RUN_CHECKPOINT = "last.pt"  # the checkpoint of a training run, in its run folder


def resolve_path(path: Path) -> Path:
    """``path`` absolute, with ``~`` expanded and symlinks resolved."""
    return Path(path).expanduser().resolve()


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies somewhere inside it (symlinks resolved)."""
    path, folder = resolve_path(path), resolve_path(folder)
    return path == folder or folder in path.parents


def check_writable(target: Path, flag: str) -> None:
    """Fail now, with one line, if ``target`` (a file or folder to be created or replaced) cannot be written.

    The folder that will receive ``target`` is the nearest existing one on its path (``target``
    itself when it is an existing folder); a probe file is created and removed there.
    """
    target = Path(target)
    probe_dir = target
    try:
        probe_dir = target if target.is_dir() else target.parent
        while not probe_dir.exists():
            if probe_dir.parent == probe_dir:
                break
            probe_dir = probe_dir.parent
        if probe_dir.exists() and not probe_dir.is_dir():
            raise UserError(f"{flag} {target}: {probe_dir} is a file, not a folder; choose another location")
        fd, probe = tempfile.mkstemp(prefix=".vos-write-check.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {target}: cannot write in {probe_dir} ({exc.strerror or exc}); "
                       "choose a writable location") from None


def read_marker(folder: Path) -> Optional[dict]:
    """The marker of a folder written by one of our commands, or None."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("command"), str) else None


def write_marker(folder: Path, command: str, **info) -> None:
    """Mark ``folder`` as written by ``command`` (with what it was written from, for the user)."""
    atomic_write_text(Path(folder) / MARKER, json.dumps({"command": command, **info}, indent=1, default=str) + "\n")


def marked_by(folder: Path, command: str) -> Optional[dict]:
    """The marker of ``folder`` if ``command`` wrote it (a real folder, not a symlink to one), else None."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None
    marker = read_marker(folder)
    return marker if marker is not None and marker["command"] == command else None


def is_dataset_root(folder: Path) -> bool:
    """A dataset in the DAVIS / YouTube-VOS layout: ``JPEGImages`` beside an ``Annotations*`` folder."""
    try:
        return (folder / "JPEGImages").is_dir() and any(
            entry.name.startswith("Annotations") and entry.is_dir() for entry in folder.iterdir())
    except OSError:
        return False


def dataset_folder(path: Path) -> Optional[Path]:
    """The ``JPEGImages`` or ``Annotations*`` folder of a dataset root (:func:`is_dataset_root`) that
    ``path`` is or lies in, or None. Checked on the path as given and with symlinks resolved, since
    datasets are often linked into place."""
    path = Path(path).expanduser()
    for candidate in dict.fromkeys((Path(os.path.abspath(path)), resolve_path(path))):
        for top in (candidate, *candidate.parents):
            if (top.name == "JPEGImages" or top.name.startswith("Annotations")) and is_dataset_root(top.parent):
                return top
    return None


def check_outside_datasets(target: Path, flag: str) -> None:
    """Refuse an output inside a dataset's frames or ground truth (see :func:`dataset_folder`)."""
    top = dataset_folder(target)
    if top is not None:
        what = "frames" if top.name == "JPEGImages" else "ground-truth annotations"
        raise UserError(f"{flag}: {target} lies inside {top}, the {what} of the dataset {top.parent}; "
                        f"choose a {flag} outside the dataset (--overwrite does not lift this)")


def check_output_dir(folder: Path, command: str, overwrite: bool = False, flag: str = "--out",
                     writes: Callable[[Path], bool] | None = None) -> str:
    """May ``command`` replace ``folder``? Returns "new" (absent or empty), "ours" (its own earlier
    result: the marker of ``command``, and with ``writes``, every entry one that ``command`` writes,
    so that a file the user added to a result is not deleted with it) or "overwrite" (anything
    else, ``overwrite`` given); raises :class:`UserError` otherwise, and for a folder inside a
    dataset's frames or annotations. Also checks that the location is writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file, not a folder; move it away or choose another {flag}")
    check_outside_datasets(folder, flag)
    check_writable(folder, flag)
    if not folder.exists() or not any(folder.iterdir()):
        return "new"
    marker = read_marker(folder)
    ours = marker is not None and marker["command"] == command
    added = next((entry for entry in folder.iterdir() if not writes(entry)), None) if ours and writes else None
    if ours and added is None:
        return "ours"
    if overwrite:
        return "overwrite"
    if added is not None:
        raise UserError(f"{folder} is an earlier result of `{command}` but also holds {added.name}, which "
                        f"`{command}` does not write; move that away, pass --overwrite to replace the folder, "
                        f"or choose another {flag}")
    raise UserError(f"{folder} already exists and holds no {MARKER} of `{command}`, so it is not its result; "
                    f"pass --overwrite to replace it (an earlier result without marker too), or choose another {flag}")


def replace_output_dir(partial: Path, folder: Path, command: str, overwrite: bool = False,
                       writes: Callable[[Path], bool] | None = None, **info) -> None:
    """Finish a result written into ``partial``: mark it as ``command``'s finished result, then put it
    at ``folder``, replacing an earlier result only under the rules of :func:`check_output_dir`."""
    write_marker(partial, command, finished=True, **info)
    if folder.exists() or folder.is_symlink():
        check_output_dir(folder, command, overwrite, writes=writes)
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder)
    partial.rename(folder)


def check_run_dir(folder: Path, command: str, resume: bool = False) -> None:
    """A training run's folder: new, empty, a run of ``command`` (marker), or, with ``resume``, a
    folder without marker holding :data:`RUN_CHECKPOINT` (runs written before markers existed).
    Also checks writability."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file, not a folder; choose another --out")
    check_writable(folder, "--out")
    if not folder.exists() or not any(folder.iterdir()):
        return
    marker = read_marker(folder)
    if marker is not None and marker["command"] == command:
        return
    if marker is None and resume and (folder / RUN_CHECKPOINT).is_file():
        return
    raise UserError(f"--out {folder} is not empty and holds no `{command}` run (no {MARKER}); "
                    "choose a new or empty --out")


def run_checkpoint(folder: Path, command: str, resume: bool) -> Optional[Path]:
    """The checkpoint a training run in ``folder`` continues from, or None for a new run.

    The folder must pass :func:`check_run_dir`. Without ``resume`` an existing checkpoint is never
    overwritten. With ``resume`` and no checkpoint yet, the run starts anew with a warning, as
    DINO's and MoCo's training scripts do: one command line serves both the first submission of a
    preemptible job and every restart."""
    check_run_dir(folder, command, resume)
    path = Path(folder) / RUN_CHECKPOINT
    if not resume:
        if path.exists():
            raise UserError(f"{path} already exists; pass --resume to continue that run or choose another --out")
        return None
    if not path.exists():
        warnings.warn(f"--resume: {path} does not exist yet; starting a new run")
        return None
    return path


def json_keys_owned(keys: Sequence[str] = (), prefix: str | None = None) -> Callable[[Path], bool]:
    """Ownership test for a JSON result file: a JSON object holding every key of ``keys`` (and, with
    ``prefix``, at least one key starting with it)."""
    def owned(path: Path) -> bool:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        return (isinstance(data, dict) and all(k in data for k in keys)
                and (prefix is None or any(str(k).startswith(prefix) for k in data)))
    return owned


def check_output_file(path: Path | str | None, flag: str, owned: Callable[[Path], bool], what: str,
                      overwrite: bool = False) -> None:
    """May a command write the file ``path``? It must not be an existing folder; an existing file must
    be ``owned`` (the command's own earlier ``what``) unless ``overwrite``. Also checks writability."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not overwrite and not owned(path):
        raise UserError(f"{flag} {path} already exists and is not {what}; pass --overwrite to replace it, "
                       "or choose another file name")
    check_writable(path, flag)


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files :func:`vos.infra.fileio.atomic_path` left beside ``path`` when a run was killed
    (``.<stem>.XXXXXXXX.tmp<suffix>``); only those of ``path`` itself."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}\.tmp{re.escape(path.suffix)}")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def remove_stale_temporaries(path: Path) -> int:
    """Delete :func:`stale_temporaries` of ``path``; returns how many. Call it only where no other
    process writes ``path`` at the same time."""
    removed = 0
    for tmp in stale_temporaries(path):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
