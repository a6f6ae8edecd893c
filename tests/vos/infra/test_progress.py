"""vos.infra.progress.progress_bar: in-place on a terminal, a few plain lines in a log file."""

import io
import itertools

import tqdm.std

from vos.infra.progress import LOG_INTERVAL_S, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def fake_clock(monkeypatch, step_s=1.0):
    """tqdm's clock advances ``step_s`` per reading: the output does not depend on the machine's speed."""
    ticks = itertools.count()
    monkeypatch.setattr(tqdm.std, "time", lambda: next(ticks) * step_s)


def test_log_file_gets_a_line_per_interval(monkeypatch):
    fake_clock(monkeypatch)
    log = io.StringIO()
    for _ in progress_bar(range(3000), desc="train", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    # 3000 updates over >= 3000 fake seconds: at most about one line per 60 s, plus the first and last
    assert 2 <= len(lines) <= 3 * 3000 / LOG_INTERVAL_S
    assert lines[0].startswith("train: ") and "3000/3000" in lines[-1]
    assert not lines[0].startswith("train:   0%")  # no line before the first interval


def test_short_work_leaves_no_lines_in_a_log_file(monkeypatch):
    fake_clock(monkeypatch, step_s=0.01)
    log = io.StringIO()
    for _ in progress_bar(range(100), desc="check", file=log):  # ~1 fake second
        pass
    assert log.getvalue() == ""


def test_terminal_keeps_in_place_updates(monkeypatch):
    fake_clock(monkeypatch)
    term = Terminal()
    for _ in progress_bar(range(3000), desc="train", file=term, mininterval=0.1):
        pass
    assert term.getvalue().count("\r") > 1000  # tqdm's own redraws, untouched


def test_manual_updates_and_erased_bar(monkeypatch):
    fake_clock(monkeypatch, step_s=0.5)
    log = io.StringIO()
    with progress_bar(total=10_000, desc="frames", leave=False, file=log) as bar:
        for _ in range(10_000):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert all(line.strip() for line in lines) and len(lines) <= 3 * 10_000 * 0.5 / LOG_INTERVAL_S
