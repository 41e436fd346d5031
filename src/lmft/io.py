"""Atomic file writes: a reader never sees a half-written file another stage relies on."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmft.errors import LmftError


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(dest: str | Path, obj: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(dest: str | Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def torch_save(obj: Any, dest: str | Path) -> None:
    """torch.save, atomically; a full disk is an LmftError that names the file."""
    import torch  # here, so that the report (no torch) can use this module

    try:
        with atomic_path(dest) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as e:
        # torch reports a short write as "unexpected pos N vs M"
        if getattr(e, "errno", None) != errno.ENOSPC and "unexpected pos" not in str(e):
            raise
        raise LmftError(
            f"no space left on device writing {dest} (nothing was left half-written); free "
            f"space under {Path(dest).parent} and run the same command again."
        ) from e


def write_csv(dest: str | Path, rows: list[dict]) -> None:
    """Rows of dicts as CSV; the header is the union of keys in first-seen order."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    write_text(dest, buf.getvalue())
