"""Stage 2: text classifier on top of the shared encoder, with ULMFiT's fine-tuning switches."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import grad_norm
from torch import nn
from torchmetrics.classification import Accuracy

from lmft.errors import LmftError
from lmft.models.encoder import build_encoder, length_mask
from lmft.schedules import check_schedule, with_schedule

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
    """encoder -> masked pooling -> dropout -> linear; sigmoid + BCE for 2 classes, else softmax.

    `encoder`: the encoder's config (`_target_` + kwargs, `build_encoder`). Layer groups,
    bottom to top: the encoder's (embedding, each layer), then the head. Fine-tuning switches
    (all off by default, as the reference; ULMFiT, Howard & Ruder 2018, turns them on):
    - `lr_decay`: discriminative rates, each group's rate is the one above it / lr_decay
      (2.6 in ULMFiT); `encoder_lr_factor` further scales every encoder group.
    - `schedule`: constant, slanted_triangular (linear warm-up over the first
      `warmup_frac` of steps from lr/32, then linear decay back to lr/32) or one_cycle
      (torch's OneCycleLR with cosine annealing and momentum cycling).
    - `gradual_unfreeze`: epoch 1 trains the head only, each later epoch unfreezes the
      next group down. `freeze_encoder`: only the head ever trains (a linear probe).
    - `feature_norm`: a LayerNorm on the pooled features before dropout and head (it belongs
      to the head's layer group).
    """

    def __init__(
        self,
        encoder: dict,
        num_classes: int = 2,
        pooling: str = "mean",
        dropout: float = 0.5,
        lr: float = 1e-3,
        encoder_lr_factor: float = 1.0,
        lr_decay: float = 1.0,
        schedule: str = "constant",
        warmup_frac: float = 0.1,
        weight_decay: float = 0.0,
        gradual_unfreeze: bool = False,
        freeze_encoder: bool = False,
        adam_eps: float = 1e-8,
        feature_norm: bool = False,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise LmftError(f"classifier.pooling must be one of {POOLINGS}, not {pooling!r}")
        check_schedule(schedule, "classifier")
        if num_classes < 2:
            raise LmftError(f"A classifier needs at least 2 classes, not {num_classes}.")
        self.save_hyperparameters(logger=False)
        self.encoder = build_encoder(encoder)
        width = self.encoder.output_size * (3 if pooling == "concat" else 1)
        self.norm = nn.LayerNorm(width) if feature_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, 1 if num_classes == 2 else num_classes)
        self.encoder.init_linear(self.head)
        task = dict(task="binary") if num_classes == 2 else dict(task="multiclass")
        self.train_acc = Accuracy(**task, num_classes=num_classes)
        self.val_acc, self.curve_acc, self.test_acc = (self.train_acc.clone() for _ in range(3))

    def layer_groups(self) -> dict[str, nn.Module]:
        """Bottom to top: the encoder's groups (embedding, its layers), then the head."""
        return self.encoder.layer_groups() | {"head": nn.ModuleList([self.norm, self.head])}

    def on_train_epoch_start(self):
        hp, top_first = self.hparams, list(self.layer_groups().values())[::-1]
        for depth, group in enumerate(top_first):
            trainable = depth == 0 or not (
                hp.freeze_encoder or (hp.gradual_unfreeze and depth > self.current_epoch)
            )
            group.requires_grad_(trainable)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled encoder outputs the head reads: [batch, width]."""
        return pool(self.encoder(ids), lengths, self.hparams.pooling)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits of pooled features: [batch] for 2 classes, else [batch, num_classes]."""
        logits = self.head(self.dropout(self.norm(pooled))).float()
        return logits.squeeze(-1) if self.hparams.num_classes == 2 else logits

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(ids, lengths))

    def class_probs(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[batch, num_classes] probabilities (binary too: [1 - p, p])."""
        logits = self(ids, lengths)
        if self.hparams.num_classes == 2:
            p = torch.sigmoid(logits)
            return torch.stack([1 - p, p], dim=-1)
        return logits.softmax(-1)

    def loss_and_probs(self, batch, logits=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and class probabilities of a batch (of its `logits`, when already computed)."""
        y = batch["labels"]
        logits = self(batch["ids"], batch["lengths"]) if logits is None else logits
        if self.hparams.num_classes == 2:
            return F.binary_cross_entropy_with_logits(logits, y.float()), torch.sigmoid(logits)
        return F.cross_entropy(logits, y), logits.softmax(-1)

    def training_step(self, batch, batch_idx):
        loss = self._evaluate(batch, "train", self.train_acc)  # accuracy with dropout on
        if not torch.isfinite(loss):
            raise LmftError(
                f"classifier loss became {loss.item()} at step {self.global_step}; "
                "stopped. Lower classifier.lr or set trainer.gradient_clip_val."
            )
        return loss

    def _evaluate(self, batch, split: str, acc: Accuracy) -> torch.Tensor:
        """Loss and accuracy of `split` for the epoch's history (`EpochLog` writes the curves);
        the scale of the pooled features in training (per step) and validation (per epoch)."""
        pooled = self.features(batch["ids"], batch["lengths"])
        loss, probs = self.loss_and_probs(batch, self.classify(pooled))
        acc.update(probs, batch["labels"])
        kw = dict(batch_size=len(batch["labels"]), add_dataloader_idx=False, logger=False)
        if split == "val" or (split == "train" and self.step_is_written()):
            self.log_feature_scale(pooled.detach().float(), split, kw)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, **kw)
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, **kw)
        return loss

    def log_feature_scale(self, pooled: torch.Tensor, split: str, kw: dict) -> None:
        """Mean L2 norm of the pooled features, and their spread (mean over dimensions of the
        standard deviation over the batch's texts): how large, and how varied, the inputs of
        the head are (pretrained against scratch: `features/` in TensorBoard)."""
        spread = pooled.std(0).mean() if len(pooled) > 1 else pooled.new_zeros(())
        per_step = dict(on_step=True, on_epoch=False) if split == "train" else dict(on_epoch=True)
        end = "_step" if split == "train" else ""
        self.log(f"features/{split}_norm{end}", pooled.norm(dim=-1).mean(), **per_step, **kw)
        self.log(f"features/{split}_spread{end}", spread, **per_step, **kw)

    def step_is_written(self) -> bool:
        """Whether EpochLog writes this training step's `*_step` metrics (every
        log_every_n_steps, counted after the step; never without a logger): diagnostics cost
        nothing on other steps."""
        return (
            self.logger is not None and (self.global_step + 1) % self.trainer.log_every_n_steps == 0
        )

    def on_before_optimizer_step(self, optimizer):
        """Each layer group's gradient norm (`grad_norm/<group>`), at the steps written."""
        if not self.step_is_written():
            return
        kw = dict(on_step=True, on_epoch=False, logger=False)
        for name, group in self.layer_groups().items():
            norms = grad_norm(group, norm_type=2)  # {} for a frozen group
            if norms:
                self.log(f"grad_norm/{name}_step", norms["grad_2.0_norm_total"], **kw)

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Loader 0 is the validation split, loader 1 the test curve subset (curves only)."""
        split, acc = (("val", self.val_acc), ("test", self.curve_acc))[dataloader_idx]
        self._evaluate(batch, split, acc)

    def test_step(self, batch, batch_idx):
        """The whole test set, for one model state the run reports (`lmft.finetune`)."""
        self._evaluate(batch, "final", self.test_acc)

    def configure_optimizers(self):
        hp, groups = self.hparams, self.layer_groups()
        top = len(groups) - 1
        param_groups = [
            {
                "params": list(g.parameters()),
                "lr": hp.lr * (hp.encoder_lr_factor if depth else 1.0) / hp.lr_decay**depth,
                "name": name,  # LearningRateMonitor's curve: lr-Adam/<name>
            }
            for depth, (name, g) in zip(range(top, -1, -1), groups.items(), strict=True)
        ]
        opt = torch.optim.Adam(
            param_groups, lr=hp.lr, eps=hp.adam_eps, weight_decay=hp.weight_decay
        )
        return with_schedule(self, opt, hp.schedule, hp.warmup_frac)
