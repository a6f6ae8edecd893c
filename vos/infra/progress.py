"""Progress bars that suit both a terminal and a log file.

On a terminal a bar redraws in place (tqdm's default). Written to a file or a pipe, every redraw
would be another carriage-return update in the file: there the bar prints a plain line at most
every ``LOG_INTERVAL_S`` seconds, starting after the first ``LOG_INTERVAL_S`` (and at the end of
work that lasted that long), so an hour of training leaves about 60 lines and a task of a few
seconds none.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Iterable, Optional

from tqdm import tqdm

LOG_INTERVAL_S = 60.0


class _LineWriter:
    """A file for tqdm that turns its in-place redraws (``\\r`` + text + padding) into plain lines."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:  # the blank redraws that erase a bar are dropped
            self.stream.write(line + "\n")

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Optional[Iterable] = None, **tqdm_kwargs) -> tqdm:
    """``tqdm(iterable, **tqdm_kwargs)``; when its stream (``file``, default stderr) is not a terminal,
    one plain line at most every ``LOG_INTERVAL_S`` seconds (none before the first) instead of
    in-place redraws."""
    stream = tqdm_kwargs.get("file") or sys.stderr
    if not _is_terminal(stream):
        tqdm_kwargs["file"] = _LineWriter(stream)
        tqdm_kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        tqdm_kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, tqdm_kwargs["mininterval"]))
        tqdm_kwargs.setdefault("delay", tqdm_kwargs["mininterval"])  # shorter work leaves no bar lines
    return tqdm(iterable, **tqdm_kwargs)
