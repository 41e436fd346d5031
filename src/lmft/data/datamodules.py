"""DataModules for both stages, built on one dataset, one sampler and one collate function.

Splits are index sets drawn with explicit seeds, never with the global RNG, so that
the pretrained and scratch arms of a cell see exactly the same examples in the
same order.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lmft.data.corpus import Corpus, Encoded
from lmft.data.splits import test_subset, training_subset
from lmft.errors import LmftError

TRUNCATING = ("post", "pre")


class TokenDataset(Dataset):
    """Item i: (token ids truncated to `max_len`, label) of `encoded[indices[i]]`.

    `truncating` as Keras' `pad_sequences`: `post` keeps a long text's first `max_len` tokens,
    `pre` (Keras' default, the reference) its last.
    """

    def __init__(
        self, encoded: Encoded, indices: torch.Tensor, max_len: int, truncating: str = "post"
    ):
        if truncating not in TRUNCATING:
            raise LmftError(f"data.truncating must be one of {TRUNCATING}, not {truncating!r}.")
        self.encoded, self.indices, self.max_len = encoded, indices, max_len
        self.truncating = truncating

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        ids = self.encoded[j]
        ids = ids[-self.max_len :] if self.truncating == "pre" else ids[: self.max_len]
        return ids.long(), int(self.encoded.labels[j])

    @property
    def lengths(self) -> torch.Tensor:
        return self.encoded.lengths[self.indices].clamp(max=self.max_len)


POOL_BATCHES = 50  # default length-bucketing pool, in batches (lm/classifier.bucket_pool)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length (less padding), in a random order that depends only on seed+epoch.

    `batch_size` is the global batch: under DDP each rank takes its share of every batch.

    Shuffle, cut into pools of `pool_batches` batches, sort each pool by length, batch,
    then shuffle the batches; `pool_batches=1` gives plain random batches (Keras' `fit` with
    `shuffle=True`). With shuffle=False: batches in length order (for evaluation).
    """

    def __init__(
        self,
        lengths: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        pool_batches: int = POOL_BATCHES,
    ):
        self.lengths, self.batch_size, self.shuffle = lengths, batch_size, shuffle
        self.seed, self.pool, self.epoch = seed, pool_batches * batch_size, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning before each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        """This process's share of every batch (all of it without DDP; see `_batches`)."""
        rank, world = _rank_and_world()
        for batch in self._batches():
            shard = batch[rank::world]
            if shard:
                yield shard
            elif self.shuffle:  # training: every rank must take a step (DDP syncs gradients)
                yield batch[:1]

    def _batches(self):
        """The batches a single process would see; under DDP each is split over the ranks, so
        results do not depend on the number of processes (up to floating-point noise)."""
        n = len(self.lengths)
        if not self.shuffle:
            order = torch.argsort(self.lengths, stable=True)
            yield from (
                order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)
            )
            return
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(n, generator=g)
        batches = []
        for start in range(0, n, self.pool):
            chunk = perm[start : start + self.pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield batches[b].tolist()


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collate(batch: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Right-pad with id 0; keep the true lengths so models can mask padding."""
    seqs, labels = zip(*batch, strict=True)
    return {
        "ids": torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=0),
        "lengths": torch.tensor([len(s) for s in seqs]),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


class _Base(L.LightningDataModule):
    """Validation and the labeled pool are the corpus's (`Corpus.val_idx`, `pool_idx`)."""

    def __init__(
        self,
        corpus: Corpus,
        batch_size: int,
        max_len: int,
        seed: int,
        num_workers: int = 0,
        truncating: str = "post",
        eval_batch_size: int | None = None,
        bucket_pool: int = POOL_BATCHES,
    ):
        super().__init__()
        self.corpus, self.batch_size, self.max_len = corpus, batch_size, max_len
        self.eval_batch_size, self.bucket_pool = eval_batch_size, bucket_pool
        self.truncating = truncating
        self.seed, self.num_workers = seed, num_workers
        self.train_split, self.val_split = corpus.splits["train"], corpus.val_split
        self.val_idx, self.pool_idx = corpus.val_idx, corpus.pool_idx

    def _loader(self, ds: TokenDataset, train: bool) -> DataLoader:
        # Evaluation keeps no activations for a backward pass: a larger batch fits, and on a GPU
        # it runs the LSTM's time steps for many more texts at once.
        bs = self.batch_size if train else self.eval_batch_size or 2 * self.batch_size
        sampler = BucketBatchSampler(ds.lengths, bs, train, self.seed, self.bucket_pool)
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            # Each new iterator draws its workers' seed from this generator. Left to the global
            # one, the draws (one per epoch without workers, one in all with persistent ones)
            # would shift every later dropout mask: data.num_workers would change the results.
            generator=torch.Generator().manual_seed(self.seed),
        )


class LMDataModule(_Base):
    """Language modelling on the pretraining corpus (`extra`) and, with `include_task`, the
    task's training texts outside validation (+ its unlabeled ones); val = the task's validation
    split. Each item is a text's first `max_len + 1` tokens; the model predicts tokens 1..n
    from 0..n-1.
    """

    def __init__(self, corpus: Corpus, include_task: bool = True, **kw):
        super().__init__(corpus, **kw)
        self.include_task = include_task

    def setup(self, stage: str | None = None) -> None:
        n = self.max_len + 1
        s = self.corpus.splits
        parts = [(s["extra"], None)]
        if self.include_task:
            parts += [(self.train_split, self.pool_idx), (s["unsup"], None)]
        self.train_sets = [
            TokenDataset(enc, torch.arange(len(enc)) if idx is None else idx, n, self.truncating)
            for enc, idx in parts
            if len(enc)
        ]
        self.val_set = TokenDataset(self.val_split, self.val_idx, n, self.truncating)

    def train_dataloader(self) -> DataLoader:
        return self._loader(_Concat(self.train_sets), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)


class _Concat(torch.utils.data.ConcatDataset):
    @property
    def lengths(self) -> torch.Tensor:
        return torch.cat([d.lengths for d in self.datasets])


class ClassificationDataModule(_Base):
    """Labeled subset of `train_size` (drawn with `seed`), fixed validation split, test split.

    Splits keep every label equally represented (`balanced_subset`), for any number of classes.

    `test_size` (an int) is a fixed balanced subset of the test split (drawn with
    `split_seed`), the same for every run;
    `None` uses all of it. Every epoch evaluates validation and, for the curves only, the first
    `curve_test_size` of those test texts (a balanced subset; `None`: all of them; 0: none).
    """

    def __init__(
        self,
        corpus: Corpus,
        train_size,
        test_size: int | None = None,
        curve_test_size: int | None = None,
        split_seed: int = 0,
        **kw,
    ):
        super().__init__(corpus, **kw)
        labeled = self.train_split.labels
        self.train_idx = training_subset(labeled, self.pool_idx, train_size, self.seed)
        self.train_size = len(self.train_idx)
        labels = corpus.splits["test"].labels
        self.test_idx = test_subset(labels, torch.arange(len(labels)), test_size, split_seed)
        self.curve_idx = test_subset(labels, self.test_idx, curve_test_size, split_seed)

    def _dataset(self, split: Encoded, idx: torch.Tensor) -> TokenDataset:
        return TokenDataset(split, idx, self.max_len, self.truncating)

    def setup(self, stage: str | None = None) -> None:
        test = self.corpus.splits["test"]
        self.train_set = self._dataset(self.train_split, self.train_idx)
        self.val_set = self._dataset(self.val_split, self.val_idx)
        self.curve_set = self._dataset(test, self.curve_idx)
        self.test_set = self._dataset(test, self.test_idx)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        """Validation and the test curve subset are both evaluated every epoch (test only for
        the curves: nothing is chosen on it); `curve_test_size=0`: validation alone."""
        loaders = [self._loader(self.val_set, train=False)]
        if len(self.curve_idx):
            loaders.append(self._loader(self.curve_set, train=False))
        return loaders

    def test_dataloader(self) -> DataLoader:
        """The whole test set, read once per model state that the run reports."""
        return self._loader(self.test_set, train=False)
