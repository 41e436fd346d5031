"""Stage 1: next-token language model on top of the shared encoder."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lmft.errors import LmftError
from lmft.models.encoder import build_encoder, length_mask
from lmft.schedules import check_schedule, with_schedule

LOSS_IMPLS = ("auto", "chunked", "fused")


def _summed_ce(h, y, weight, bias):
    return F.cross_entropy(F.linear(h, weight, bias).float(), y, reduction="sum")


def fused_linear_ce():
    """Liger-Kernel's fused linear + cross-entropy (Triton, CUDA), or None where it cannot run.

    It computes the softmax chunk by chunk and its gradients in the same pass, so the
    [tokens, vocabulary] logits never exist whole (`pip install -e ".[gpu]"`).
    """
    if not torch.cuda.is_available():
        return None
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def summed_fused_ce(h, y, weight, bias) -> torch.Tensor:
    """Sum of the cross-entropies of softmax(h W^T + b) against y, by Liger-Kernel.

    Outside autocast, in h's dtype (bf16 under bf16 autocast), with fp32 gradient accumulation;
    logits chunks of about 8 x tokens x hidden elements (Liger's default 1x makes matrix
    products too small to run fast at a 512-wide hidden state).
    """
    with torch.autocast(h.device.type, enabled=False):
        dt = h.dtype
        return fused_linear_ce()(
            h,
            weight.to(dt),
            y,
            bias=bias.to(dt),
            reduction="sum",
            accum_dtype=torch.float32,
            chunk_mem_const=8,
        )


def fused_check(vocab: int, hidden: int, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the fused softmax cannot be used here, or None if it can: it runs a forward and
    backward pass at this vocabulary, width, device and dtype (Triton compiles the kernel the
    training steps then reuse) and gives torch's loss."""
    if fused_linear_ce() is None:
        return "liger-kernel is not installed"
    g = torch.Generator(device).manual_seed(0)
    h = torch.randn(64, hidden, device=device, generator=g).to(dtype).requires_grad_()
    w = (0.05 * torch.randn(vocab, hidden, device=device, generator=g)).requires_grad_()
    b = torch.zeros(vocab, device=device, requires_grad=True)
    y = torch.randint(0, vocab, (64,), device=device, generator=g)
    try:
        loss = summed_fused_ce(h, y, w, b)
        loss.backward()
    except Exception as e:  # a Triton or CUDA build that cannot compile or run the kernel
        first_line = str(e).strip().split("\n")[0]
        return f"the fused kernel failed ({type(e).__name__}: {first_line})"
    got, want = loss.detach().float(), _summed_ce(h.detach().float(), y, w.detach(), b.detach())
    if not torch.isclose(got, want, rtol=2e-2):
        return f"the fused kernel's loss {float(got):.4g} differs from torch's {float(want):.4g}"
    return None


def _step_dtype(trainer: L.Trainer) -> torch.dtype:
    """The dtype of the encoder's output in a training step under this trainer's precision."""
    precision = str(trainer.precision)
    if precision.startswith("bf16"):
        return torch.bfloat16
    return torch.float16 if precision.startswith("16") else torch.float32


