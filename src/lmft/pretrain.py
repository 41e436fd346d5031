"""Stage 1: pretrain the language model (the `model` group's encoder + a next-token softmax);
writes the encoder hand-off files.

    python -m lmft.pretrain experiment=quick

Output (deterministic, from the config): outputs/pretrain/<name>/{encoder.pt, tokenizer.json,
metrics.json, history.csv, tb/, checkpoints/last.ckpt}. Rerunning resumes from the last
checkpoint (written every `lm.checkpoint_every` epochs), or does nothing if the run finished
with the same settings.
"""

from __future__ import annotations

import math
import sys
import zipfile
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig
from tokenizers import Tokenizer

from lmft import build
from lmft.callbacks import EpochLog, RNGState, Snapshots
from lmft.cli import check_names, entry
from lmft.data import load_corpus
from lmft.errors import LmftError
from lmft.identity import read_finished, run_identity
from lmft.io import atomic_path
from lmft.models.handoff import (
    encoder_path,
    encoder_readable,
    load_encoder_state,
    save_encoder,
)
from lmft.resolvers import register
from lmft.results import save_results
from lmft.trainer import make_trainer


def start_state(init_dir: Path, encoder: dict, corpus) -> dict:
    """The encoder of the finished pretraining run in `init_dir`, checked against the `encoder`
    config this run builds and moved to this run's vocabulary."""
    remedy = "lm.init_from must name a finished pretraining folder (outputs/pretrain/<name>)."
    tok_path = init_dir / "tokenizer.json"
    if not (init_dir / "metrics.json").exists() or not tok_path.exists():
        raise LmftError(f"lm.init_from={init_dir} holds no finished pretraining run. {remedy}")
    old = Tokenizer.from_file(str(tok_path)).get_vocab()
    new = corpus.tokenizer.get_vocab()
    state = load_encoder_state(
        init_dir / "encoder.pt",
        encoder,
        corpus.fingerprint,
        remedy,
        vocab_change=(old, new),
    )
    shared = len(old.keys() & new.keys())
    print(f"[pretrain] starting from {init_dir}: {shared:,} of {len(new):,} words known there")
    return state


def handoff_readable(out_dir: Path) -> bool:
    """Whether the files fine-tuning reads from a finished run load."""
    try:
        Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    except Exception:
        return False
    return encoder_readable(out_dir / "encoder.pt")


def run(cfg: DictConfig, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    identity = run_identity(cfg, "pretrain")
    done = read_finished(out_dir / "metrics.json", identity, "pretraining")
    if done and handoff_readable(out_dir):
        print(f"[pretrain] {out_dir} already finished (val/ppl {done['val/ppl']:.1f}); skipping.")
        return done
    if done:  # finished, but a hand-off file is damaged: write them again from last.ckpt
        print(f"[pretrain] {out_dir}: encoder.pt or tokenizer.json is damaged; writing them again")
    lm = cfg.lm
    wrong = sorted(e for e in lm.snapshots if not 1 <= e <= lm.epochs)
    if wrong:
        raise LmftError(f"lm.snapshots {wrong} are not among the epochs 1..{lm.epochs}.")
    build.check_whole_number(cfg, "lm.checkpoint_every", "epochs")
    build.check_whole_number(cfg, "lm.bucket_pool", "batches")
    L.seed_everything(lm.seed, workers=True, verbose=False)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    dm = build.lm_datamodule(cfg, corpus)
    model = build.language_model(cfg, corpus)
    if lm.init_from:  # domain LM fine-tuning: continue from another pretraining run
        model.encoder.load_state_dict(
            start_state(Path(lm.init_from), model.encoder.config(), corpus)
        )
    # last.ckpt, rewritten (atomically) every lm.checkpoint_every epochs: a rerun resumes there
    ckpt_dir = out_dir / "checkpoints"
    history = EpochLog(f"pretrain {cfg.name}")
    trainer = make_trainer(
        cfg,
        out_dir,
        lm.epochs,
        [
            history,
            RNGState(),
            Snapshots(list(lm.snapshots), out_dir, corpus.fingerprint),
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="last",
                enable_version_counter=False,
                every_n_epochs=lm.checkpoint_every,
            ),
        ],
    )
    last = ckpt_dir / "last.ckpt"
    if last.exists() and not zipfile.is_zipfile(last):  # truncated (an older lmft's write)
        last.replace(last.with_suffix(".ckpt.unreadable"))
        print(
            f"[pretrain] {last} is unreadable (truncated?): set aside as last.ckpt.unreadable; "
            "no earlier state is kept, so training starts again from epoch 1",
            file=sys.stderr,
        )
    if last.exists():
        print(f"[pretrain] resuming from {last}")
    trainer.fit(model, dm, ckpt_path=str(last) if last.exists() else None)
    if not trainer.is_global_zero:  # DDP: rank 0 alone writes the results
        return {}

    # From the history, which the checkpoint restores: a run resumed after its last epoch's
    # checkpoint trains and validates nothing more, so no metric is logged this time.
    val_loss = history.rows[-1]["lm/val_loss"]
    metrics = {
        "val/loss": val_loss,
        "val/ppl": math.exp(val_loss),
        "epochs": trainer.current_epoch,
        "vocab_size": corpus.tokenizer.get_vocab_size(),
        "tokenizer": corpus.fingerprint,
        "softmax": model.softmax,  # how it was computed: fused, or chunked and why
        "softmax_fell_back": model.fell_back,  # on a GPU, chunked for want of the fused kernel
        "corpus": {  # what the LM read: every text, up to lm.max_len + 1 tokens each
            "texts": sum(len(d) for d in dm.train_sets),
            "tokens": sum(int(d.lengths.sum()) for d in dm.train_sets),
            "files": corpus.inputs,
        },
        "snapshots": sorted(e for e in lm.snapshots if encoder_path(out_dir, e).exists()),
    }
    save_encoder(encoder_path(out_dir), model.encoder, corpus.fingerprint)
    with atomic_path(out_dir / "tokenizer.json") as tmp:
        corpus.tokenizer.save(str(tmp))
    metrics = save_results(trainer, out_dir, metrics, history, identity)
    print(f"[pretrain] done: val/ppl {metrics['val/ppl']:.1f}; wrote {out_dir}/encoder.pt")
    return metrics


register()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="pretrain")
def main(cfg: DictConfig) -> None:
    entry(run, cfg)


if __name__ == "__main__":
    check_names(sys.argv)
    main()
