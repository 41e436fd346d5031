"""The report's tables and learning curve over cells from several sources: sweep folders (their
metrics.json) and the cells.csv of reports whose sweep folders are gone (a GPU run's, say).

    python bench/combine_cells.py docs/gpu/2026-12-04-h200-run2/cells.csv outputs/sweeps/seed \
        --name seed --figure docs/img/seed_baseline_learning_curve.png

A cells.csv row carries a cell's accuracies, its best epoch and its epoch count, not its
per-epoch history or settings: so the tables are those of `lmft.report` without the settings,
anchors and epoch figures. Cells with the same arm, size and seed from two sources are an error.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lmft.comparison import against_baseline, load_cells, summarize
from lmft.errors import LmftError
from lmft.figures import learning_curve
from lmft.tables import markdown

METRIC = "test/acc_at_best_val"


def from_csv(path: Path) -> list[dict]:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return [
        {
            "cell": f"{path}:{r['cell']}",
            "init": r["init"],
            "train_size": int(r["train_size"]),
            "seed": int(r["seed"]),
            METRIC: float(r["test_acc_at_best_val"]),
            "test/acc": float(r["test_acc_last"]),
            "val/acc_best": float(r["val_acc_best"]),
            "best_epoch": int(r["best_epoch"]) if r["best_epoch"] else None,
            "history": [{"epoch": e} for e in range(1, int(r["epochs"] or 0) + 1)],
        }
        for r in rows
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", type=Path, help="cells.csv files or sweep folders")
    ap.add_argument("--name", default="combined", help="the title of the tables and figure")
    ap.add_argument("--figure", type=Path, help="write the learning curve here (PNG)")
    args = ap.parse_args()
    cells, seen = [], {}
    for src in args.sources:
        got = from_csv(src) if src.suffix == ".csv" else load_cells(src)[0]
        for c in got:
            key = (c["init"], c["train_size"], c["seed"])
            if key in seen:
                raise LmftError(f"{c['cell']} repeats {seen[key]} (arm, size and seed)")
            seen[key] = c["cell"]
        cells += got
    summary, gaps = summarize(cells, METRIC)
    base_gaps = against_baseline(cells, METRIC)
    print(markdown(args.name, METRIC, summary, gaps, len(cells), {}, base_gaps=base_gaps))
    if args.figure:
        sources = ", ".join(s.name if s.suffix != ".csv" else s.parent.name for s in args.sources)
        learning_curve(args.name, METRIC, summary, args.figure, f"cells from {sources}")


if __name__ == "__main__":
    main()
