"""When each cell of a sweep started, trained, tested and ended, from its files, in seconds on
one clock: where a sweep's wall time went (start-up, training beside how many others, the
tail). bench/gpu_check.sh prints it after each sweep; runs.tar.gz keeps what it reads.

    python bench/timeline.py SWEEP_DIR [--since UNIX_TIME]

Per cell: `start` its config written (the job began), `fit` and `test` its two TensorBoard
files created (Trainer.fit and the final test began), `done` metrics.json written; `train_s`
the fit's seconds (history.csv's last time_s), of which `eval_s` evaluating (validation and
the per-epoch test curve). A cell finished before its sweep ran (resumed, or copied by
gpu_check.sh) is marked: its job only checked it. Times count from --since (gpu_check.sh: its
own start, so that they match its log's clock), else from the earliest start.
"""

import argparse
import csv
from pathlib import Path

TIMES = ("start", "fit", "test", "done")


def cell_times(cell: Path) -> dict | None:
    """The cell's times (unix seconds) and its history's totals; None if it did not finish."""
    done, config = cell / "metrics.json", cell / ".hydra" / "config.yaml"
    if not done.exists() or not config.exists():
        return None
    # event file names hold their creation time: events.out.tfevents.<unix time>.<host>...
    tb = sorted(int(p.name.split(".")[3]) for p in (cell / "tb").glob("events.out.tfevents.*"))
    with open(cell / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return {
        "start": config.stat().st_mtime,
        "fit": tb[0] if tb else None,
        "test": tb[1] if len(tb) > 1 else None,
        "done": done.stat().st_mtime,
        "train_s": float(rows[-1]["time_s"]),
        "eval_s": sum(float(r["eval_s"]) for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--since", type=float, help="unix time that counts as 0")
    args = ap.parse_args()
    if not args.sweep_dir.is_dir():
        raise SystemExit(f"timeline: no folder {args.sweep_dir}: give a sweep's folder")
    cells = {c.name: t for c in args.sweep_dir.iterdir() if c.is_dir() and (t := cell_times(c))}
    if not cells:
        raise SystemExit(f"timeline: no finished cell in {args.sweep_dir}")
    zero = args.since if args.since is not None else min(t["start"] for t in cells.values())
    width = max(map(len, cells))
    print(f"{'cell':<{width}}  start    fit   test   done  train_s  eval_s")
    for name, t in sorted(cells.items(), key=lambda kv: (kv[1]["start"], kv[0])):
        at = [f"{t[k] - zero:6.0f}" if t[k] is not None else "     -" for k in TIMES]
        earlier = "  (finished before this run: skipped)" if t["done"] < t["start"] else ""
        print(f"{name:<{width}}  {' '.join(at)}  {t['train_s']:7.1f}  {t['eval_s']:6.1f}{earlier}")


if __name__ == "__main__":
    main()