class LanguageModel(L.LightningModule):
    """encoder -> dropout -> vocabulary softmax (full, or adaptive for speed on CPU).

    `encoder`: the encoder's config (`_target_` + kwargs, `build_encoder`); it must be causal.
    `tie_weights` makes the full softmax share the embedding matrix (needs the encoder's
    output size equal to its embedding size).

    `head="adaptive"` uses `nn.AdaptiveLogSoftmaxWithLoss`; token ids are ordered by
    frequency (the tokenizer guarantees it), which is what its clusters assume.
    `loss_chunk` (full head) computes the softmax over that many tokens at a time and
    recomputes it in the backward pass, so the [tokens, vocabulary] logits never exist
    whole: memory stays flat at large batches and vocabularies. `loss_impl` picks how the full
    softmax runs: `chunked` (that, in torch; any device), `fused` (Liger-Kernel's fused linear
    + cross-entropy: several times faster on a GPU) or `auto` (fused where it can run, else
    chunked; the choice is printed). `schedule` and `warmup_frac`: the learning rate over the
    run's steps (`lmft.schedules`; the reference's is constant).
    """

    def __init__(
        self,
        encoder: dict,
        dropout: float = 0.3,
        head: str = "full",
        cutoffs: tuple[int, ...] = (2000, 10000),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        loss_chunk: int | None = None,
        tie_weights: bool = False,
        adam_eps: float = 1e-8,
        loss_impl: str = "auto",
        schedule: str = "constant",
        warmup_frac: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_schedule(schedule, "lm")
        if loss_impl not in LOSS_IMPLS:
            raise LmftError(f"lm.loss_impl must be one of {LOSS_IMPLS}, not {loss_impl!r}.")
        self.encoder = build_encoder(encoder)
        if not self.encoder.causal:
            raise LmftError(
                f"{type(self.encoder).__name__} reads the whole text at once: a language model "
                "needs an encoder that reads left to right (causal)."
            )
        self.dropout = nn.Dropout(dropout)
        vocab, hidden = encoder["vocab_size"], self.encoder.output_size
        width = self.encoder.embedding.embedding_dim
        if tie_weights and (head != "full" or hidden != width):
            raise LmftError(
                f"lm.tie_weights needs lm.head=full (got {head}) and the encoder's output size "
                f"(model.output_size) equal to its embedding size (got {hidden} and {width})."
            )
        if head == "adaptive":
            cuts = [c for c in cutoffs if c < vocab - 1]
            if not cuts:
                raise LmftError(
                    f"lm.head=adaptive: no cutoff in lm.cutoffs={list(cutoffs)} lies below the "
                    f"vocabulary size ({vocab}); give smaller ones or use lm.head=full."
                )
            self.head = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cutoffs=cuts, div_value=4.0)
        elif head == "full":
            self.head = nn.Linear(hidden, vocab)
            self.encoder.init_linear(self.head)
            if tie_weights:  # the softmax reuses the input embedding matrix (Press & Wolf 2017)
                self.head.weight = self.encoder.embedding.weight
        else:
            raise LmftError(f"lm.head must be 'full' or 'adaptive', not {head!r}")

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy of predicting token t+1 from tokens <= t, padding excluded."""
        ids, lengths = batch["ids"], batch["lengths"]
        inputs, targets = ids[:, :-1], ids[:, 1:]
        mask = length_mask(lengths - 1, inputs.shape[1])
        h = self.dropout(self.encoder(inputs)[mask])  # only real positions reach the softmax
        if isinstance(self.head, nn.AdaptiveLogSoftmaxWithLoss):
            with torch.autocast(h.device.type, enabled=False):  # its index_copy_ needs one dtype
                return self.head(h.float(), targets[mask]).loss
        y, chunk = targets[mask], self.hparams.loss_chunk
        if self.fused:
            return summed_fused_ce(h, y, self.head.weight, self.head.bias) / len(h)
        if not chunk or len(h) <= chunk:
            return _summed_ce(h, y, self.head.weight, self.head.bias) / len(h)
        total = sum(
            checkpoint(
                _summed_ce,
                h[i : i + chunk],
                y[i : i + chunk],
                self.head.weight,
                self.head.bias,
                use_reentrant=False,
            )
            for i in range(0, len(h), chunk)
        )
        return total / len(h)

    def setup(self, stage: str) -> None:
        """Decide the softmax implementation once the device is known: `auto` takes the fused
        one only if it passes `fused_check` here, and says which it took."""
        impl, full = self.hparams.loss_impl, isinstance(self.head, nn.Linear)
        self.fused, self.softmax = False, "adaptive"
        if not full:
            return
        device = self.trainer.strategy.root_device
        if impl == "chunked":
            why_not = "lm.loss_impl=chunked"
        elif device.type != "cuda":
            why_not = "no CUDA GPU"
        else:
            vocab, width = self.head.out_features, self.head.in_features
            why_not = fused_check(vocab, width, device, _step_dtype(self.trainer))
        if impl == "fused" and why_not:
            raise LmftError(
                f"lm.loss_impl=fused cannot run here: {why_not}. It needs a CUDA GPU and "
                'liger-kernel (pip install -e ".[gpu]"); use lm.loss_impl=chunked or auto.'
            )
        self.fused = why_not is None
        self.softmax = "fused (liger-kernel)" if self.fused else f"chunked (torch): {why_not}"
        # slower, the same result: said in this line, bold in the report, a WARNING in gpu_check
        self.fell_back = impl == "auto" and device.type == "cuda" and not self.fused
        if self.trainer.is_global_zero:
            slower = " (SLOWER than the fused kernel a GPU should run)" if self.fell_back else ""
            print(
                f"[lm] softmax over {self.head.out_features:,} words: {self.softmax}{slower}",
                flush=True,
            )

    fused = fell_back = False  # until setup: plain modules (tests, bench) use the torch path

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise LmftError(
                f"LM loss became {loss.item()} at step {self.global_step}; stopped. "
                "Lower lm.lr or set trainer.gradient_clip_val."
            )
        n = len(batch["ids"])
        # per step and per epoch; EpochLog writes both to TensorBoard
        kw = dict(batch_size=n, logger=False)
        self.log("lm/train_loss_step", loss, prog_bar=True, on_step=True, on_epoch=False, **kw)
        self.log("lm/train_loss", loss, on_step=False, on_epoch=True, **kw)
        return loss

    def validation_step(self, batch, batch_idx):
        n_tokens = int((batch["lengths"] - 1).clamp(min=0).sum())
        loss = self.loss(batch)
        self.log(
            "lm/val_loss", loss, on_epoch=True, batch_size=n_tokens, sync_dist=True, logger=False
        )

    def on_validation_epoch_end(self):
        loss = self.trainer.callback_metrics.get("lm/val_loss")
        if loss is not None:
            self.log("lm/val_ppl", math.exp(min(float(loss), 50.0)), logger=False)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(
            self.parameters(), lr=hp.lr, eps=hp.adam_eps, weight_decay=hp.weight_decay
        )
        return with_schedule(self, opt, hp.schedule, hp.warmup_frac)
