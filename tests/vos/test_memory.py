"""keep_freed_memory, checked through glibc's own accounting (mallinfo2, malloc_stats) in fresh
processes: the settings are process-wide and only hold for memory allocated after them."""

import os
import platform
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="keep_freed_memory tunes glibc's malloc; this C library is not glibc")

# Prints, after an optional keep_freed_memory(): the bytes glibc mapped for a 20 MB tensor
# (hblkhd, outside the heap) and the free bytes its heap holds once the tensor is freed (fordblks).
LARGE_BLOCK = """
import ctypes, sys
import torch
from vos.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory() is True
before = libc.mallinfo2()
block = torch.ones(5_000_000)  # 20 MB, like one clustering window's arrays
mapped = libc.mallinfo2().hblkhd - before.hblkhd
del block
print(mapped, libc.mallinfo2().fordblks)
"""

# Prints the heaps (arenas) in use after a second thread allocated, as glibc's malloc_stats lists them.
THREAD_HEAPS = """
import ctypes, os, sys, threading
from vos.memory import keep_freed_memory

if sys.argv[1] == "keep":
    assert keep_freed_memory() is True
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
thread = threading.Thread(target=lambda: libc.free(libc.malloc(1 << 20)))
thread.start()
thread.join()
sys.stderr.flush()
libc.malloc_stats()  # to stderr: an "Arena i:" section per heap
"""


def _run(script: str, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run


@glibc_only
def test_large_blocks_come_from_the_heap_and_stay_there_when_freed():
    default_mapped, default_free = map(int, _run(LARGE_BLOCK, "default").stdout.split())
    kept_mapped, kept_free = map(int, _run(LARGE_BLOCK, "keep").stdout.split())
    # glibc's default maps a 20 MB block on its own and unmaps it on free (fresh pages every time)
    assert default_mapped >= 20_000_000 and default_free < 20_000_000
    # kept: the block is carved from the heap, and its memory stays there, free for the next one
    assert kept_mapped == 0 and kept_free >= 20_000_000


@glibc_only
def test_threads_share_one_heap():
    # the clustering's window workers free large arrays that other threads then allocate: with a
    # heap per thread (glibc's default) those would sit in heaps the next allocation cannot use
    assert _run(THREAD_HEAPS, "default").stderr.count("Arena ") >= 2
    assert _run(THREAD_HEAPS, "keep").stderr.count("Arena ") == 1


@glibc_only
def test_repeated_calls_keep_working():
    from vos.memory import keep_freed_memory

    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
