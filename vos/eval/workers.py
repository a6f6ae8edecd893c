"""Scoring jobs in worker processes, with a progress bar."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence, TypeVar

from vos.infra.progress import progress_bar

J = TypeVar("J")
R = TypeVar("R")


def map_jobs(score: Callable[[J], R], jobs: Sequence[J], workers: int | None, desc: str, unit: str,
             progress: bool) -> list[R]:
    """``[score(job) for job in jobs]``, in order, on ``workers`` processes (default: CPU count).

    ``score`` must be a module-level function (it is pickled to the workers).
    """
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = dict(total=len(jobs), desc=desc, unit=unit, disable=not progress)
    if workers <= 1:
        return [score(job) for job in progress_bar(jobs, **bar)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(progress_bar(pool.map(score, jobs), **bar))
