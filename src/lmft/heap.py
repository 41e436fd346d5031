"""CPU training speed: freed memory stays in the process for the next step (glibc, Linux).

glibc's malloc serves each allocation above its mmap threshold (128 KiB, raised as it goes up
to 32 MiB) with fresh pages from the OS and hands them back when the block is freed; it also
hands back the top of its heap once more than the trim threshold lies free there. A training
step allocates and frees many large blocks (activations, gradients, the softmax), so with those
defaults every step faults in fresh pages again: 67 s of system time in a 178 s epoch of
`quick`'s LM on a 2-core CPU. With both thresholds at 1 GiB the memory is reused: the same
epoch took 133 s, with the same result (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process; whether it applied
    (False where the C library is not glibc: macOS, Windows, musl)."""
    if platform.libc_ver()[0] != "glibc":  # only glibc, hence Linux, names itself so
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the running process's C library
    return all(mallopt(p, THRESHOLD) == 1 for p in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))
