"""The one encoder both stages share, and the `encoder.pt` file that hands it over."""

from __future__ import annotations

from contextlib import nullcontext
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lmft.errors import LmftError
from lmft.io import torch_save

ENCODER_FORMAT = 2
DROPOUTS = ("dropout", "embed_dropout", "input_dropout", "weight_dropout")
INITS = ("torch", "keras")


def keras_init_linear(layer: nn.Linear) -> None:
    """Keras' `Dense` defaults: Glorot-uniform kernel, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)


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


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout: one mask per sequence, shared by every time step ([batch, 1, dim])."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


class LSTMEncoder(nn.Module):
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
        super().__init__()
        self.output_size = output_size or hidden_size
        self.kwargs = dict(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            output_size=output_size,
            dropout=dropout,
            embed_dropout=embed_dropout,
            input_dropout=input_dropout,
            weight_dropout=weight_dropout,
            init=init,
        )
        if init not in INITS:
            raise LmftError(f"model.init must be one of {INITS}, not {init!r}.")
        for name in DROPOUTS:
            if not 0 <= self.kwargs[name] < 1:
                raise LmftError(f"model.{name}={self.kwargs[name]} must be in [0, 1).")
        if num_layers < 1:
            raise LmftError(f"model.num_layers={num_layers} must be at least 1.")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        sizes = [embed_dim] + [hidden_size] * (num_layers - 1) + [self.output_size]
        self.layers = nn.ModuleList(
            nn.LSTM(n_in, n_out, batch_first=True) for n_in, n_out in pairwise(sizes)
        )
        if init == "keras":
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
            with torch.no_grad():
                self.embedding.weight[0] = 0.0  # the padding row (never read: masked)
            for lstm in self.layers:
                keras_init_lstm(lstm)

    def init_linear(self, layer: nn.Linear) -> None:
        """A head on top of this encoder starts as the encoder's `init` says."""
        if self.kwargs["init"] == "keras":
            keras_init_linear(layer)

    def layer_groups(self) -> list[nn.Module]:
        """Bottom to top: the embedding, then each LSTM layer (for per-group learning rates)."""
        return [self.embedding, *self.layers]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, time] token ids -> [batch, time, output_size] outputs."""
        kw = self.kwargs
        weight = self.embedding.weight
        if self.training and kw["embed_dropout"]:  # drop whole words: rows of the matrix
            p = kw["embed_dropout"]
            weight = weight * weight.new_empty(len(weight), 1).bernoulli_(1 - p) / (1 - p)
        x = F.embedding(ids, weight, padding_idx=0)
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


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[batch, max_len] bool, True at real (non-padding) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def save_encoder(path: str | Path, encoder: LSTMEncoder, tokenizer_fingerprint: str) -> None:
    """Weights + the kwargs that rebuild the encoder + the tokenizer it was trained with."""
    torch_save(
        {
            "format": ENCODER_FORMAT,
            "kwargs": encoder.kwargs,
            "tokenizer": tokenizer_fingerprint,
            "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        },
        path,
    )


def load_encoder_state(
    path: str | Path,
    kwargs: dict,
    tokenizer_fingerprint: str,
    remedy: str,
    vocab_change: tuple[dict[str, int], dict[str, int]] | None = None,
) -> dict[str, torch.Tensor]:
    """The state dict in `path`, after checking it fits an encoder built with `kwargs`.

    Dropout rates may differ (they are not weights). With `vocab_change=(old, new)`
    (token -> id of the file's and of this run's tokenizer) the file may come from another
    tokenizer: its embedding rows are moved to the new ids, and words it never saw start at
    its mean embedding (ULMFiT's recipe for a domain corpus). Any problem is an LmftError
    naming what differs, followed by `remedy` (what to run).
    """
    path = Path(path)
    if not path.exists():
        raise LmftError(f"No pretrained encoder at {path}. {remedy}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        saved_kwargs, state = blob["kwargs"], blob["state_dict"]
    except Exception as e:
        raise LmftError(f"{path} is unreadable or truncated ({type(e).__name__}). {remedy}") from e
    if blob.get("format") != ENCODER_FORMAT:
        raise LmftError(
            f"{path} was written by an older lmft (format {blob.get('format')}). {remedy}"
        )
    ignore = set(DROPOUTS) | {"init"} | ({"vocab_size"} if vocab_change else set())
    diffs = [
        f"{k}: file has {saved_kwargs.get(k)!r}, config wants {v!r}"
        for k, v in kwargs.items()
        if saved_kwargs.get(k) != v and k not in ignore
    ]
    if not vocab_change and blob.get("tokenizer") != tokenizer_fingerprint:
        diffs.append(
            f"tokenizer: file has {blob.get('tokenizer')}, data config gives "
            f"{tokenizer_fingerprint}"
        )
    if diffs:
        raise LmftError(f"{path} does not match this run ({'; '.join(diffs)}). {remedy}")
    if vocab_change:
        state = {**state, "embedding.weight": remap_rows(state["embedding.weight"], *vocab_change)}
    return state


def remap_rows(weight: torch.Tensor, old: dict[str, int], new: dict[str, int]) -> torch.Tensor:
    """Embedding rows re-indexed from vocabulary `old` to `new`; unseen words get the mean row."""
    out = weight[1:].mean(0).repeat(len(new), 1)
    shared = [(i, old[w]) for w, i in new.items() if w in old]
    if shared:
        dst, src = torch.tensor(shared).T
        out[dst] = weight[src]
    out[0] = 0.0  # padding
    return out
