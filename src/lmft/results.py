"""What a finished run writes: TensorBoard's HParams row, history.csv, and metrics.json (with
the run's identity and provenance) last, whose presence means "finished"."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import lightning as L
import torch

import lmft
from lmft.callbacks import EpochLog
from lmft.identity import flatten
from lmft.io import write_csv, write_json


def _git(*args: str, **env: str) -> str:
    try:
        run = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, env={**os.environ, **env}
        )
    except OSError:
        return ""
    return run.stdout.strip() if run.returncode == 0 else ""


def tracked_tree(dirty: bool) -> str | None:
    """The git tree of the tracked files as they are on disk: HEAD's, or, with edits, the tree
    they would commit as (through a scratch index; the checkout's own is not touched)."""
    if not dirty:
        return _git("rev-parse", "--short", "HEAD^{tree}") or None
    with tempfile.TemporaryDirectory() as d:
        index = {"GIT_INDEX_FILE": str(Path(d) / "index")}
        _git("read-tree", "HEAD", **index)
        _git("add", "--update", ":/", **index)
        tree = _git("write-tree", **index)
    return _git("rev-parse", "--short", tree) if tree else None


def provenance() -> dict:
    """Versions and code, so every number can be traced to the code that made it. The commit
    gets "-dirty" when tracked files differ from it: the numbers then came from other code.
    `git_tree` names the code by its content, whatever commit a copy of the checkout says it
    is (`git log --format='%h %T'` lists each commit's tree; a dirty tree is that of the commit
    that later recorded the edits)."""
    commit = _git("rev-parse", "--short", "HEAD") or None
    dirty = bool(commit and _git("status", "--porcelain", "--untracked-files=no"))
    return {
        "lmft": lmft.__version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "git_commit": f"{commit}-dirty" if dirty else commit,
        "git_tree": tracked_tree(dirty) if commit else None,
    }


def log_hparams(out_dir: Path, identity: dict, metrics: dict) -> None:
    """HParams tab: one row per fine-tuning cell, its settings beside its final metrics, in a
    run of its own, `<cell>/tb/hparams` (`final/...` scalars; its curves are in `<cell>/tb`).

    No row declares the experiment (its columns): TensorBoard then builds them from every row,
    so each setting and each metric that any cell has is a column (the LM's perplexity,
    `final/lm_ppl_val`, though scratch and baseline rows have none), and the settings that
    differ between cells come first. Of those, the cell's own axes lead (`_init`, `_seed`,
    `_train_size`: by name); values as written (text: the size as its count, a number 16 as 16
    and not 16.000), the best epoch too (`result.best_epoch`: a metric would show 7.0000). The
    headline metric sorts first (`final/acc_test_at_best_val`). LM runs add no row: a row
    without the classifier's settings would make all of them look varied. Final metrics are
    named `final/...`: under a per-epoch tag, their point would hide the curve.
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    if "init" not in metrics:
        return
    flat = dict(
        _init=metrics["init"], _seed=str(metrics["seed"]), _train_size=str(metrics["train_size"])
    )
    if metrics["best_epoch"] is not None:  # a neural cell's (the baseline has no epochs)
        flat["result.best_epoch"] = str(metrics["best_epoch"])
    identity = {k: v for k, v in identity.items() if k not in ("init", "seed")}
    identity["data"] = {k: v for k, v in identity["data"].items() if k != "train_size"}
    flat |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten(identity).items()}
    shown = {
        "final/acc_test_at_best_val": metrics["test/acc_at_best_val"],
        "final/acc_test_last": metrics["test/acc"],
        "final/acc_val_best": metrics["val/acc_best"],
    }
    if metrics.get("lm"):
        shown["final/lm_ppl_val"] = metrics["lm"]["val/ppl"]
    _, start, end = hparams(flat, shown)  # not the experiment: TensorBoard builds it
    with SummaryWriter(str(out_dir / "tb" / "hparams")) as writer:
        for summary in (start, end):
            writer._get_file_writer().add_summary(summary)  # as Lightning's logger writes them
        for tag, value in shown.items():
            writer.add_scalar(tag, value)


def save_results(
    trainer: L.Trainer, out_dir: Path, metrics: dict, history: EpochLog, identity: dict
) -> dict:
    """HParams + history.csv, then metrics.json last: its presence means 'finished'."""
    metrics = {**metrics, "history": history.rows, "identity": identity, "provenance": provenance()}
    log_hparams(out_dir, identity, metrics)
    # Close the trainer's events file too, so all is on disk before metrics.json says the run
    # finished.
    trainer.logger.finalize("success")
    write_csv(out_dir / "history.csv", history.rows)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
