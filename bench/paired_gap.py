"""The paired gap between any two sets of cells of a report's cells.csv: one arm with and
without a setting, two LMs, or two recipes the report does not pair (it pairs pretrained with
scratch within a recipe, and each arm with the baseline).

    python bench/paired_gap.py outputs/reports/NAME/cells.csv \
        'init=pretrained.*lm.input_dropout=0.3$' 'init=pretrained.*init.lm_epoch=2'

Several cells.csv files are read as one (the cells of two reports, say). Each pattern is a
regular expression searched in the `cell` column (the cell's folder name) and must match at
most one cell per labeled size and seed. Per size: A - B in points, paired by seed, on test
(the accuracy at the best validation epoch) and on validation (the best), with 95%
t-intervals; with --than C D, the difference of the gaps, (A - B) - (C - D), per seed.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lmft import cells_csv
from lmft.comparison import mean_ci
from lmft.errors import LmftError

METRICS = {"test": "test/acc_at_best_val", "validation": "val/acc_best"}


def select(rows: list[dict], pattern: str) -> dict[tuple[int, int], dict]:
    """The cells whose name `pattern` matches, by (size, seed)."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise LmftError(f"{pattern!r} is not a regular expression: {e}") from None
    out = {}
    for r in rows:
        if rx.search(r["cell"]):
            key = (r["train_size"], r["seed"])
            if key in out:
                raise LmftError(
                    f"{pattern!r} matches {out[key]['cell']!r} and {r['cell']!r} (the same size "
                    "and seed): make the pattern narrower, e.g. end it with $"
                )
            out[key] = r
    if not out:
        raise LmftError(f"{pattern!r} matches no cell")
    return out


def points(x: dict, y: dict, key: tuple[int, int], metric: str) -> float:
    """X - Y of the cells at `key` (size, seed), in points."""
    return 100 * (x[key][metric] - y[key][metric])


def line(values: list[float]) -> str:
    mean, _, half = mean_ci(values)
    if len(values) < 2:
        return f"{mean:+.2f} (one pair: no interval)"
    below = sum(v < 0 for v in values)
    return (
        f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] ({below} of {len(values)} below 0)"
    )


def report(rows: list[dict], a: str, b: str, than: list[str] | None) -> list[str]:
    cells = [select(rows, p) for p in [a, b, *(than or [])]]
    keys = sorted(set.intersection(*map(set, cells)))  # (size, seed) that every pattern has
    if not keys:
        raise LmftError("the patterns share no labeled size and seed: nothing to pair")

    def gap(key: tuple[int, int], metric: str) -> float:
        ab = points(cells[0], cells[1], key, metric)
        return ab - points(cells[2], cells[3], key, metric) if than else ab

    out = []
    for size in sorted({s for s, _ in keys}):
        pairs = [k for k in keys if k[0] == size]
        parts = [f"{what} {line([gap(k, m) for k in pairs])}" for what, m in METRICS.items()]
        plural = "s" * (len(pairs) > 1)
        out.append(f"{size:,} labels, {len(pairs)} pair{plural}: " + "; ".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", type=Path, nargs="+", help="a report's cells.csv (or several)")
    ap.add_argument("a", help="pattern of the cells A (a regular expression on the cell's name)")
    ap.add_argument("b", help="pattern of the cells B")
    ap.add_argument("--than", nargs=2, metavar=("C", "D"), help="print (A - B) - (C - D)")
    args = ap.parse_args()
    rows = [cell for path in args.cells for cell in cells_csv.read(path)]
    lines = report(rows, args.a, args.b, args.than)
    title = f"({args.a}) - ({args.b})"
    if args.than:
        title = f"[{title}] - [({args.than[0]}) - ({args.than[1]})]"
    print(f"{title}, points, 95% t-interval over seeds:", *lines, sep="\n")


if __name__ == "__main__":
    try:
        main()
    except LmftError as e:
        raise SystemExit(f"paired_gap: {e}") from None
