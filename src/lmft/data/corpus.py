"""Tokenizer (fitted on training text only) and the token-id cache both stages read.

Reading and tokenizing 50k reviews takes a while; every sweep cell needs the same ids,
so they are computed once per (archive, tokenizer settings) and cached on disk.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

from lmft.data.imdb import Reviews, find_archive, read_imdb
from lmft.io import atomic_path, torch_save, write_text

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]  # PAD must be id 0: the encoder's padding_idx
CACHE_FORMAT = 1


def build_tokenizer(texts: list[str], vocab_size: int | None, min_frequency: int) -> Tokenizer:
    """Word-level, lower-cased, punctuation split off; ids ordered by frequency (specials first)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
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
    def from_texts(cls, tok: Tokenizer, reviews: Reviews) -> Encoded:
        seqs = [e.ids for e in tok.encode_batch(reviews.texts)]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        offsets = torch.zeros(len(seqs) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(seqs), np.int32, int(offsets[-1]))
        ids = torch.from_numpy(flat)
        return cls(ids, offsets, torch.tensor(reviews.labels, dtype=torch.long))


@dataclass
class Corpus:
    tokenizer: Tokenizer
    splits: dict[str, Encoded]  # train, test, and unsup (possibly empty)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.tokenizer)


def _subsample(reviews: Reviews, per_class: int | None, seed: int = 0) -> Reviews:
    """At most `per_class` reviews of each label (for tiny presets); deterministic."""
    if per_class is None:
        return reviews
    keep: list[int] = []
    for lab in sorted(set(reviews.labels)):
        idx = [i for i, y in enumerate(reviews.labels) if y == lab]
        random.Random(seed).shuffle(idx)
        keep += sorted(idx[:per_class])
    keep.sort()
    return Reviews(
        *([getattr(reviews, f)[i] for i in keep] for f in ("texts", "labels", "ratings"))
    )


def cache_key(archive: Path, cfg) -> str:
    st = archive.stat()
    ident = {
        "archive": [str(archive.resolve()), st.st_size, st.st_mtime_ns],
        "vocab_size": cfg.vocab_size,
        "min_frequency": cfg.min_frequency,
        "max_per_class": cfg.max_per_class,
        "use_unsup": cfg.use_unsup,
        "format": CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def load_corpus(cfg) -> Corpus:
    """Tokenizer + ids for the data config `cfg` (the `data` group), from cache when possible."""
    archive = find_archive(cfg.archive, cfg.data_dir, cfg.download)
    cache = Path(cfg.cache_dir) / cache_key(archive, cfg)
    tok_path, ids_path = cache / "tokenizer.json", cache / "ids.pt"
    if tok_path.exists() and ids_path.exists():
        try:
            tok = Tokenizer.from_file(str(tok_path))
            blob = torch.load(ids_path, weights_only=True)
            if blob["fingerprint"] == fingerprint(tok):
                return Corpus(tok, {k: Encoded(**v) for k, v in blob["splits"].items()})
            reason = "does not match its tokenizer"
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            reason = f"is damaged ({type(e).__name__}: {e})"
        print(f"Cache {cache} {reason}; rebuilding.", file=sys.stderr)

    t0 = time.time()
    print(f"Reading {archive} ...", file=sys.stderr)
    reviews = read_imdb(archive)
    reviews = {k: _subsample(v, cfg.max_per_class) for k, v in reviews.items()}
    if not cfg.use_unsup:
        reviews["unsup"] = Reviews()
    # Fitted on training text only (labeled train + unlabeled); the test split never leaks in.
    train_text = reviews["train"].texts + reviews["unsup"].texts
    tok = build_tokenizer(train_text, cfg.vocab_size, cfg.min_frequency)
    splits = {k: Encoded.from_texts(tok, v) for k, v in reviews.items()}
    n = {k: len(v) for k, v in splits.items()}
    print(
        f"Tokenized {n} reviews, vocabulary {tok.get_vocab_size()}, "
        f"in {time.time() - t0:.0f} s; cached in {cache}",
        file=sys.stderr,
    )
    with atomic_path(tok_path) as tmp:
        tok.save(str(tmp))
    blob = {"fingerprint": fingerprint(tok), "splits": {k: vars(v) for k, v in splits.items()}}
    torch_save(blob, ids_path)
    write_text(cache / "source.txt", f"{archive.resolve()}\n")
    return Corpus(tok, splits)
