"""A cell's lock: two processes started on one cell never both train it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Set (to a rank above 0) in the processes a distributed run starts beside its first one
RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def first_process() -> bool:
    """Whether this is the first process of a distributed run, or not part of one: DDP's other
    ranks run the same cell with it, so they must not wait for its lock."""
    return all(os.environ.get(v, "0") == "0" for v in RANK_VARS)


@contextmanager
def cell_lock(out_dir: Path) -> Iterator[bool]:
    """Hold the exclusive lock of `out_dir` (its `.lock` file) and yield True, or yield False
    at once when another process holds it. The lock goes with the process, however it ends."""
    if not first_process():
        yield True
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
