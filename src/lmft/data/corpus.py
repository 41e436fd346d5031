"""Tokenizer (fitted on training text only) and the token-id cache both stages read.

Reading and tokenizing 50k reviews takes a while; every sweep cell needs the same ids,
so they are computed once per (archive, tokenizer settings) and cached on disk.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

from lmft.data.reader import DatasetReader, dataset_reader
from lmft.data.splits import labeled_pool
from lmft.data.text_files import read_plain_texts, text_file_paths
from lmft.data.texts import Texts
from lmft.errors import LmftError
from lmft.identity import cache_settings
from lmft.io import atomic_path, torch_save, write_text

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]  # PAD must be id 0: the encoder's padding_idx
CACHE_FORMAT = 4  # bumped whenever what the cache holds changes


# Keras' `Tokenizer` default `filters`: each of these characters becomes a space.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
TOKENIZERS = ("words", "keras")


def build_tokenizer(
    texts: list[str], vocab_size: int | None, min_frequency: int, kind: str = "words"
) -> Tokenizer:
    """Word-level, lower-cased; ids ordered by frequency (specials first).

    `words`: NFKC, punctuation split off as tokens, <bos>/<eos> around each text.
    `keras`: Keras' `Tokenizer` (the reference): the `KERAS_FILTERS` characters become
    spaces, words are split on spaces (so punctuation is dropped and "didn't" stays one
    word), no <bos>/<eos>.
    """
    if kind not in TOKENIZERS:
        raise LmftError(f"data.tokenizer must be one of {TOKENIZERS}, not {kind!r}.")
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    if kind == "keras":
        pattern = Regex("[" + re.escape(KERAS_FILTERS) + "]")
        tok.normalizer = normalizers.Sequence(
            [normalizers.Lowercase(), normalizers.Replace(pattern, " ")]
        )
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    else:
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, 2), (EOS, 3)]
        )
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size or 2**31 - 1,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def fingerprint(tok: Tokenizer) -> str:
    """Identity of a tokenizer: same fingerprint means same ids for the same text."""
    return hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]


@dataclass
class Encoded:
    """Token ids of one split as a flat tensor + offsets (cheap to save, load and slice)."""

    ids: torch.Tensor  # int32 [total tokens]
    offsets: torch.Tensor  # int64 [n + 1]
    labels: torch.Tensor  # int64 [n]; -1 for unlabeled

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    @classmethod
    def from_texts(cls, tok: Tokenizer, split: Texts) -> Encoded:
        seqs = [e.ids for e in tok.encode_batch(split.texts)]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        offsets = torch.zeros(len(seqs) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(seqs), np.int32, int(offsets[-1]))
        ids = torch.from_numpy(flat)
        return cls(ids, offsets, torch.tensor(split.labels, dtype=torch.long))


@dataclass
class Corpus:
    tokenizer: Tokenizer
    splits: dict[str, Encoded]  # train, test, unsup, extra (possibly empty); val if given
    labels: list[str]  # class names; label i of the data is labels[i]
    val_idx: torch.Tensor  # validation: the hold-out of train, or all of the val split
    pool_idx: torch.Tensor  # the labeled pool the cells draw from: train outside validation
    inputs: list[str]  # the files read (the task's, then the pretraining corpus's), resolved

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.tokenizer)

    @property
    def val_split(self) -> Encoded:
        return self.splits.get("val", self.splits["train"])


def _subsample(split: Texts, per_class: int | None, seed: int = 0) -> Texts:
    """At most `per_class` texts of each label (for tiny presets); deterministic."""
    if per_class is None:
        return split
    return split.subset(split.per_label(lambda n: per_class, seed))


def read_task(reader: DatasetReader, inputs: list[Path]) -> tuple[dict[str, Texts], list[str]]:
    """The task's texts per split (`unsup` empty if the reader gives none), at most
    `data.max_per_class` of each label, and the class names."""
    print(f"Reading {', '.join(map(str, inputs))} ...", file=sys.stderr)
    texts, names = reader.read(inputs)
    texts.setdefault("unsup", Texts())
    return {k: _subsample(v, reader.cfg.max_per_class) for k, v in texts.items()}, names


def validation_and_pool(texts: dict[str, Texts], data_cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation, labeled pool) indices of the task's texts (`lmft.data.splits.labeled_pool`),
    whole groups held out with `data.val_groups`."""
    own, train = texts.get("val"), texts["train"]
    groups = None
    if data_cfg.val_groups:
        if own is not None:
            raise LmftError(
                "data.val_groups=true holds whole groups of the training texts out as "
                "validation, but this data has a validation split of its own: drop "
                "data.val_groups=true."
            )
        if not train.groups:
            raise LmftError(
                "data.val_groups=true needs each training text's group, and this data's reader "
                "gives none (IMDB's gives each review's film, from the archive's "
                "aclImdb/train/urls_*.txt files; data=text_classification gives the column "
                "data.group_column names, when set). Give the groups, or drop "
                "data.val_groups=true."
            )
        groups = train.groups
    return labeled_pool(
        torch.tensor(train.labels),
        None if own is None else torch.tensor(own.labels),
        data_cfg.val_size,
        data_cfg.split_seed,
        groups,
    )


