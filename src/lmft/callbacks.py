"""The callbacks both stages' trainers carry: the per-epoch history, exact resume, best weights."""

from __future__ import annotations

import random
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from lmft.models.handoff import encoder_path, save_encoder


class EpochLog(L.Callback):
    """Records every epoch's logged metrics (the history), writes them to TensorBoard with the
    epoch as the x axis, and prints one line per epoch. Each row also has `time_s`, the seconds
    since the run started, and `eval_s`, the seconds that epoch spent evaluating (validation, and
    a classifier's test curve)."""

    def __init__(self, label: str):
        self.label, self.rows, self.t0, self.steps = label, [], time.time(), 0
        self.eval_s = 0.0

    def on_validation_epoch_start(self, trainer, pl_module):
        self.eval_t0 = time.time()

    def on_validation_epoch_end(self, trainer, pl_module):
        self.eval_s += time.time() - self.eval_t0

    def eta(self, trainer, done_in_epoch: int) -> str:
        """Time left for the run, at this process's pace so far (validation included); with
        early stopping (`classifier.patience`) a bound: the run may stop sooner."""
        n = trainer.num_training_batches
        left = (trainer.max_epochs - trainer.current_epoch) * n - done_in_epoch
        bound = "at most " if trainer.early_stopping_callback else ""
        return f"{bound}{max(left, 0) * (time.time() - self.t0) / max(self.steps, 1):.0f} s left"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        """Per-step metrics (`*_step`) to TensorBoard every log_every_n_steps steps; without a
        progress bar, long epochs still report every ~10% of their steps."""
        self.steps += 1
        step = trainer.global_step
        if trainer.is_global_zero and trainer.logger and step % trainer.log_every_n_steps == 0:
            for k, v in trainer.callback_metrics.items():
                if k.endswith("_step"):  # (not through Lightning: it adds an `epoch` curve)
                    trainer.logger.experiment.add_scalar(k, float(v), step)
        n = trainer.num_training_batches
        if (
            trainer.is_global_zero
            and trainer.progress_bar_callback is None
            and n >= 50
            and (batch_idx + 1) % (n // 10) == 0
        ):
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float("nan")
            left = self.eta(trainer, batch_idx + 1)
            print(
                f"[{self.label}] epoch {trainer.current_epoch + 1}: step {batch_idx + 1}/{n}"
                f"  loss {loss:.4g}  {time.time() - self.t0:.0f} s, {left}",  # the LM's or a cell's
                flush=True,
            )

    def on_train_epoch_end(self, trainer, pl_module):
        m = {
            k: round(float(v), 5)
            for k, v in trainer.callback_metrics.items()
            if "/" in k and not k.endswith("_step") and not k.startswith("lr-")  # per step
        }
        m = {k.removesuffix("_epoch"): v for k, v in m.items()}
        row = {"epoch": trainer.current_epoch + 1, **m, "time_s": round(time.time() - self.t0, 1),
               "eval_s": round(self.eval_s, 2)}  # fmt: skip
        self.eval_s = 0.0  # the next epoch's evaluation
        self.rows.append(row)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
        if trainer.is_global_zero and trainer.logger is not None:
            for k, v in m.items():
                trainer.logger.experiment.add_scalar(k, v, row["epoch"])
        if trainer.is_global_zero:
            epoch = f"epoch {row['epoch']}/{trainer.max_epochs}"
            left = self.eta(trainer, trainer.num_training_batches)
            print(f"[{self.label}] {epoch}  {shown}  ({left})", flush=True)

    # Saved in Lightning checkpoints, so a resumed run keeps the epochs before the interruption.
    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = state["rows"]


class RNGState(L.Callback):
    """Keeps the random-number generators' states (torch, CUDA, numpy, python) in every
    checkpoint and restores them on resume: a resumed run draws the same dropout masks, and
    so ends with the same numbers, as one never interrupted. (The batch order needs nothing:
    BucketBatchSampler derives it from seed and epoch.)"""

    def state_dict(self) -> dict:  # tensors, ints and lists: loads with weights_only=True
        kind, keys, *rest = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), *rest],
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
        random.setstate(state["python"])


class BestWeights(L.Callback):
    """Keeps, on CPU, the weights of the epoch with the best validation accuracy (first of ties),
    the same epoch `final_metrics` reports: the test set is read with them, and they become the
    run's model.pt."""

    def __init__(self):
        self.best, self.state = -1.0, None

    def on_train_epoch_end(self, trainer, pl_module):
        acc = float(trainer.callback_metrics["val/acc"])
        if acc > self.best:
            self.best = acc
            self.state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}


class Snapshots(L.Callback):
    """Keeps the LM's encoder after each of `epochs` (`lm.snapshots`) beside the final one, for
    fine-tuning from a smaller LM budget (`init.lm_epoch`); files of epochs already done before
    an interruption stay."""

    def __init__(self, epochs: list[int], out_dir: Path, tokenizer_fingerprint: str):
        self.epochs, self.out_dir, self.fingerprint = set(epochs), out_dir, tokenizer_fingerprint

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs and trainer.is_global_zero:
            save_encoder(encoder_path(self.out_dir, epoch), pl_module.encoder, self.fingerprint)
