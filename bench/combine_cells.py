"""The report's tables and figures over cells from several sources: sweep folders (their
metrics.json) and the cells.csv of reports whose sweep folders are gone (a GPU run's, say).

    python bench/combine_cells.py docs/gpu/2026-12-04-h200-run2/cells.csv outputs/sweeps/seed \
        --name seed --figure docs/img/seed_baseline_learning_curve.png

A cells.csv row carries a cell's accuracies, its best epoch, its epoch count and whether it
beat chance (reports since that column), not its settings: so the tables are those of
`lmft.report` without the settings and anchors. The per-epoch histories come from the
histories.csv beside it, where the report wrote one; the epoch figure (--epochs) needs them
for every neural cell. Cells with the same arm, size and seed from two sources are an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmft import cells_csv
from lmft.comparison import against_baseline, load_cells, summarize
from lmft.errors import LmftError
from lmft.figures import epochs_figure, learning_curve
from lmft.tables import markdown

METRIC = "test/acc_at_best_val"


def from_csv(path: Path) -> list[dict]:
    """The cells of a cells.csv, each named with the file's path."""
    return [{**c, "cell": f"{path}:{c['cell']}"} for c in cells_csv.read(path)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", type=Path, help="cells.csv files or sweep folders")
    ap.add_argument("--name", default="combined", help="the title of the tables and figures")
    ap.add_argument("--figure", type=Path, help="write the learning curve here (PNG)")
    ap.add_argument("--epochs", type=Path, help="write the accuracy per epoch here (PNG)")
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
    if args.epochs:  # a cells.csv's cell without histories.csv has only its epochs' numbers
        lacking = {
            c["cell"].rsplit(":", 1)[0]
            for c in cells
            if any(r.keys() == {"epoch"} for r in c["history"])
        }
        if lacking:
            raise LmftError(
                f"No histories.csv beside {', '.join(sorted(lacking))}: the epoch figure needs "
                "every cell's history (the report writes it beside cells.csv); leave out --epochs"
            )
    summary, gaps = summarize(cells, METRIC)
    base_gaps = against_baseline(cells, METRIC)
    print(markdown(args.name, METRIC, summary, gaps, len(cells), {}, base_gaps=base_gaps))
    sources = ", ".join(s.name if s.suffix != ".csv" else s.parent.name for s in args.sources)
    note = f"cells from {sources}"
    if args.figure:
        learning_curve(args.name, METRIC, summary, args.figure, note, gaps, base_gaps)
    if args.epochs:
        epochs_figure(args.name, cells, args.epochs, note)


if __name__ == "__main__":
    try:
        main()
    except LmftError as e:
        raise SystemExit(f"combine_cells: {e}") from None
