"""Keep freed CPU memory in the process for reuse instead of handing it back to the kernel.

A training step of the paper's tiny models allocates ~100 MB of short-lived activations
(the attention probabilities alone are 8.6 MB per block at the baseline's shape) and frees
them in the backward. With glibc's defaults every block above the mmap threshold is its own
``mmap``, and the heap above the trim threshold is given back at every free, so the next step
touches fresh pages again: 36,000-83,000 page faults per epoch of the baseline, each zeroing a
page in the kernel. Measured (benchmarks/profile_step.py, 1 thread, loaded 2-core machine): one
epoch 2.70 s CPU with the defaults, 2.1-2.3 s with the thresholds below, and ~3,000 faults.

The cost is that a process keeps up to ``TRIM_BYTES`` of freed heap after training (its
resident size does not shrink at once); blocks above ``MMAP_BYTES`` are still mapped and
returned. Only glibc has ``mallopt``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

MMAP_BYTES = 256 * 1024 * 1024  # allocations above this still get their own mapping
TRIM_BYTES = 512 * 1024 * 1024  # free heap kept before any is returned to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_done: list[bool] = []
_lock = threading.Lock()


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they were set."""
    with _lock:
        if not _done:
            _done.append(_set_thresholds())
        return _done[0]


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Setting the mmap threshold also stops glibc's own dynamic adjustment of both.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
