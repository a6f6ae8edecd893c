"""Process-wide allocator settings for the segmentation pipeline.

The attention and clustering of every temporal window allocate and free tens of large arrays
(up to ~45 MB each). With glibc's default settings, blocks above its mmap threshold are mapped
and unmapped on every allocation, and free memory at the top of the heap is given back to the
kernel: every new array then touches fresh pages, and each page fault (with the page zeroed by
the kernel) costs more than the arithmetic done on the page (docs/benchmarks.md#allocator,
docs/decisions/0002-keep-freed-memory.md).
"""

from __future__ import annotations

import ctypes
import platform

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Blocks up to this size come from the heap, where freed memory is reused. 32 MiB is the largest
# value glibc accepts on 64-bit (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD_BYTES = 32 * 2 ** 20
# Free memory at the top of the heap is kept up to this much instead of being returned.
TRIM_THRESHOLD_BYTES = 2 ** 30
# The heap grows by at least this much at a time (fewer brk calls).
TOP_PAD_BYTES = 64 * 2 ** 20
# One heap for all threads: the clustering's window workers (vos.cluster.window_workers) would otherwise
# get heaps of their own, each keeping its own freed memory (measured: docs/decisions/0002-keep-freed-memory.md).
# Their allocations are few and large, so the threads rarely wait for the shared heap's lock.
ARENA_MAX = 1


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (see the module docstring).

    Affects the whole process from now on: its resident memory no longer shrinks when large
    arrays are freed (up to ``TRIM_THRESHOLD_BYTES`` stays mapped), while its peak is unchanged,
    and threads share one heap (``ARENA_MAX``): all threads if it is called before any thread
    but the main one allocates (glibc hands threads the heaps that already exist).
    Returns False, changing nothing, where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                (_M_TOP_PAD, TOP_PAD_BYTES), (_M_ARENA_MAX, ARENA_MAX))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
