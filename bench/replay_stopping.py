"""Early-stopping rules replayed on a sweep whose cells ran every epoch (classifier.patience=null).

A cell's epochs do not depend on when it will stop (the same seed gives the same epochs), so its
full per-epoch validation history holds every shorter run's. For each patience this prints what
the cells would keep: the mean and lowest validation accuracy at their best epoch, how many stay
near chance, and the epochs they would run. Validation only: no test number is read.

    python bench/replay_stopping.py outputs/reports/<name>/histories.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmft import cells_csv
from lmft.errors import LmftError

PATIENCE = (4, 8, 12, 16, 24, None)  # None: every epoch


def replay(val_acc: list[float], patience: int | None) -> tuple[int, int]:
    """(epochs run, best epoch) for one cell, epochs counted from 1: as Lightning's EarlyStopping
    on `val/acc` stops (mode max: only a strictly higher accuracy is an improvement), and the
    best epoch kept as lmft's BestWeights keeps it (the first of ties)."""
    best = 0
    for e, acc in enumerate(val_acc):
        if acc > val_acc[best]:
            best = e
        if patience is not None and e - best >= patience:
            return e + 1, best + 1
    return len(val_acc), best + 1


def val_curves(path: Path) -> dict[str, list[float]]:
    """Each neural cell's validation accuracy per epoch, from a report's histories.csv."""
    return {
        cell: [r["val/acc"] for r in sorted(rows, key=lambda r: r["epoch"])]
        for cell, rows in cells_csv.read_histories(path).items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("histories", type=Path, help="a report's histories.csv")
    ap.add_argument("--chance", type=float, default=0.55, help="'near chance' below this")
    args = ap.parse_args()
    cells = val_curves(args.histories)
    print(f"{len(cells)} cells, {min(map(len, cells.values()))} epochs or more each")
    print("| patience | mean val acc | lowest | near chance | epochs run (mean) |")
    print("|---:|---:|---:|---:|---:|")
    for patience in PATIENCE:
        kept, ran = [], []
        for val in cells.values():
            n, best = replay(val, patience)
            kept.append(val[best - 1])
            ran.append(n)
        print(
            f"| {patience or 'none'} | {sum(kept) / len(kept):.4f} | {min(kept):.3f} | "
            f"{sum(k < args.chance for k in kept)} | {sum(ran) / len(ran):.1f} |"
        )


if __name__ == "__main__":
    try:
        main()
    except LmftError as e:
        raise SystemExit(f"replay_stopping: {e}") from None
