"""From a stage's config to the arguments of what it builds (DataModule, encoder)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lmft.data.corpus import Corpus
from lmft.errors import LmftError


def check_whole_number(cfg: DictConfig, key: str, unit: str) -> None:
    """That the config value at the dotted `key` is a whole number of `unit`, 1 or more: checked
    before a stage reads any data, with an error that names the key."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not (isinstance(value, int) and value >= 1):
        raise LmftError(f"{key}={value!r}: use a whole number of {unit}, 1 or more.")


def data_kwargs(cfg: DictConfig) -> dict:
    """The DataModule arguments both stages take from the data config."""
    d = cfg.data
    return dict(
        val_size=d.val_size,
        split_seed=d.split_seed,
        num_workers=d.num_workers,
        truncating=d.truncating,
    )


def encoder_kwargs(cfg: DictConfig, corpus: Corpus, section: str) -> dict:
    """The encoder's kwargs for the stage whose config section is `section` (lm, classifier):
    the `model` group, with that stage's `input_dropout` when it sets one (the reference drops
    0.3 of the LSTM's inputs in the LM and 0.5 in the classifier)."""
    kw = {"vocab_size": corpus.tokenizer.get_vocab_size(), **OmegaConf.to_container(cfg.model)}
    rate = cfg[section].input_dropout
    return kw if rate is None else {**kw, "input_dropout": rate}
