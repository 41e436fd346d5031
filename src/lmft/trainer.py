"""The Lightning trainer both stages run, built from the `trainer` config group."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from lmft.heap import keep_freed_memory
from lmft.io import torch_save

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
# Lightning prints its notices through a handler of its own. Imported after Hydra has set up a
# job's logging (as finetune imports it, in the job), they would reach Hydra's too: twice.
logging.getLogger("lightning").propagate = False


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside their destination, then renamed onto it:
    a full disk or a kill leaves the previous checkpoint whole. (Lightning's own goes through
    a temporary file elsewhere, then a move that across filesystems is a plain copy.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        torch_save(checkpoint, path)


def make_trainer(cfg: DictConfig, out_dir: Path, max_epochs: int, callbacks: list) -> L.Trainer:
    t = cfg.trainer
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    if t.keep_freed_memory:
        keep_freed_memory()
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
        plugins=[AtomicCheckpointIO()],
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
