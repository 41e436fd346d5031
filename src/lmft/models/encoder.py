"""The encoder interface both stages build on, the factory the `model` config group picks from,
and the pieces encoders share (masks, dropouts, Keras' initialisers).

To add an encoder: write a module with a subclass of `Encoder`, and a `conf/model/<name>.yaml`
whose `_target_` names it and whose other keys are its constructor's arguments.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from lmft.errors import LmftError
from lmft.targets import target_class

INITS = ("torch", "keras")


class Encoder(nn.Module):
    """What the stages, the hand-off files and the report use of an encoder.

    - `forward(ids)`: [batch, time] token ids, right-padded with 0, -> [batch, time,
      output_size]. Outputs at real positions must not depend on the padding.
    - `output_size`; `embedding`, an `nn.Embedding` with padding index 0 (tied LM softmax,
      vocabulary changes between runs).
    - `causal`: True if position t reads positions <= t only. The LM needs it (it predicts
      token t+1 from position t).
    - `layer_groups()`: every parameter, in named groups from the bottom (the embedding) up,
      for discriminative learning rates and gradual unfreezing.
    - `kwargs`: the constructor's arguments (saved beside the weights); `NOT_WEIGHTS`: those
      that may differ between a saved encoder and the one that loads it (dropout rates, init).
    - `init_linear(layer)`: a head on top starts as the encoder's own initialisation says.
    """

    causal = True
    NOT_WEIGHTS: tuple[str, ...] = ()
    output_size: int
    embedding: nn.Embedding

    def __init__(self, kwargs: dict, dropouts: tuple[str, ...]):
        """`kwargs`: the subclass's arguments (`arguments(locals(), Class)`), checked here
        (`check_settings`)."""
        super().__init__()
        check_settings(kwargs, dropouts)
        self.kwargs = kwargs

    def layer_groups(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def init_linear(self, layer: nn.Linear) -> None:
        if self.kwargs.get("init") == "keras":
            keras_init_linear(layer)

    @classmethod
    def type_name(cls) -> str:
        """What `_target_` names this class by (recorded in encoder.pt and model.pt)."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def config(self) -> dict:
        """What `build_encoder` rebuilds this encoder from."""
        return {"_target_": self.type_name(), **self.kwargs}


def encoder_class(target: str | None) -> type[Encoder]:
    """The Encoder subclass `target` (`package.module.Class`) names."""
    hint = "Pick an encoder with model=lstm or model=transformer (conf/model/)."
    return target_class(target, Encoder, "model._target_", hint)


def build_encoder(config: dict) -> Encoder:
    """The encoder `config` describes: `_target_` names its class, the other keys are its
    arguments (the `model` config group's keys, plus vocab_size)."""
    cls = encoder_class(config.get("_target_"))
    kwargs = {k: v for k, v in config.items() if k != "_target_"}
    params = inspect.signature(cls).parameters
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        takes = ", ".join(k for k in params if k != "vocab_size")
        raise LmftError(
            f"{cls.__name__} has no setting {', '.join(f'model.{k}' for k in unknown)} "
            f"(a preset made for another encoder?). It takes: {takes}."
        )
    return cls(**kwargs)


def arguments(local_vars: dict, cls: type[Encoder]) -> dict:
    """The constructor's arguments, from its `locals()` (taken before it defines any name)."""
    return {k: local_vars[k] for k in inspect.signature(cls).parameters}


def check_settings(kwargs: dict, dropouts: tuple[str, ...]) -> None:
    """The settings encoders share, where this one has them: `init`, `num_layers`, and the
    dropout rates named in `dropouts`."""
    if kwargs.get("init", "torch") not in INITS:
        raise LmftError(f"model.init must be one of {INITS}, not {kwargs['init']!r}.")
    if kwargs.get("num_layers", 1) < 1:
        raise LmftError(f"model.num_layers={kwargs['num_layers']} must be at least 1.")
    for name in dropouts:
        if not 0 <= kwargs[name] < 1:
            raise LmftError(f"model.{name}={kwargs[name]} must be in [0, 1).")


def embed(embedding: nn.Embedding, ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Embeddings of `ids`; in training, `p` of the words dropped whole (rows of the matrix,
    AWD-LSTM's embedding dropout), the rest scaled by 1 / (1 - p)."""
    weight = embedding.weight
    if training and p:
        weight = weight * weight.new_empty(len(weight), 1).bernoulli_(1 - p) / (1 - p)
    return F.embedding(ids, weight, padding_idx=0)


def keras_init_embedding(embedding: nn.Embedding) -> None:
    """Keras' `Embedding` default: uniform in +-0.05 (the padding row zero: never read)."""
    nn.init.uniform_(embedding.weight, -0.05, 0.05)
    with torch.no_grad():
        embedding.weight[0] = 0.0


def keras_init_linear(layer: nn.Linear) -> None:
    """Keras' `Dense` defaults: Glorot-uniform kernel, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout: one mask per sequence, shared by every time step ([batch, 1, dim])."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[batch, max_len] bool, True at real (non-padding) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
