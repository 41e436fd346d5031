"""When each cell of a sweep started, trained, tested and ended, from its files, in seconds on
one clock: where a sweep's wall time went (start-up, training beside how many others, the
tail). bench/gpu_check.sh prints it after each sweep; runs.tar.gz keeps what it reads.

    python bench/timeline.py SWEEP_DIR [--since UNIX_TIME]

The cells are those the report counts (lmft.comparison.load_cells). Per cell: `start` its
config written (the job began), `fit` its TensorBoard file created (Trainer.fit began), `test`
the fit's end (`fit` + `train_s`: the final test reads begin), `done` metrics.json written;
`train_s` the fit's
seconds (its history's last time_s), of which `eval_s` evaluating (validation and the
per-epoch test curve). A cell finished before its sweep ran (resumed, or copied by
gpu_check.sh) is marked: its job only checked it. Times count from --since (gpu_check.sh: its
own start, so that they match its log's clock), else from the earliest start.
"""

import argparse
from pathlib import Path

from lmft.comparison import load_cells
from lmft.errors import LmftError

TIMES = ("start", "fit", "test", "done")


def cell_times(cell_dir: Path, cell: dict) -> dict:
    """A finished cell's times (unix seconds) and its history's totals (a baseline cell has no
    epochs: its fitting time)."""
    history = cell["history"]
    # event file names hold their creation time: events.out.tfevents.<unix time>.<host>...
    tb = sorted(int(p.name.split(".")[3]) for p in (cell_dir / "tb").glob("events.out.tfevents.*"))
    fit = tb[0] if tb else None
    return {
        "start": (cell_dir / ".hydra" / "config.yaml").stat().st_mtime,
        "fit": fit,
        "test": fit + history[-1]["time_s"] if fit is not None and history else None,
        "done": (cell_dir / "metrics.json").stat().st_mtime,
        "train_s": history[-1]["time_s"] if history else cell["baseline"]["fit_s"],
        "eval_s": sum(r["eval_s"] for r in history),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--since", type=float, help="unix time that counts as 0")
    args = ap.parse_args()
    try:
        found, _ = load_cells(args.sweep_dir)
    except LmftError as e:
        raise SystemExit(f"timeline: {e}") from None
    cells = {c["cell"]: cell_times(args.sweep_dir / c["cell"], c) for c in found}
    zero = args.since if args.since is not None else min(t["start"] for t in cells.values())
    width = max(map(len, cells))
    print(f"{'cell':<{width}}  start    fit   test   done  train_s  eval_s")
    for name, t in sorted(cells.items(), key=lambda kv: (kv[1]["start"], kv[0])):
        at = [f"{t[k] - zero:6.0f}" if t[k] is not None else "     -" for k in TIMES]
        earlier = "  (finished before this run: skipped)" if t["done"] < t["start"] else ""
        print(f"{name:<{width}}  {' '.join(at)}  {t['train_s']:7.1f}  {t['eval_s']:6.1f}{earlier}")


if __name__ == "__main__":
    main()
