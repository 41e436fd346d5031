"""Stage 2: fine-tune the sentiment classifier from the pretrained encoder or from scratch.

    python -m lmft.finetune experiment=quick init=pretrained data.train_size=1000 seed=0
    python -m lmft.finetune -m experiment=quick          # the preset's whole grid

Each cell writes outputs/sweeps/<name>/<cell>/{metrics.json, history.csv, model.pt, tb/}; model.pt
holds the weights of the best validation epoch (for `lmft.predict`). A cell whose
metrics.json is complete is skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from lmft.data import ClassificationDataModule, load_corpus
from lmft.errors import LmftError
from lmft.io import torch_save
from lmft.models import SentimentClassifier
from lmft.models.encoder import load_encoder_state
from lmft.training import (
    EpochLog,
    data_kwargs,
    encoder_kwargs,
    entry,
    make_trainer,
    read_finished,
    run_identity,
    save_results,
)

MODEL_FORMAT = 1


def pretrain_command(cfg: DictConfig) -> str:
    """The pretrain command for this run: its preset and its data/model/lm/trainer overrides."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # called from Python, not the CLI
        return f"python -m lmft.pretrain experiment={cfg.name}"
    keep = (
        "experiment",
        "name",
        "data",
        "pretrain_data",
        "model",
        "lm",
        "trainer",
        "paths.outputs",
        "paths.pretrain",
    )
    skip = ("data.train_size", "data.test_size", "data.num_workers")
    task = [
        o
        for o in HydraConfig.get().overrides.task
        if o.lstrip("+~").startswith(keep) and not o.startswith(skip)
    ]
    return " ".join(["python -m lmft.pretrain", *task])


def pretrained_state(cfg: DictConfig, kwargs: dict, tokenizer_fingerprint: str) -> dict:
    """The encoder weights of the pretrain run this config points to, checked against it."""
    pdir = Path(cfg.paths.pretrain_dir)
    remedy = f"Run `{pretrain_command(cfg)}` first."
    wanted = run_identity(cfg, "pretrain")
    if read_finished(pdir / "metrics.json", wanted, "pretraining", remedy) is None:
        raise LmftError(f"init=pretrained needs a finished pretraining run in {pdir}. {remedy}")
    return load_encoder_state(pdir / "encoder.pt", kwargs, tokenizer_fingerprint, remedy)


class BestWeights(L.Callback):
    """Keeps, on CPU, the weights of the epoch with the best validation accuracy (first of ties),
    the same epoch `summarize` reports; they become the run's model.pt."""

    def __init__(self):
        self.best, self.state = -1.0, None

    def on_train_epoch_end(self, trainer, pl_module):
        acc = float(trainer.callback_metrics["val/acc"])
        if acc > self.best:
            self.best = acc
            self.state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}


def save_model(path: Path, model: SentimentClassifier, state: dict, corpus, max_len: int) -> None:
    """Everything `lmft.predict` needs: hyperparameters, weights, tokenizer, class names."""
    torch_save(
        {
            "format": MODEL_FORMAT,
            "hparams": dict(model.hparams),
            "state_dict": state,
            "tokenizer": corpus.tokenizer.to_str(),
            "labels": list(corpus.labels),
            "max_len": max_len,
        },
        path,
    )


def summarize(rows: list[dict]) -> dict:
    """Final metrics from the per-epoch history; model selection uses validation only."""
    best = max(rows, key=lambda r: r["val/acc"])  # first epoch among ties
    return {
        "test/acc": rows[-1]["test/acc"],
        "val/acc": rows[-1]["val/acc"],
        "val/acc_best": best["val/acc"],
        "best_epoch": best["epoch"],
        "test/acc_at_best_val": best["test/acc"],
    }


def run(cfg: DictConfig, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    identity = run_identity(cfg, "finetune")
    done = read_finished(out_dir / "metrics.json", identity, "cell")
    if done:
        print(f"[finetune] {out_dir} already finished (test/acc {done['test/acc']:.4f}); skipping.")
        return done
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    c = cfg.classifier
    dm = ClassificationDataModule(
        corpus,
        train_size=cfg.data.train_size,
        test_size=cfg.data.test_size,
        batch_size=c.batch_size,
        max_len=c.max_len,
        seed=cfg.seed,
        **data_kwargs(cfg),
    )
    kwargs = encoder_kwargs(cfg, corpus)
    model = SentimentClassifier(
        encoder=kwargs,
        num_classes=len(corpus.labels),
        pooling=c.pooling,
        dropout=c.dropout,
        lr=c.lr,
        encoder_lr_factor=c.encoder_lr_factor,
        lr_decay=c.lr_decay,
        schedule=c.schedule,
        warmup_frac=c.warmup_frac,
        weight_decay=c.weight_decay,
        gradual_unfreeze=c.gradual_unfreeze,
        freeze_encoder=c.freeze_encoder,
    )
    if cfg.init.name == "pretrained":
        model.encoder.load_state_dict(pretrained_state(cfg, kwargs, corpus.fingerprint))
    history = EpochLog(f"{cfg.name} {cfg.cell}")
    epochs = c.epochs
    if c.max_examples:  # a per-cell compute cap: large labeled sets get fewer epochs
        epochs = min(epochs, math.ceil(c.max_examples / dm.train_size))
    best = BestWeights()
    trainer = make_trainer(cfg, out_dir, epochs, [history, best] if c.save_model else [history])
    trainer.fit(model, dm)
    if not trainer.is_global_zero:  # DDP: rank 0 alone writes the results
        return {}
    if c.save_model:
        save_model(out_dir / "model.pt", model, best.state, corpus, c.max_len)

    metrics = {
        "init": cfg.init.name,
        "train_size": dm.train_size,
        "seed": cfg.seed,
        "n_val": len(dm.val_idx),
        "n_test": len(dm.test_idx),
        **summarize(history.rows),
    }
    metrics = save_results(trainer, out_dir, metrics, history, identity)
    print(
        f"[finetune] {cfg.cell}: test/acc {metrics['test/acc']:.4f}, "
        f"at best val {metrics['test/acc_at_best_val']:.4f} (epoch {metrics['best_epoch']})"
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../../conf", config_name="finetune")
def main(cfg: DictConfig) -> None:
    entry(run, cfg)


if __name__ == "__main__":
    main()
