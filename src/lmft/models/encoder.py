"""The one encoder both stages share, and the `encoder.pt` file that hands it over."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lmft.errors import LmftError
from lmft.io import torch_save

ENCODER_FORMAT = 1


class LSTMEncoder(nn.Module):
    """Embedding (padding index 0) + unidirectional LSTM over right-padded batches.

    Because padding sits on the right and the LSTM runs left to right, the outputs at
    real positions never depend on padding; pooling and losses mask the rest. (No
    `pack_padded_sequence`: its backward pass is ~20x slower on CPU, pytorch#149194.)
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 200,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.kwargs = dict(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.hidden_size = hidden_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, time] token ids -> [batch, time, hidden] outputs."""
        out, _ = self.lstm(self.embedding(ids))
        return out


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
    path: str | Path, kwargs: dict, tokenizer_fingerprint: str, remedy: str
) -> dict[str, torch.Tensor]:
    """The state dict in `path`, after checking it fits an encoder built with `kwargs`.

    Any problem is an LmftError naming what differs, followed by `remedy` (what to run).
    """
    path = Path(path)
    if not path.exists():
        raise LmftError(f"No pretrained encoder at {path}. {remedy}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        saved_kwargs, state = blob["kwargs"], blob["state_dict"]
    except Exception as e:
        raise LmftError(f"{path} is unreadable or truncated ({type(e).__name__}). {remedy}") from e
    diffs = [
        f"{k}: file has {saved_kwargs.get(k)!r}, config wants {v!r}"
        for k, v in kwargs.items()
        if saved_kwargs.get(k) != v and k != "dropout"
    ]
    if blob.get("tokenizer") != tokenizer_fingerprint:
        diffs.append(
            f"tokenizer: file has {blob.get('tokenizer')}, data config gives "
            f"{tokenizer_fingerprint}"
        )
    if diffs:
        raise LmftError(f"{path} does not match this run ({'; '.join(diffs)}). {remedy}")
    return state
