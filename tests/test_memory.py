import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vos.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="keep_freed_memory tunes glibc's malloc; this C library is not glibc")


def _page_faults_of(work) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    work()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _window_like_work(n: int = 5_400_000) -> float:
    """The allocation pattern of a clustering window: a few ~20 MB arrays and a smaller one, all freed."""
    a, b = torch.ones(n), torch.ones(n)
    c = a * b
    d = torch.ones(n // 3)
    return float(c[0] + d[0])


@glibc_only
def test_freed_large_arrays_are_reused_without_page_faults():
    assert keep_freed_memory() is True
    pages = (3 * 5_400_000 + 1_800_000) * 4 // resource.getpagesize()  # touched per call
    faults = [_page_faults_of(_window_like_work) for _ in range(8)]
    # with glibc's defaults each call faults in ~90% of its pages again (measured: 15,800 of 17,577)
    assert max(faults[4:]) < 0.25 * pages, faults  # (a smaller array may still land on fresh pages once)


@glibc_only
def test_repeated_calls_keep_working():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True


THREADS_SHARE_FREED_MEMORY = """
import resource, threading
from tests.test_memory import _window_like_work as window_like_work
from vos.memory import keep_freed_memory

assert keep_freed_memory() is True
first_done, second_done, faults = threading.Event(), threading.Event(), []

def first():
    for _ in range(8):  # the heap settles after a few calls (as in the test above)
        window_like_work()
    first_done.set()
    second_done.wait()  # stay alive: a finished thread's heap would be handed on anyway

def second():
    first_done.wait()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    window_like_work()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    second_done.set()

threads = [threading.Thread(target=first), threading.Thread(target=second)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(faults[0])
"""


@glibc_only
def test_threads_share_the_freed_memory():
    # the clustering's window workers free large arrays that other threads then allocate: with a
    # heap per thread (glibc's default) the second thread faults in all its pages afresh. A fresh
    # process: the setting only holds for threads that had not allocated before it
    pages = (3 * 5_400_000 + 1_800_000) * 4 // resource.getpagesize()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", THREADS_SHARE_FREED_MEMORY], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) < 0.25 * pages, (run.stdout, pages)
