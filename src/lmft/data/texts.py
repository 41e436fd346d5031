"""The dataset-neutral container every reader returns: one split's texts and label ids."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass
class Texts:
    """Texts of one split and their label ids (-1: unlabeled), in an order that never depends
    on how the files were stored, and optionally each text's group (IMDB: its film), which
    `data.val_groups` keeps whole on one side of the validation split. A reader may subclass
    it to keep a per-text field of its format (IMDB's `Reviews`: the star rating); `subset`
    keeps every field (an empty one stays empty)."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # empty: the reader knows no groups

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def unlabeled(cls, texts: list[str]) -> Texts:
        return cls(list(texts), [-1] * len(texts))

    def per_label(self, take: Callable[[int], int], seed: int) -> list[int]:
        """Indices (sorted) of `take(n)` random examples of each label that has n, drawn with
        `seed`."""
        out: list[int] = []
        for lab in sorted(set(self.labels)):
            members = [i for i, y in enumerate(self.labels) if y == lab]
            random.Random(seed).shuffle(members)
            out += members[: take(len(members))]
        return sorted(out)

    def subset(self, indices: list[int]) -> Texts:
        return type(self)(
            **{
                f.name: [v[i] for i in indices] if (v := getattr(self, f.name)) else []
                for f in fields(self)
            }
        )
