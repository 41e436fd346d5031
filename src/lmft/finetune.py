"""Stage 2: fine-tune the sentiment classifier from the pretrained encoder or from scratch.

    python -m lmft.finetune experiment=quick init=pretrained data.train_size=1000 seed=0
    python -m lmft.finetune -m experiment=quick          # the preset's whole grid

Each cell writes outputs/sweeps/<name>/<cell>/{metrics.json, history.csv, model.pt, tb/}; model.pt
holds the weights of the best validation epoch (for `lmft.predict`). A cell whose
metrics.json is complete is skipped, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from lmft.cli import check_names, entry
from lmft.identity import cell_stage, read_finished, run_identity
from lmft.locks import cell_lock
from lmft.resolvers import register
from lmft.train_size import requested_size

if TYPE_CHECKING:
    import lightning as L

    from lmft.models import SentimentClassifier


def final_metrics(rows: list[dict], test_last: float, test_best: float) -> dict:
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


def test_accuracy(trainer: L.Trainer, model: SentimentClassifier, dm) -> float:
    trainer.test(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["final/acc"])  # not logged: one value, not a curve


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """A cell, unless it is finished (skipped) or another process is training it (skipped:
    a rerun picks up its result)."""
    requested_size(cfg.data.train_size)  # a malformed size is refused before anything is read
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
    if cfg.init.name == "pretrained" and not cfg.init.wait_s:
        from lmft.pretrained import finished_lm

        finished_lm(cfg)  # a missing LM is said before the data is read and tokenized
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

    from lmft import build
    from lmft.callbacks import BestWeights, EpochLog
    from lmft.data import load_corpus
    from lmft.models.handoff import save_model
    from lmft.pretrained import load_pretrained
    from lmft.results import save_results
    from lmft.trainer import make_trainer

    build.check_whole_number(cfg, "classifier.bucket_pool", "batches")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    plan = build.cell_plan(cfg, corpus)
    dm = build.classification_datamodule(cfg, corpus, plan.batch_size)
    model = build.classifier(cfg, corpus, plan.lr)
    lm_used = None
    if cfg.init.name == "pretrained":
        state, lm_used = load_pretrained(cfg, model.encoder.config(), corpus.fingerprint)
        model.encoder.load_state_dict(state)
    history, best = EpochLog(f"{cfg.name} {cfg.cell}"), BestWeights()
    callbacks = [history, best]
    if cfg.classifier.patience:  # stop once validation has not improved for `patience` epochs
        callbacks.append(EarlyStopping("val/acc", mode="max", patience=cfg.classifier.patience))
    trainer = make_trainer(cfg, out_dir, plan.epochs, callbacks)
    trainer.fit(model, dm)
    test_last = test_accuracy(trainer, model, dm)
    model.load_state_dict(best.state)
    test_best = test_accuracy(trainer, model, dm)
    if not trainer.is_global_zero:  # DDP: rank 0 alone writes the results
        return {}
    if cfg.classifier.save_model:
        tokenizer, max_len = corpus.tokenizer.to_str(), cfg.classifier.max_len
        save_model(out_dir / "model.pt", model, best.state, tokenizer, corpus.labels, max_len)
    metrics = {
        "init": cfg.init.name,
        "train_size": plan.train_size,
        "seed": cfg.seed,
        "n_val": len(dm.val_idx),
        "val_majority": dm.val_split.labels[dm.val_idx].bincount().max().item() / len(dm.val_idx),
        "n_test": len(dm.test_idx),
        "n_test_curve": len(dm.curve_idx),
        "batch_size": plan.batch_size,
        "lr": plan.lr,
        "lm": lm_used,
        "inputs": corpus.inputs,
        **final_metrics(history.rows, test_last, test_best),
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
