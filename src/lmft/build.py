"""From a config to what a stage trains: the DataModules, the language model and the classifier.

Pretraining, fine-tuning and the bench all build here, so the bench times the models the presets
train. A cell's batch size, learning rate and epochs (`cell_plan`) are known before anything is
built.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from lmft.data import ClassificationDataModule, Corpus, LMDataModule
from lmft.errors import LmftError
from lmft.models import LanguageModel, SentimentClassifier
from lmft.train_size import parse_train_size


def check_whole_number(cfg: DictConfig, key: str, unit: str) -> None:
    """That the config value at the dotted `key` is a whole number of `unit`, 1 or more: checked
    before a stage reads any data, with an error that names the key."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
        raise LmftError(f"{key}={value!r}: use a whole number of {unit}, 1 or more.")


def encoder_kwargs(cfg: DictConfig, corpus: Corpus, section: str) -> dict:
    """The encoder's kwargs for the stage whose config section is `section` (lm, classifier):
    the `model` group, with that stage's `input_dropout` when it sets one (the reference drops
    0.3 of the LSTM's inputs in the LM and 0.5 in the classifier)."""
    kw = {"vocab_size": corpus.tokenizer.get_vocab_size(), **OmegaConf.to_container(cfg.model)}
    rate = cfg[section].input_dropout
    return kw if rate is None else {**kw, "input_dropout": rate}


def lm_datamodule(cfg: DictConfig, corpus: Corpus, batch_size: int | None = None) -> LMDataModule:
    """Pretraining's batches (at `lm.batch_size` unless `batch_size` is given) and validation's
    (at `lm.eval_batch_size`)."""
    lm = cfg.lm
    return LMDataModule(
        corpus,
        include_task=cfg.pretrain_data.include_task,
        batch_size=batch_size or lm.batch_size,
        eval_batch_size=lm.eval_batch_size,
        bucket_pool=lm.bucket_pool,
        max_len=lm.max_len,
        seed=lm.seed,
        num_workers=cfg.data.num_workers,
        truncating=cfg.data.truncating,
    )


def from_section(cls: type, section: DictConfig, **given):
    """`cls` built from the config section's keys that name its constructor's arguments (a
    model's settings are named as its arguments), and the arguments `given`."""
    settings = OmegaConf.to_container(section)
    names = [k for k in inspect.signature(cls).parameters if k not in given]
    return cls(**{k: settings[k] for k in names}, **given)


def language_model(cfg: DictConfig, corpus: Corpus) -> LanguageModel:
    return from_section(LanguageModel, cfg.lm, encoder=encoder_kwargs(cfg, corpus, "lm"))


@dataclass(frozen=True)
class CellPlan:
    """What a fine-tuning cell trains with, from its config and the size of its labeled set."""

    train_size: int
    batch_size: int
    lr: float
    epochs: int


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


def cell_plan(cfg: DictConfig, corpus: Corpus) -> CellPlan:
    """The cell's labeled examples (`data.train_size` of the pool), batch size and learning rate
    (`cell_batch_and_lr`), and epochs: with `classifier.max_examples` (a per-cell compute cap)
    large labeled sets get fewer."""
    c = cfg.classifier
    n = parse_train_size(cfg.data.train_size, len(corpus.pool_idx))
    batch, lr = cell_batch_and_lr(c, n)
    epochs = min(c.epochs, math.ceil(c.max_examples / n)) if c.max_examples else c.epochs
    return CellPlan(n, batch, lr, epochs)


def classification_datamodule(
    cfg: DictConfig, corpus: Corpus, batch_size: int, eval_batch_size: int | None = None
) -> ClassificationDataModule:
    """The cell's batches: its labeled subset (`data.train_size`, `seed`), validation and test
    (evaluated at `classifier.eval_batch_size` unless `eval_batch_size` is given)."""
    c, d = cfg.classifier, cfg.data
    return ClassificationDataModule(
        corpus,
        train_size=d.train_size,
        test_size=d.test_size,
        curve_test_size=d.curve_test_size,
        split_seed=d.split_seed,
        batch_size=batch_size,
        bucket_pool=c.bucket_pool,
        max_len=c.max_len,
        eval_batch_size=eval_batch_size or c.eval_batch_size,
        seed=cfg.seed,
        num_workers=d.num_workers,
        truncating=d.truncating,
    )


def classifier(cfg: DictConfig, corpus: Corpus, lr: float) -> SentimentClassifier:
    """The classifier, its encoder freshly initialised (the pretrained arm loads the LM's into
    it), with the head's learning rate `lr` (`cell_plan`)."""
    encoder = encoder_kwargs(cfg, corpus, "classifier")
    return from_section(
        SentimentClassifier, cfg.classifier, encoder=encoder, num_classes=len(corpus.labels), lr=lr
    )
