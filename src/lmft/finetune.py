"""Stage 2: fine-tune the sentiment classifier from the pretrained encoder or from scratch.

    python -m lmft.finetune experiment=quick init=pretrained data.train_size=1000 seed=0
    python -m lmft.finetune -m experiment=quick          # the preset's whole grid

Each cell writes outputs/sweeps/<name>/<cell>/{metrics.json, history.csv, model.pt, tb/}; model.pt
holds the weights of the best validation epoch (for `lmft.predict`). A cell whose
metrics.json is complete is skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from lmft.cli import check_names, entry
from lmft.errors import LmftError
from lmft.identity import cell_stage, override_key, read_finished, reads, run_identity
from lmft.locks import cell_lock
from lmft.resolvers import register

if TYPE_CHECKING:
    import lightning as L

    from lmft.models import SentimentClassifier


def pretrain_command(cfg: DictConfig, name: str | None = None, extra: tuple = ()) -> str:
    """The pretrain command for this run: its preset, where its LM goes, and its
    data/model/lm/trainer overrides (under `name` instead of the run's own, if given; the
    overrides in `extra` replace those of the same keys)."""
    from hydra.core.hydra_config import HydraConfig

    added = [*([f"name={name}"] if name else []), *extra]
    if not HydraConfig.initialized():  # called from Python, not the CLI
        return " ".join([f"python -m lmft.pretrain experiment={cfg.name}", *added])
    where = ("experiment", "paths.outputs", "paths.pretrain_dir")
    replaced = {override_key(o) for o in extra}

    def needed(key: str) -> bool:  # the preset, where the LM goes, what it reads
        if key in replaced:
            return False
        return key in where or reads(key, "pretrain") or (key in ("name", "lm_name") and not name)

    task = [o for o in HydraConfig.get().overrides.task if needed(override_key(o))]
    return " ".join(["python -m lmft.pretrain", *task, *added])


def wait_for_lm(pdir: Path, wanted: dict, remedy: str, wait_s: float) -> dict | None:
    """The metrics of the finished LM in `pdir`, or None. A cell started while its LM still
    trains (`init.wait_s`: bench/gpu_check.sh starts the pretrained arm before the LM ends, so
    that the cells' start-up overlaps its last epochs) waits up to `wait_s` seconds for them."""

    def finished() -> dict | None:
        return read_finished(pdir / "metrics.json", wanted, "pretraining", remedy)

    done = finished()
    if done is None and wait_s > 0:
        print(f"[finetune] waiting up to {wait_s} s for the LM in {pdir} to finish", flush=True)
        t0 = time.monotonic()
        while (done := finished()) is None and time.monotonic() - t0 < wait_s:
            time.sleep(1)
        if done is not None:
            print(f"[finetune] the LM finished after {time.monotonic() - t0:.0f} s", flush=True)
    return done


def pretrained_state(
    cfg: DictConfig, kwargs: dict, tokenizer_fingerprint: str
) -> tuple[dict, dict]:
    """The encoder weights of the pretrain run this config points to (after its last epoch, or
    after `init.lm_epoch`), checked against it, and what the report says of that LM (its
    folder, epochs and validation perplexity then)."""
    from lmft.models.handoff import encoder_path, load_encoder_state

    pdir = Path(cfg.paths.pretrain_dir)
    cmd = pretrain_command(cfg)
    remedy = f"Run `{cmd}` first."
    other = (  # that folder keeps its run: these settings need a name of their own
        f"Pretrain these settings under a new name (`{pretrain_command(cfg, 'NEW')}`) and "
        f"give this command name=NEW too, or delete {pdir} and run `{cmd}`."
    )
    wanted = run_identity(cfg, "pretrain")
    done = wait_for_lm(pdir, wanted, other, cfg.init.wait_s)
    if done is None:
        waited = f" (waited {cfg.init.wait_s} s)" if cfg.init.wait_s > 0 else ""
        raise LmftError(
            f"init=pretrained needs a finished pretraining run in {pdir}{waited}. {remedy}"
        )
    epoch = cfg.init.lm_epoch
    if epoch == done["epochs"]:
        epoch = None  # the last epoch's encoder is encoder.pt
    kept = done.get("snapshots", [])
    if epoch and epoch not in kept:
        keep = pretrain_command(cfg, "NEW", [f"lm.snapshots=[{epoch}]"])
        raise LmftError(
            f"init.lm_epoch={epoch}: {pdir} kept the encoder after epochs {kept} and its last, "
            f"{done['epochs']}, only (lm.snapshots). Pretrain with lm.snapshots listing {epoch} "
            f"under a new name (`{keep}`) and give this command lm_name=NEW, or pick one of "
            "those epochs."
        )
    path = encoder_path(pdir, epoch)
    state = load_encoder_state(path, kwargs, tokenizer_fingerprint, remedy)
    ppl = math.exp(done["history"][epoch - 1]["val/loss"]) if epoch else done["val/ppl"]
    return state, {"dir": str(pdir), "epochs": epoch or done["epochs"], "val/ppl": ppl}


def summarize(rows: list[dict], test_last: float, test_best: float) -> dict:
    """Final metrics: the whole test set read with the last and with the best-validation weights
    (model selection uses validation only), and from the per-epoch history the peak of the test
    curve, the reference's reading (chosen on test: optimistic, never a headline)."""
    best = max(rows, key=lambda r: r["val/acc"])  # first epoch among ties
    return {
        "test/acc": test_last,
        "test/acc_at_best_val": test_best,
        "val/acc": rows[-1]["val/acc"],
        "val/acc_best": best["val/acc"],
        "best_epoch": best["epoch"],
        "test/acc_curve_max": max((r["test/acc"] for r in rows if "test/acc" in r), default=None),
    }


def cell_batch_and_lr(c: DictConfig, n: int) -> tuple[int, float]:
    """The batch size and learning rate of a cell with `n` labeled examples.

    With `classifier.steps_per_epoch` set (GPU speed), the batch grows with the labeled set,
    from `batch_size` up to `max_batch_size`, to about that many steps per epoch, and the
    learning rate with the square root of the batch: `seed` keeps the reference's batch 32
    and rate 1e-3 at 1,000 labels and runs 256 at 2.8e-3 with all 22,500. Both arms of a cell
    get the same.
    """
    if not c.steps_per_epoch:
        return c.batch_size, c.lr
    batch = min(max(math.ceil(n / c.steps_per_epoch), c.batch_size), c.max_batch_size)
    return batch, c.lr * math.sqrt(batch / c.batch_size)


def test_accuracy(trainer: L.Trainer, model: SentimentClassifier, dm) -> float:
    trainer.test(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["final/acc"])  # not logged: one value, not a curve


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """A cell, unless it is finished (skipped) or another process is training it (skipped:
    a rerun picks up its result)."""
    out_dir = Path(out_dir)
    identity = run_identity(cfg, cell_stage(cfg.init.name))

    def finished() -> dict | None:
        done = read_finished(out_dir / "metrics.json", identity, "cell")
        if done:
            print(f"[finetune] {out_dir} already finished (test/acc {done['test/acc']:.4f}); "
                  "skipping.")  # fmt: skip
        return done

    if done := finished():
        return done
    with cell_lock(out_dir) as mine:
        if not mine:
            print(f"[finetune] {out_dir} is being trained by another process; skipping it "
                  "(a rerun reads its result).")  # fmt: skip
            return {}
        if done := finished():  # it finished between the check above and the lock
            return done
        if cfg.init.name == "baseline":  # the linear yardstick: scikit-learn, no torch model
            from lmft.baseline import run_cell

            return run_cell(cfg, out_dir, identity)
        return train_cell(cfg, out_dir, identity)


def train_cell(cfg: DictConfig, out_dir: Path, identity: dict) -> dict:
    """A neural cell: fine-tune, read the test set with the last and the best weights, write
    model.pt and the results."""
    # Imported here, not at the top: a sweep's launcher process (joblib, submitit) imports this
    # module but runs no cell, so it starts the cells without first loading torch and Lightning;
    # and a finished cell is skipped without them.
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    from lmft.callbacks import BestWeights, EpochLog
    from lmft.data import ClassificationDataModule, load_corpus
    from lmft.models import SentimentClassifier
    from lmft.models.handoff import save_model
    from lmft.results import save_results
    from lmft.stage_args import check_whole_number, data_kwargs, encoder_kwargs
    from lmft.trainer import make_trainer

    check_whole_number(cfg, "classifier.bucket_pool", "batches")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    c = cfg.classifier
    dm = ClassificationDataModule(
        corpus,
        train_size=cfg.data.train_size,
        test_size=cfg.data.test_size,
        curve_test_size=cfg.data.curve_test_size,
        batch_size=c.batch_size,
        bucket_pool=c.bucket_pool,
        max_len=c.max_len,
        eval_batch_size=c.eval_batch_size,
        seed=cfg.seed,
        **data_kwargs(cfg),
    )
    dm.batch_size, lr = cell_batch_and_lr(c, dm.train_size)
    kwargs = encoder_kwargs(cfg, corpus, "classifier")
    model = SentimentClassifier(
        encoder=kwargs,
        num_classes=len(corpus.labels),
        pooling=c.pooling,
        dropout=c.dropout,
        lr=lr,
        encoder_lr_factor=c.encoder_lr_factor,
        lr_decay=c.lr_decay,
        schedule=c.schedule,
        warmup_frac=c.warmup_frac,
        weight_decay=c.weight_decay,
        gradual_unfreeze=c.gradual_unfreeze,
        freeze_encoder=c.freeze_encoder,
        adam_eps=c.adam_eps,
        feature_norm=c.feature_norm,
    )
    lm_used = None
    if cfg.init.name == "pretrained":
        state, lm_used = pretrained_state(cfg, kwargs, corpus.fingerprint)
        model.encoder.load_state_dict(state)
    history = EpochLog(f"{cfg.name} {cfg.cell}")
    epochs = c.epochs
    if c.max_examples:  # a per-cell compute cap: large labeled sets get fewer epochs
        epochs = min(epochs, math.ceil(c.max_examples / dm.train_size))
    best = BestWeights()
    callbacks = [history, best]
    if c.patience:  # stop once validation has not improved for `patience` epochs
        callbacks.append(EarlyStopping("val/acc", mode="max", patience=c.patience))
    trainer = make_trainer(cfg, out_dir, epochs, callbacks)
    trainer.fit(model, dm)
    test_last = test_accuracy(trainer, model, dm)
    model.load_state_dict(best.state)
    test_best = test_accuracy(trainer, model, dm)
    if not trainer.is_global_zero:  # DDP: rank 0 alone writes the results
        return {}
    if c.save_model:
        save_model(
            out_dir / "model.pt",
            model,
            best.state,
            corpus.tokenizer.to_str(),
            corpus.labels,
            c.max_len,
        )

    metrics = {
        "init": cfg.init.name,
        "train_size": dm.train_size,
        "seed": cfg.seed,
        "n_val": len(dm.val_idx),
        "n_test": len(dm.test_idx),
        "n_test_curve": len(dm.curve_idx),
        "batch_size": dm.batch_size,
        "lr": lr,
        "lm": lm_used,
        **summarize(history.rows, test_last, test_best),
    }
    metrics = save_results(trainer, out_dir, metrics, history, identity)
    print(
        f"[finetune] {cfg.cell}: test/acc {metrics['test/acc']:.4f}, "
        f"at best val {metrics['test/acc_at_best_val']:.4f} (epoch {metrics['best_epoch']})"
    )
    return metrics


register()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="finetune")
def main(cfg: DictConfig) -> None:
    entry(run, cfg)


if __name__ == "__main__":
    check_names(sys.argv)
    main()
