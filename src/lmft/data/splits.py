"""Index sets drawn with explicit seeds: the validation hold-out and balanced labeled subsets.

Never the global RNG, so that the tokenizer, both stages and both arms agree on them.
"""

from __future__ import annotations

import torch

from lmft.errors import LmftError


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
    labels: torch.Tensor, val_size: int | float, split_seed: int
) -> torch.Tensor:
    """The fixed validation split held out of the labeled training split (same for every run).

    `val_size` is a count, or a fraction of the training split when below 1.
    """
    if isinstance(val_size, float) and 0 < val_size < 1:
        val_size = round(val_size * len(labels))
    if not 2 <= val_size < len(labels):
        raise LmftError(
            f"data.val_size={val_size} must be at least 2 and below the {len(labels)} "
            "labeled training examples."
        )
    return balanced_subset(labels, torch.arange(len(labels)), val_size, split_seed)
