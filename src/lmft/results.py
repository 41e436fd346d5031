"""What a finished run writes: TensorBoard's HParams row, history.csv, and metrics.json (with
the run's identity and provenance) last, whose presence means "finished"."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import lightning as L
import torch

import lmft
from lmft.callbacks import EpochLog
from lmft.identity import flatten
from lmft.io import write_csv, write_json


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5).stdout
    except OSError:
        return ""


def provenance() -> dict:
    """Versions and commit, so every number can be traced to the code that made it. The commit
    gets "-dirty" when tracked files differ from it: the numbers then came from other code."""
    commit = _git("rev-parse", "--short", "HEAD").strip() or None
    if commit and _git("status", "--porcelain", "--untracked-files=no").strip():
        commit += "-dirty"
    return {
        "lmft": lmft.__version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
    }


def log_hparams(logger, identity: dict, metrics: dict) -> None:
    """HParams tab: one row per fine-tuning cell, its settings beside its final metrics.

    The cell's own axes come first (`_init`, `_seed`, `_train_size`: TensorBoard lists the
    settings that differ first, by name), values as written (text, the size as its count);
    the headline metric sorts first (`final/acc_test_at_best_val`), and the LM's validation
    perplexity stands beside it (its settings are the cell's `lm.*`). LM runs add no row: a
    row without the classifier's settings would make all of them look varied. Final metrics
    are named `final/...`: under a per-epoch tag, their point would hide the curve.
    """
    if "init" not in metrics:
        return
    flat = dict(
        _init=metrics["init"], _seed=str(metrics["seed"]), _train_size=str(metrics["train_size"])
    )
    identity = {k: v for k, v in identity.items() if k not in ("init", "seed")}
    identity["data"] = {k: v for k, v in identity["data"].items() if k != "train_size"}
    shown = {
        "final/acc_test_at_best_val": metrics["test/acc_at_best_val"],
        "final/acc_test_last": metrics["test/acc"],
        "final/acc_val_best": metrics["val/acc_best"],
    }
    if metrics["best_epoch"] is not None:  # a neural cell's (the baseline has no epochs)
        shown["final/best_epoch"] = metrics["best_epoch"]
    if metrics.get("lm"):
        shown["final/lm_ppl_val"] = metrics["lm"]["val/ppl"]
    # values as text: TensorBoard shows a number 16 as 16.000
    flat |= {k: v if isinstance(v, str) else json.dumps(v) for k, v in flatten(identity).items()}
    logger.log_hyperparams(flat, shown)


def save_results(
    trainer: L.Trainer, out_dir: Path, metrics: dict, history: EpochLog, identity: dict
) -> dict:
    """HParams + history.csv, then metrics.json last: its presence means 'finished'."""
    metrics = {**metrics, "history": history.rows, "identity": identity, "provenance": provenance()}
    log_hparams(trainer.logger, identity, metrics)
    # The trainer closes its writer after fit and test; what was written since opened a new
    # events file. Close it, so all is on disk before metrics.json says the run finished.
    trainer.logger.finalize("success")
    write_csv(out_dir / "history.csv", history.rows)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
