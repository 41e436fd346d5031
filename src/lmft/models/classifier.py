"""Stage 2: sentiment classifier on top of the shared encoder."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAccuracy

from lmft.errors import LmftError
from lmft.models.encoder import LSTMEncoder, length_mask

POOLINGS = ("mean", "max", "last", "concat")


def pool(h: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """[batch, time, hidden] -> [batch, hidden] (x3 for concat), over real positions only."""
    mask = length_mask(lengths, h.shape[1]).unsqueeze(-1)
    mean = (h * mask).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(h.dtype)
    if how == "mean":
        return mean
    last = h[torch.arange(len(h), device=h.device), (lengths - 1).clamp(min=0)]
    if how == "last":
        return last
    mx = h.masked_fill(~mask, torch.finfo(h.dtype).min).max(1).values
    if how == "max":
        return mx
    return torch.cat([last, mx, mean], dim=-1)


class SentimentClassifier(L.LightningModule):
    """encoder -> masked pooling -> dropout -> linear -> sigmoid (binary cross-entropy).

    `encoder_lr_factor` scales the encoder's learning rate relative to the head's
    (1.0 = one rate for all, as in the reference). `gradual_unfreeze` (ULMFiT) trains
    only the head in epoch 1, adds the LSTM in epoch 2 and the embedding from epoch 3.
    """

    def __init__(
        self,
        encoder: dict,
        pooling: str = "mean",
        dropout: float = 0.5,
        lr: float = 1e-3,
        encoder_lr_factor: float = 1.0,
        weight_decay: float = 0.0,
        gradual_unfreeze: bool = False,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"classifier.pooling must be one of {POOLINGS}, not {pooling!r}")
        self.save_hyperparameters(logger=False)
        self.encoder = LSTMEncoder(**encoder)
        width = self.encoder.hidden_size * (3 if pooling == "concat" else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, 1)
        self.val_acc, self.test_acc = BinaryAccuracy(), BinaryAccuracy()

    def on_train_epoch_start(self):
        if self.hparams.gradual_unfreeze:
            groups = (self.head, self.encoder.lstm, self.encoder.embedding)  # top first
            for i, group in enumerate(groups):
                group.requires_grad_(i <= self.current_epoch)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [batch]."""
        pooled = pool(self.encoder(ids), lengths, self.hparams.pooling)
        return self.head(self.dropout(pooled)).squeeze(-1).float()

    def training_step(self, batch, batch_idx):
        logits = self(batch["ids"], batch["lengths"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        if not torch.isfinite(loss):
            raise LmftError(
                f"classifier loss became {loss.item()} at step {self.global_step}; "
                "stopped. Lower classifier.lr or set trainer.gradient_clip_val."
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Loader 0 is the validation split, loader 1 the test split (curves only)."""
        split, acc = (("val", self.val_acc), ("test", self.test_acc))[dataloader_idx]
        logits = self(batch["ids"], batch["lengths"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        acc.update(torch.sigmoid(logits), batch["labels"].long())
        n = len(logits)
        self.log(f"{split}/loss", loss, batch_size=n, add_dataloader_idx=False)
        self.log(f"{split}/acc", acc, batch_size=n, add_dataloader_idx=False)

    def configure_optimizers(self):
        hp = self.hparams
        groups = [
            {"params": self.encoder.parameters(), "lr": hp.lr * hp.encoder_lr_factor},
            {"params": self.head.parameters(), "lr": hp.lr},
        ]
        return torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
