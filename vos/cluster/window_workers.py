"""Window-level parallelism for the clustering of :mod:`vos.cluster.fast`.

The temporal windows of a video are clustered independently (only the first round of the next
hierarchies takes their centroids in order), and so are the final assignments. Running one
window per worker thread, each with its share of torch's threads, uses the cores better than
torch's intra-op threads alone: much of the clustering is numpy, scipy and small torch ops that
run on one core (docs/benchmarks.md#two-threads, docs/decisions/0001-window-workers.md).

torch's and BLAS's thread counts are process-wide: :func:`window_workers` sets them for the
duration of its ``with`` block only, and restores them on exit (also after an error).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import threadpoolctl
import torch

__all__ = ["WindowPool", "window_workers"]

Job = TypeVar("Job")
Result = TypeVar("Result")


class WindowPool:
    """Runs one job per worker thread, or every job in the calling thread with one worker."""

    def __init__(self, executor: ThreadPoolExecutor | None, workers: int):
        self.executor = executor
        self.workers = workers

    def in_order(self, work: Callable[[Job], Result], jobs: Iterable[Job]) -> Iterator[Result]:
        """``work(job)`` for every job, yielded in job order. Jobs start in job order, at most one
        per worker at a time: while the caller handles one result the workers compute the next
        ones, so at most workers + 1 results exist at once. A job's error is raised here."""
        if self.executor is None:
            yield from map(work, jobs)
            return
        running: collections.deque[Future] = collections.deque()
        upcoming = iter(jobs)
        for job in itertools.islice(upcoming, self.workers):
            running.append(self.executor.submit(work, job))
        while running:
            result = running.popleft().result()
            for job in itertools.islice(upcoming, 1):  # the next job starts before the caller goes on
                running.append(self.executor.submit(work, job))
            yield result


@contextlib.contextmanager
def window_workers(threads: int | None, max_workers: int) -> Iterator[WindowPool]:
    """A pool of ``min(threads, max_workers)`` worker threads (none for one thread: jobs then run
    in the calling thread); ``max_workers`` bounds the windows in flight, hence the memory
    (``ClusterSettings.max_window_workers``).

    ``threads``: the threads to use (default: ``torch.get_num_threads()``). While the pool is
    open, torch and numpy's BLAS (OpenBLAS, through threadpoolctl) run ``threads // workers``
    threads in each worker and in the calling thread: otherwise every worker's BLAS call would
    start a team of its own on the same cores (and BLAS would use all cores when one thread is
    asked for). Both counts are process-wide, so they are restored on exit, also after an error.
    """
    threads = torch.get_num_threads() if threads is None else threads
    workers = min(threads, max_workers)
    per_worker = threads // workers
    previous = torch.get_num_threads()
    torch.set_num_threads(per_worker)
    try:
        with threadpoolctl.threadpool_limits(per_worker, user_api="blas"):
            if workers < 2:
                yield WindowPool(None, 1)
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="vos-window",
                                        initializer=torch.set_num_threads, initargs=(per_worker,)) as executor:
                    yield WindowPool(executor, workers)
    finally:
        torch.set_num_threads(previous)
