"""The reference's encoder: embedding + unidirectional LSTM layers (`model=lstm`)."""

from __future__ import annotations

from contextlib import nullcontext
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lmft.models.encoder import (
    Encoder,
    arguments,
    embed,
    keras_init_embedding,
    locked_dropout,
)

DROPOUTS = ("dropout", "embed_dropout", "input_dropout", "weight_dropout")


def keras_init_lstm(lstm: nn.LSTM) -> None:
    """Keras' `LSTM` defaults: Glorot-uniform input kernel, orthogonal recurrent kernel, zero
    biases with the forget gate's at 1 (`unit_forget_bias`). torch's gate order is (i, f, g, o),
    as Keras'; its two bias vectors add up, so the 1 goes into one of them."""
    hidden = lstm.hidden_size
    nn.init.xavier_uniform_(lstm.weight_ih_l0)  # [4H, in]: fans as Keras' (in, 4H) kernel
    nn.init.orthogonal_(lstm.weight_hh_l0)  # [4H, H], orthonormal columns = Keras' (H, 4H)
    nn.init.zeros_(lstm.bias_ih_l0)
    nn.init.zeros_(lstm.bias_hh_l0)
    with torch.no_grad():
        lstm.bias_ih_l0[hidden : 2 * hidden] = 1.0


class LSTMEncoder(Encoder):
    """Embedding (padding index 0) + a stack of unidirectional LSTM layers, right-padded batches.

    Because padding sits on the right and the LSTM runs left to right, the outputs at
    real positions never depend on padding; pooling and losses mask the rest. (No
    `pack_padded_sequence`: its backward pass is ~20x slower on CPU, pytorch#149194.)

    One `nn.LSTM` per layer, so that layers can differ in size (`output_size`: the last
    layer's, e.g. the embedding size for tied LM weights), have locked dropout between them
    and form the layer groups of discriminative fine-tuning. AWD-LSTM regularisation, all
    off by default (Merity et al. 2017): `embed_dropout` drops whole words from the
    embedding matrix, `input_dropout` / `dropout` are locked dropout on the embeddings /
    between layers, `weight_dropout` is DropConnect on the hidden-to-hidden matrices.

    `init="keras"` starts from the reference's Keras defaults (embedding uniform in +-0.05,
    `keras_init_lstm`) instead of torch's (embedding N(0, 1), LSTM uniform in +-1/sqrt(H)).
    """

    NOT_WEIGHTS = (*DROPOUTS, "init")

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 200,
        hidden_size: int = 512,
        num_layers: int = 1,
        output_size: int | None = None,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        input_dropout: float = 0.0,
        weight_dropout: float = 0.0,
        init: str = "torch",
    ):
        super().__init__(arguments(locals(), LSTMEncoder), DROPOUTS)
        self.output_size = output_size or hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        sizes = [embed_dim] + [hidden_size] * (num_layers - 1) + [self.output_size]
        self.layers = nn.ModuleList(
            nn.LSTM(n_in, n_out, batch_first=True) for n_in, n_out in pairwise(sizes)
        )
        if init == "keras":
            keras_init_embedding(self.embedding)
            for lstm in self.layers:
                keras_init_lstm(lstm)

    def layer_groups(self) -> dict[str, nn.Module]:
        """The embedding, then each LSTM layer: lstm1, lstm2, ..."""
        return {"embedding": self.embedding} | {
            f"lstm{i}": lstm for i, lstm in enumerate(self.layers, 1)
        }

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, time] token ids -> [batch, time, output_size] outputs."""
        kw = self.kwargs
        x = embed(self.embedding, ids, kw["embed_dropout"], self.training)
        x = locked_dropout(x, kw["input_dropout"], self.training)
        # On a CPU the LSTM runs in float32 even under bf16 autocast: oneDNN has a bf16 LSTM
        # only on CPUs with AVX-512 BF16 or AMX (elsewhere it fails), and one precision keeps
        # a preset's numbers the same on every CPU. The rest (softmax, head) stays in bf16.
        cpu_fp32 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False) if cpu_fp32 else nullcontext():
            x = x.float() if cpu_fp32 else x
            for i, lstm in enumerate(self.layers):
                if i:
                    x = locked_dropout(x, kw["dropout"], self.training)
                if self.training and kw["weight_dropout"]:  # DropConnect, fresh mask every call
                    w = F.dropout(lstm.weight_hh_l0, kw["weight_dropout"])
                    x, _ = functional_call(lstm, {"weight_hh_l0": w}, (x,))
                else:
                    x, _ = lstm(x)
        return x
