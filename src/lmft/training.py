"""What both stages share: trainer construction, per-epoch history, config identity, CLI glue."""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, read_write

import lmft
from lmft.data.corpus import Corpus
from lmft.errors import LmftError
from lmft.io import write_csv, write_json

# Settings that change speed or file locations, never results: left out of a run's identity.
_NOT_RESULTS = {
    "data": {"archive", "data_dir", "download", "cache_dir", "num_workers", "anchors"},
    "classifier": {"save_model"},
    "lm": {"loss_impl"},  # the same softmax, computed two ways (equal up to float noise; tested)
    "trainer": {
        "progress_bar",
        "num_threads",
        "log_every_n_steps",
        "devices",
        "accelerator",
        "strategy",  # DDP shards each batch over processes: the same result (up to float noise)
        "num_nodes",
    },
}
# What decides each stage's result (data keys that only stage 2 reads are left out of stage 1).
_STAGE_KEYS = {
    "pretrain": (
        ("data", "pretrain_data", "model", "lm", "trainer"),
        {"train_size", "test_size", "curve_test_size"},
    ),
    "finetune": (
        ("data", "pretrain_data", "model", "lm", "classifier", "trainer", "init", "seed"),
        set(),
    ),
}


def job_gpu(n_gpus: int) -> list[int]:
    """`trainer.devices='${lmft.job_gpu:N}'`: job k of a sweep runs on GPU k mod N (joblib)."""
    from hydra.core.hydra_config import HydraConfig

    return [HydraConfig.get().job.num % int(n_gpus)]


def _changes_results(override: str) -> bool:
    """Whether a command-line override can change a fine-tuning cell's result."""
    key = override.lstrip("+~").split("=")[0]
    section, _, name = key.partition(".")
    return not (  # (the trainer group picks hardware; the values it sets that matter follow)
        key in ("experiment", "name", "init", "seed", "data.train_size", "trainer")
        or key.startswith(("paths.", "hydra.", "hydra/"))
        or name in _NOT_RESULTS.get(section, ())
    )


def cell_name(init: str, size, seed) -> str:
    """`cell: ${lmft.cell:...}`: a fine-tuning cell's folder, named from its arm, size and seed,
    then every other command-line override that can change its result, sorted (for example
    `init=scratch,n=1000,seed=0,classifier.pooling=concat`): so any config key can be a sweep
    axis, one readable folder per combination. (Called from Python, without Hydra's command
    line, the name is the first three.)"""
    from hydra.core.hydra_config import HydraConfig

    base = f"init={init},n={size},seed={seed}"
    if not HydraConfig.initialized():
        return base
    extra = sorted(o.lstrip("+~") for o in HydraConfig.get().overrides.task if _changes_results(o))
    return ",".join([base, *(e.replace("/", "_") for e in extra)])  # one folder, never nested


OmegaConf.register_new_resolver("lmft.job_gpu", job_gpu, replace=True)
OmegaConf.register_new_resolver("lmft.cell", cell_name, replace=True)


def run_identity(cfg: DictConfig, stage: str) -> dict:
    """The resolved config values that determine a stage's result (stored with its metrics)."""
    sections, skip_data = _STAGE_KEYS[stage]
    full = OmegaConf.to_container(cfg, resolve=True)
    out = {}
    for s in sections:
        v = full[s]
        if isinstance(v, dict):
            drop = _NOT_RESULTS.get(s, set()) | (skip_data if s == "data" else set())
            v = {k: x for k, x in v.items() if k not in drop}
        out[s] = v
    return out


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested dicts ('lm.epochs: 2 != 3')."""
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(x, dict) and isinstance(y, dict):
            out += diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}: {x!r} != {y!r}")
    return out


def read_finished(path: Path, identity: dict, what: str, remedy: str = "") -> dict | None:
    """Metrics of a finished run at `path`; None if unfinished; error if other settings made it."""
    if not path.exists():
        return None
    try:
        metrics = json.loads(path.read_text())
        done = metrics["identity"]
    except (ValueError, KeyError):
        return None  # unreadable: not finished
    if done != identity:
        raise LmftError(
            f"{path.parent} holds a finished {what} made with other settings "
            f"({'; '.join(diff(done, identity)[:5])}). "
            + (remedy or "Use another name=... for the new settings, or delete that folder.")
        )
    return metrics


def data_kwargs(cfg: DictConfig) -> dict:
    """The DataModule arguments both stages take from the data config."""
    d = cfg.data
    return dict(
        val_size=d.val_size,
        split_seed=d.split_seed,
        num_workers=d.num_workers,
        truncating=d.get("truncating", "post"),
    )


def encoder_kwargs(cfg: DictConfig, corpus: Corpus, section: str) -> dict:
    """The encoder's kwargs for the stage whose config section is `section` (lm, classifier):
    the `model` group, with that stage's `input_dropout` when it sets one (the reference drops
    0.3 of the LSTM's inputs in the LM and 0.5 in the classifier)."""
    kw = {"vocab_size": corpus.tokenizer.get_vocab_size(), **OmegaConf.to_container(cfg.model)}
    rate = cfg[section].get("input_dropout")
    return kw if rate is None else {**kw, "input_dropout": rate}


def provenance() -> dict:
    """Versions and commit, so every number can be traced to the code that made it."""
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except OSError:
        commit = None
    return {
        "lmft": lmft.__version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
    }


