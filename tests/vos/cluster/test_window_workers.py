"""Tests of vos.cluster.window_workers: job order, bounded look-ahead, thread counts, errors."""

import threading

import pytest
import threadpoolctl
import torch

from vos.cluster.window_workers import window_workers

MAX_WORKERS = 4
# bounds a wait for another thread so that a broken pool fails instead of hanging; never reached
# by a working one (the events below order the jobs, not the clock)
WAIT_S = 60


def test_one_thread_runs_every_job_here_in_order():
    names = []
    with window_workers(1, MAX_WORKERS) as pool:
        assert pool.workers == 1
        results = list(pool.in_order(lambda job: names.append(threading.current_thread().name) or job * job, range(5)))
    assert results == [0, 1, 4, 9, 16]
    assert names == [threading.current_thread().name] * 5


def test_results_come_in_job_order_when_jobs_finish_out_of_order():
    # job 0 finishes only after jobs 1 and 2 have (three workers run jobs 0..2 at once), whatever
    # the machine's speed: the completion order differs from the job order by construction
    finished, lock = [], threading.Lock()
    done = {job: threading.Event() for job in range(9)}

    def work(job):
        if job == 0:
            assert done[1].wait(WAIT_S) and done[2].wait(WAIT_S), "jobs 1 and 2 did not run beside job 0"
        with lock:
            finished.append(job)
        done[job].set()
        return job, threading.current_thread().name

    with window_workers(3, MAX_WORKERS) as pool:
        results = list(pool.in_order(work, range(9)))
    assert [job for job, _ in results] == list(range(9))
    assert finished[:3] in ([1, 2, 0], [2, 1, 0])  # the point of the test: completion order differed
    assert {name for _, name in results} <= {f"vos-window_{i}" for i in range(3)}


def test_at_most_one_job_per_worker_runs_or_waits_ahead_of_the_caller():
    lock, started, consumed, ahead = threading.Lock(), [], [], []
    finished = {job: threading.Event() for job in range(10)}

    def work(job):
        with lock:
            started.append(job)
            ahead.append(len(started) - len(consumed))  # jobs started but not yet handled
        finished[job].set()
        return job

    with window_workers(2, MAX_WORKERS) as pool:
        for job in pool.in_order(work, range(10)):
            # a slow caller: it handles job k only once jobs k+1 and k+2 (one per worker) have run,
            # so the pool's look-ahead is used to its limit; the workers must not start job k+3
            for later in range(job + 1, min(job + 3, 10)):
                assert finished[later].wait(WAIT_S), f"job {later} did not start while job {job} was handled"
            with lock:
                consumed.append(job)
    assert consumed == list(range(10)) and sorted(started) == list(range(10))
    assert max(ahead) == 3  # two workers busy plus the result the caller is handling


def blas_threads() -> list[int]:
    """Thread counts of the BLAS libraries threadpoolctl finds (numpy's OpenBLAS)."""
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.parametrize("threads, workers, per_worker", [(1, 1, 1), (2, 2, 1), (3, 3, 1), (8, MAX_WORKERS, 2)])
def test_torch_and_blas_threads_are_shared_out_and_restored(threads, workers, per_worker):
    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with window_workers(threads, MAX_WORKERS) as pool:
        assert pool.workers == workers
        assert blas_threads() == [per_worker] * len(blas_before)
        assert torch.get_num_threads() == per_worker  # in the calling thread too
        seen = set(pool.in_order(lambda job: torch.get_num_threads(), range(2 * workers)))
    assert seen == {per_worker}
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


def test_numpy_has_a_blas_that_threadpoolctl_sees():
    # otherwise the BLAS checks above check nothing
    assert blas_threads(), threadpoolctl.threadpool_info()


def test_a_jobs_error_is_raised_to_the_caller_and_threads_are_restored():
    before = torch.get_num_threads()

    def work(job):
        if job == 3:
            raise ValueError("job 3 failed")
        return job

    handled, blas_before = [], blas_threads()
    with pytest.raises(ValueError, match="job 3 failed"):
        with window_workers(2, MAX_WORKERS) as pool:
            for result in pool.in_order(work, range(6)):
                handled.append(result)
    assert handled == [0, 1, 2]
    assert torch.get_num_threads() == before and blas_threads() == blas_before
