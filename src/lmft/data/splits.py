"""Index sets drawn with explicit seeds: the validation hold-out and balanced labeled subsets.

Never the global RNG, so that the tokenizer, both stages and every arm (the neural ones read
token ids, the linear baseline raw texts) agree on them.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from lmft.errors import LmftError
from lmft.train_size import parse_train_size


def balanced_subset(labels: torch.Tensor, pool: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` indices from `pool`, n/k per label of the k labels in it (the rest to the lowest
    labels), drawn with `seed`. For one seed a smaller subset is a prefix of a larger one per
    label, so sizes nest.
    """
    g = torch.Generator().manual_seed(seed)
    classes = labels[pool].unique().tolist()
    out = []
    for i, c in enumerate(classes):
        members = pool[labels[pool] == c]
        want = n // len(classes) + (i < n % len(classes))
        if want > len(members):
            raise LmftError(
                f"Asked for {n} examples ({want} of label {c}) but the pool has only "
                f"{len(members)} of label {c}; use a smaller data.train_size or 'all'."
            )
        out.append(members[torch.randperm(len(members), generator=g)[:want]])
    return torch.cat(out).sort().values


def outside(n: int, held_out: torch.Tensor) -> torch.Tensor:
    """The indices in 0..n-1 that are not in `held_out` (e.g. training texts outside validation)."""
    keep = torch.ones(n, dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten()


def validation_indices(
    labels: torch.Tensor, val_size: int | float, split_seed: int, groups: list[str] | None = None
) -> torch.Tensor:
    """The fixed validation split held out of the labeled training split (same for every run).

    `val_size` is a count, or a fraction of the training split when below 1. Without `groups`,
    exactly that many, balanced by label; with `groups` (one per text), whole groups
    (`whole_groups`).
    """
    if isinstance(val_size, float) and 0 < val_size < 1:
        val_size = round(val_size * len(labels))
    if not 2 <= val_size < len(labels):
        raise LmftError(
            f"data.val_size={val_size} must be at least 2 and below the {len(labels)} "
            "labeled training examples."
        )
    if groups is None:
        return balanced_subset(labels, torch.arange(len(labels)), val_size, split_seed)
    return whole_groups(labels, val_size, split_seed, groups, "data.val_size")


def whole_groups(
    labels: torch.Tensor, size: int, seed: int, groups: list[str], key: str
) -> torch.Tensor:
    """About `size` indices (sorted) of whole groups (one group per text), so that no group is
    both in and out; each label's share near the whole's. That is scikit-learn's
    `StratifiedGroupKFold`, the first of round(n / size) folds, drawn with `seed`. `key` is the
    setting that asked for `size` (named in the error when there are too few groups)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_folds = max(2, round(len(labels) / size))
    folds = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    try:
        _, held = next(folds.split(np.zeros(len(labels)), labels.numpy(), groups))
    except ValueError as e:  # fewer groups than folds
        raise LmftError(
            f"data.val_groups=true: cannot hold out whole groups of about {size} texts ({e}). "
            f"Use a larger {key}, or data.val_groups=false."
        ) from e
    return torch.from_numpy(np.sort(held))


def labeled_pool(
    train_labels: torch.Tensor,
    val_labels: torch.Tensor | None,
    val_size,
    split_seed: int,
    groups: list[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation indices, labeled pool indices). With a validation split of its own
    (`val_labels`) validation is all of it and the pool all of train; otherwise validation is
    the fixed hold-out of train (indices into train; whole `groups` when given), and the pool
    the rest."""
    if val_labels is not None:
        return torch.arange(len(val_labels)), torch.arange(len(train_labels))
    val = validation_indices(train_labels, val_size, split_seed, groups)
    return val, outside(len(train_labels), val)


def training_subset(
    train_labels: torch.Tensor, pool: torch.Tensor, train_size, seed: int
) -> torch.Tensor:
    """The labeled examples of a cell of `train_size` (`all` or a count) and `seed`."""
    n = parse_train_size(train_size, len(pool))
    return pool if n == len(pool) else balanced_subset(train_labels, pool, n, seed)


def test_subset(
    labels: torch.Tensor, pool: torch.Tensor, size: int | None, split_seed: int
) -> torch.Tensor:
    """A fixed balanced `size` of `pool` (the same for every run), or all of it (None)."""
    if size is not None and size > len(pool):
        print(f"note: a test size of {size} asked for, but the test set has {len(pool)} "
              "texts: using all of them.", file=sys.stderr)  # fmt: skip
    if size is None or size >= len(pool):
        return pool
    return balanced_subset(labels, pool, size, split_seed)