class EpochLog(L.Callback):
    """Records every epoch's logged metrics (the history), writes them to TensorBoard with the
    epoch as the x axis, and prints one line per epoch."""

    def __init__(self, label: str):
        self.label, self.rows, self.t0, self.steps = label, [], time.time(), 0

    def eta(self, trainer, done_in_epoch: int) -> str:
        """Time left for the run, at this process's pace so far (validation included)."""
        n = trainer.num_training_batches
        left = (trainer.max_epochs - trainer.current_epoch) * n - done_in_epoch
        return f"{max(left, 0) * (time.time() - self.t0) / max(self.steps, 1):.0f} s left"

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
                f"  train/loss {loss:.4g}  {time.time() - self.t0:.0f} s, {left}",
                flush=True,
            )

    def on_train_epoch_end(self, trainer, pl_module):
        m = {
            k: round(float(v), 5)
            for k, v in trainer.callback_metrics.items()
            if "/" in k and not k.endswith("_step") and not k.startswith("lr-")  # per step
        }
        m = {k.removesuffix("_epoch"): v for k, v in m.items()}
        row = {"epoch": trainer.current_epoch + 1, **m, "time_s": round(time.time() - self.t0, 1)}
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


# Lightning's notices that say nothing about this run: one per cell, hundreds per sweep.
for _message in (
    ".*LeafSpec.*",
    ".*does not have many workers.*",
    ".*smaller than the logging interval.*",
):
    warnings.filterwarnings("ignore", message=_message)
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)


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


def make_trainer(cfg: DictConfig, out_dir: Path, max_epochs: int, callbacks: list) -> L.Trainer:
    t = cfg.trainer
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    logger = TensorBoardLogger(
        save_dir=str(out_dir), name="tb", version="", default_hp_metric=False
    )
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        use_distributed_sampler=False,  # BucketBatchSampler shards its batches over ranks itself
        precision=t.precision,
        max_epochs=max_epochs,
        gradient_clip_val=t.gradient_clip_val,
        logger=logger,
        callbacks=[*callbacks, LearningRateMonitor()],  # lr-Adam/<layer group> per step
        default_root_dir=str(out_dir),
        enable_checkpointing=any(
            isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks
        ),
        # auto: a bar on a terminal; in a log file, where a bar is a wall of carriage returns,
        # EpochLog's step lines instead
        enable_progress_bar=sys.stdout.isatty() if t.progress_bar == "auto" else t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_steps,
    )


def log_hparams(trainer: L.Trainer, identity: dict, metrics: dict) -> None:
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
    flat = {}

    def walk(d, prefix=""):  # values as text: TensorBoard shows a number 16 as 16.000
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v if isinstance(v, str) else json.dumps(v)

    flat.update(
        _init=metrics["init"], _seed=str(metrics["seed"]), _train_size=str(metrics["train_size"])
    )
    identity = {k: v for k, v in identity.items() if k not in ("init", "seed")}
    identity["data"] = {k: v for k, v in identity["data"].items() if k != "train_size"}
    shown = {
        "final/acc_test_at_best_val": metrics["test/acc_at_best_val"],
        "final/acc_test_last": metrics["test/acc"],
        "final/acc_val_best": metrics["val/acc_best"],
        "final/best_epoch": metrics["best_epoch"],
    }
    if metrics.get("lm"):
        shown["final/lm_ppl_val"] = metrics["lm"]["val/ppl"]
    walk(identity)
    trainer.logger.log_hyperparams(flat, shown)


def save_results(
    trainer: L.Trainer, out_dir: Path, metrics: dict, history: EpochLog, identity: dict
) -> dict:
    """HParams + history.csv, then metrics.json last: its presence means 'finished'."""
    metrics = {**metrics, "history": history.rows, "identity": identity, "provenance": provenance()}
    log_hparams(trainer, identity, metrics)
    write_csv(out_dir / "history.csv", history.rows)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _relaunch_as_this_job(hc) -> None:
    """Lightning's `ddp` starts ranks > 0 by re-running `sys.argv` + `hydra.run.dir=<run.dir>`.

    Under `-m` that would be the whole sweep, in another folder: make it this job alone, in
    this job's folder.
    """
    sys.argv = [sys.argv[0], *hc.overrides.task]
    with read_write(hc.run):
        hc.run.dir = hc.runtime.output_dir


def _check_ddp_launcher(cfg: DictConfig, hc) -> None:
    """Only the basic launcher runs jobs in the process that got the command line, so only there
    can Lightning re-launch ranks; on SLURM, submitit starts one task per device itself."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    many = str(cfg.trainer.strategy).startswith("ddp") and str(cfg.trainer.devices) != "1"
    basic = hc.launcher._target_.endswith("BasicLauncher")
    if many and not basic and not SLURMEnvironment.detect():
        raise LmftError(
            f"trainer.strategy={cfg.trainer.strategy} with several devices needs the basic "
            "launcher (plain -m) or SLURM (hydra/launcher=slurm starts one task per device); "
            "under joblib or submitit_local give each cell one device (README: Scaling out)."
        )


def _remove_if_unused(out_dir: Path, job_name: str) -> None:
    """Delete a run folder that holds only what Hydra put there (refused input leaves nothing)."""
    hydra_own = {".hydra", f"{job_name}.log"}
    if out_dir.is_dir() and {p.name for p in out_dir.iterdir()} <= hydra_own:
        shutil.rmtree(out_dir, ignore_errors=True)


def entry(run: Callable[[DictConfig, Path], dict], cfg: DictConfig) -> None:
    """Body of every @hydra.main: call `run` in Hydra's output dir; user errors exit 2 cleanly.

    Each call leaves the process as it found it (environment, no process group), so that the
    next job of a multirun can start DDP afresh.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc, env = HydraConfig.get(), dict(os.environ)
    out_dir = Path(hc.runtime.output_dir)
    try:
        if hc.mode == RunMode.MULTIRUN:
            _check_ddp_launcher(cfg, hc)
            _relaunch_as_this_job(hc)
        run(cfg, out_dir)
    except LmftError as e:
        _remove_if_unused(out_dir, hc.job.name)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(env)
