"""Atomic file writes (a reader never sees a half-written file, a crash never loses the old one), and
loading users' PyTorch files without running code from them."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Iterator

from vos.infra.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary file keeps the suffix of ``path`` so that writers choosing a format by suffix
    (PIL, OpenCV, torch) behave the same.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """The text of a file the user names (UTF-8, a BOM allowed); a one-line UserError when it is not
    text. ``what`` names the file expected, e.g. "a sequence list"."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (binary or damaged), expected {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}), expected {what}") from None


def read_json(path: str | os.PathLike, what: str):
    """The value a JSON file holds; a one-line UserError when it is not JSON (damaged, cut short,
    binary). ``what`` names the file expected."""
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: damaged: JSON nested too deeply, expected {what}") from None
    except ValueError as exc:  # json.JSONDecodeError
        cut = "Expecting" in str(exc) and getattr(exc, "pos", -1) >= len(text.rstrip())
        raise UserError(f"{path}: damaged: {'cut short' if cut else 'not valid JSON'} ({exc}), expected {what}") from None


def _numpy_array_globals() -> list:
    """What unpickling a numeric numpy array needs; rebuilding one runs no code of the file's choice."""
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return [multiarray._reconstruct, np.ndarray, np.dtype] + [
        type(np.dtype(name)) for name in ("uint8", "uint32", "int32", "int64", "float32", "float64", "bool")]


def load_torch_file(path: str | os.PathLike, expected: str, allow_numpy_arrays: bool = False,
                    safe_globals: list | tuple = ()):
    """Load a user's PyTorch file without running code from it (``torch.load(weights_only=True)``).

    Only tensors and plain Python values (plus ``safe_globals``, and numeric numpy arrays with
    ``allow_numpy_arrays``) are rebuilt; a pickle asking for anything else is refused. Every failure is
    a one-line :class:`UserError` saying what the file is not; ``expected`` names what it should be
    (e.g. "a checkpoint of `vos train`").
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found; expected {expected}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not {expected}")
    allowed = list(safe_globals) + (_numpy_array_globals() if allow_numpy_arrays else [])
    try:
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes: the error below says it all
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files: all are the user's to fix
        raise UserError(_unloadable(path, exc, expected)) from None


ZIP_MAGIC = b"PK\x03\x04"  # a local file header: how a zip (torch.save's format) begins


def _cut_short(path: Path, head: bytes, error: str) -> bool:
    """Whether ``path`` is a PyTorch file whose end is missing: a zip that begins as one but lacks its
    closing directory (which a zip keeps at its very end), or a pickle that ends too soon."""
    if head.startswith(ZIP_MAGIC):
        return not zipfile.is_zipfile(path)
    return head[:1] == b"\x80" and ("truncated" in error or "Ran out of input" in error)


def _unloadable(path: Path, exc: Exception, expected: str) -> str:
    """One line on why ``path`` could not be loaded; never torch's advice to load it unsafely."""
    text = str(exc)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return (f"{path}: refused: the file asks to run Python code ({code.group(1)}) when loaded; {expected} "
                "holds only tensors and plain values. Do not load files from untrusted sources")
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return f"{path} is empty, not {expected}"
    if _cut_short(path, head, text):
        return (f"{path}: damaged: cut short (an interrupted download or copy, or a full disk); "
                f"copy or download it again (expected {expected})")
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        detail = re.search(r"Unsupported operand \d+|Unsupported class [\w.]+", text)
        reason = detail.group(0) if detail else f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        if "weights_only" in reason:
            reason = type(exc).__name__
        return f"{path}: a damaged or unsupported PyTorch/pickle file ({reason}), not {expected}"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut multi-byte character at the end is fine
        is_text = b"\x00" not in head
    except UnicodeDecodeError:
        is_text = False
    if is_text:
        return f"{path} is a text file, not {expected}"
    return f"{path} is not a PyTorch file (neither a zip archive nor a pickle), not {expected}"
