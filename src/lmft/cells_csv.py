"""A report's cells.csv, one row per cell (its accuracies, best epoch, epoch count and
provenance), and histories.csv beside it, every neural cell's per-epoch rows: written by
lmft.report, read back by the bench scripts that combine or pair the cells of kept reports
(whose sweep folders are gone, as a GPU run's are)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from lmft.errors import LmftError


def _int_or_none(value: str) -> int | None:
    return int(value) if value else None


# cells.csv column: the key lmft.comparison.load_cells gives its value, and how it reads back
COLUMNS = {
    "cell": ("cell", str),
    "init": ("init", str),
    "train_size": ("train_size", int),
    "seed": ("seed", int),
    "test_acc_at_best_val": ("test/acc_at_best_val", float),
    "test_acc_last": ("test/acc", float),
    "val_acc_best": ("val/acc_best", float),
    "best_epoch": ("best_epoch", _int_or_none),  # none for the baseline
}


def row(cell: dict) -> dict:
    """A cell's cells.csv row."""
    return {
        **{column: cell[key] for column, (key, _) in COLUMNS.items()},
        "epochs": len(cell["history"]),
        "at_chance": cell["at_chance"],  # None where a cell recorded no label share (baseline)
        "test_acc_curve_max": cell.get("test/acc_curve_max"),
        **cell.get("provenance", {}),
    }


def history_rows(cells: list[dict]) -> list[dict]:
    """The histories.csv rows of the cells: each epoch's row, named by its cell."""
    return [{"cell": c["cell"], **r} for c in cells for r in c["history"]]


def read_histories(path: Path) -> dict[str, list[dict]]:
    """Each cell's per-epoch rows, as numbers, from a report's histories.csv."""
    if not path.is_file():
        raise LmftError(f"{path} is not a file: give a report's histories.csv")
    by = defaultdict(list)
    for r in csv.DictReader(path.read_text().splitlines()):
        cell = r.pop("cell")
        by[cell].append({k: int(v) if k == "epoch" else float(v) for k, v in r.items() if v})
    return by


def read(path: Path) -> list[dict]:
    """The cells of a report's cells.csv, under the keys load_cells gives these values. A
    cell's history is its rows of histories.csv; where that file is not beside cells.csv, one
    row per epoch with only the epoch's number (enough to count epochs, not to draw them)."""
    if not path.is_file():
        raise LmftError(f"{path} is not a file: give a report's cells.csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    lacking = {*COLUMNS, "epochs"} - set(rows[0] if rows else {})
    if lacking:
        raise LmftError(f"{path} has no {', '.join(sorted(lacking))}: not a report's cells.csv")
    beside = path.with_name("histories.csv")
    known = read_histories(beside) if beside.is_file() else {}
    return [
        {
            **{key: parse(r[column]) for column, (key, parse) in COLUMNS.items()},
            # None: not recorded (the baseline, or a report written before the column)
            "at_chance": {"True": True, "False": False}.get(r.get("at_chance", "")),
            "history": known.get(r["cell"])
            or [{"epoch": e} for e in range(1, int(r["epochs"] or 0) + 1)],
        }
        for r in rows
    ]
