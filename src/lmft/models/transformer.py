"""A small causal Transformer encoder from torch's own modules (`model=transformer`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmft.errors import LmftError
from lmft.models.encoder import (
    Encoder,
    arguments,
    embed,
    keras_init_embedding,
    keras_init_linear,
    locked_dropout,
)

DROPOUTS = ("dropout", "embed_dropout", "input_dropout")
POSITIONS = ("learned", "sinusoidal")


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """[length, dim] fixed position codes (Vaswani et al. 2017): sin on even, cos on odd dims."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


class TransformerEncoder(Encoder):
    """Embedding + positions, then pre-norm causal self-attention blocks
    (`nn.TransformerEncoderLayer`, GELU) and a final layer norm; right-padded batches.

    Causal: position t attends to positions <= t only. With padding on the right, that mask
    alone keeps padding out of every real position (no key-padding mask, which would leave a
    padded row of an empty text nothing to attend to). It is the same contract as the LSTM's,
    so pooling, losses and weight tying work unchanged.

    Sized by the names the LSTM uses: `embed_dim` is the model width (= `output_size`, so
    the LM can always tie its softmax), `hidden_size` the feed-forward width, `num_layers` the
    blocks. `positions`: learned (up to `max_positions` tokens) or sinusoidal (any length).
    Dropout: `dropout` inside the blocks (attention weights, feed-forward, residuals), and
    `embed_dropout` / `input_dropout` on the embeddings as in `LSTMEncoder`. `init="keras"`:
    Keras' defaults for every embedding and dense kernel (uniform +-0.05, Glorot-uniform).
    """

    NOT_WEIGHTS = (*DROPOUTS, "init")

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_size: int = 1024,
        num_layers: int = 4,
        num_heads: int = 4,
        positions: str = "learned",
        max_positions: int = 512,
        dropout: float = 0.1,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        init: str = "torch",
    ):
        super().__init__(arguments(locals(), TransformerEncoder), DROPOUTS)
        if positions not in POSITIONS:
            raise LmftError(f"model.positions must be one of {POSITIONS}, not {positions!r}.")
        if embed_dim % num_heads:
            raise LmftError(
                f"model.embed_dim={embed_dim} must be a multiple of model.num_heads={num_heads}."
            )
        self.output_size = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.positions = nn.Embedding(max_positions, embed_dim) if positions == "learned" else None
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                embed_dim,
                num_heads,
                hidden_size,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)
        if init == "keras":  # (attention's input projection is Glorot-uniform in torch too)
            keras_init_embedding(self.embedding)
            if self.positions is not None:
                nn.init.uniform_(self.positions.weight, -0.05, 0.05)
            for m in self.blocks.modules():
                if isinstance(m, nn.Linear):
                    keras_init_linear(m)

    def layer_groups(self) -> dict[str, nn.Module]:
        """The embeddings (words and positions), then each block: block1, block2, ... (the
        last with the final norm)."""
        bottom = [self.embedding, *([self.positions] if self.positions is not None else [])]
        groups = {"embedding": nn.ModuleList(bottom)}
        for i, block in enumerate(self.blocks, 1):
            top = [self.norm] if i == len(self.blocks) else []
            groups[f"block{i}"] = nn.ModuleList([block, *top])
        return groups

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, time] token ids -> [batch, time, embed_dim] outputs."""
        kw, n = self.kwargs, ids.shape[1]
        x = embed(self.embedding, ids, kw["embed_dropout"], self.training)
        if self.positions is None:
            x = x + sinusoids(n, x.shape[-1]).to(x.device, x.dtype)
        elif n > kw["max_positions"]:
            raise LmftError(
                f"A text of {n} tokens is longer than model.max_positions={kw['max_positions']} "
                "(learned positions): raise it, lower lm.max_len / classifier.max_len, or use "
                "model.positions=sinusoidal."
            )
        else:
            x = x + self.positions.weight[:n]
        x = locked_dropout(x, kw["input_dropout"], self.training)
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=ids.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.norm(x)