def _stat(p: Path) -> list:
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    return [str(p.resolve())] + [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def cache_key(files: list[Path], data_cfg, pretrain_cfg) -> str:
    settings = cache_settings(OmegaConf.to_container(data_cfg))
    ident = {
        "inputs": [_stat(p) for p in files if p.exists()],
        "data": settings,
        "pretrain_data": OmegaConf.to_container(pretrain_cfg),
        "format": CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def load_corpus(data_cfg, pretrain_cfg) -> Corpus:
    """Tokenizer + ids for the `data` and `pretrain_data` configs, from cache when possible."""
    reader = dataset_reader(data_cfg)
    task = reader.inputs()
    extra = text_file_paths(list(pretrain_cfg.files)) if pretrain_cfg.files else []
    if not pretrain_cfg.include_task and not extra:
        raise LmftError("pretrain_data.include_task=false needs pretrain_data.files to read.")
    cache = Path(data_cfg.cache_dir) / cache_key(task + extra, data_cfg, pretrain_cfg)
    inputs = [str(p.resolve()) for p in task + extra]
    tok_path, ids_path = cache / "tokenizer.json", cache / "ids.pt"
    if tok_path.exists() and ids_path.exists():
        try:
            tok = Tokenizer.from_file(str(tok_path))
            blob = torch.load(ids_path, weights_only=True)
            if blob["fingerprint"] == fingerprint(tok):
                splits = {k: Encoded(**v) for k, v in blob["splits"].items()}
                idx = blob["val_idx"], blob["pool_idx"]
                return Corpus(tok, splits, blob["labels"], *idx, inputs)
            reason = "does not match its tokenizer"
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            reason = f"is damaged ({type(e).__name__}: {e})"
        print(f"Cache {cache} {reason}; rebuilding.", file=sys.stderr)

    t0 = time.time()
    texts, names = read_task(reader, task)
    texts["extra"] = Texts.unlabeled(read_plain_texts(extra, pretrain_cfg.doc_per) if extra else [])
    val_idx, pool_idx = validation_and_pool(texts, data_cfg)
    # Fitted on training text only (labeled train outside the validation hold-out, unlabeled,
    # pretraining corpus); never on validation or test texts.
    train = texts["train"].subset(pool_idx.tolist())
    fit_on = train.texts + texts["unsup"].texts + texts["extra"].texts
    tok = build_tokenizer(fit_on, data_cfg.vocab_size, data_cfg.min_frequency, data_cfg.tokenizer)
    splits = {k: Encoded.from_texts(tok, v) for k, v in texts.items()}
    n = {k: len(v) for k, v in splits.items() if len(v)}
    print(
        f"Tokenized {n} texts, vocabulary {tok.get_vocab_size()}, classes {names}, "
        f"in {time.time() - t0:.0f} s; cached in {cache}",
        file=sys.stderr,
    )
    with atomic_path(tok_path) as tmp:
        tok.save(str(tmp))
    blob = {
        "fingerprint": fingerprint(tok),
        "labels": names,
        "splits": {k: vars(v) for k, v in splits.items()},
        "val_idx": val_idx,
        "pool_idx": pool_idx,
    }
    torch_save(blob, ids_path)
    write_text(cache / "source.txt", "".join(f"{p}\n" for p in inputs))
    return Corpus(tok, splits, names, val_idx, pool_idx, inputs)
