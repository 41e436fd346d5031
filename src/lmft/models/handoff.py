"""The files that hand a model from one stage to the next, written and read in one place:
`encoder.pt` (pretrain -> finetune, and -> another pretraining via lm.init_from) and
`model.pt` (finetune -> predict). Each records its format and its encoder's type; loading
checks both and names what to run when a file does not fit."""

from __future__ import annotations

from pathlib import Path

import torch

from lmft.errors import LmftError
from lmft.io import torch_save
from lmft.models.classifier import SentimentClassifier
from lmft.models.encoder import Encoder, encoder_class

ENCODER_FORMAT = 3  # 3: records the encoder's type
MODEL_FORMAT = 2  # 2: records the encoder's type


def _load(path: Path, fmt: int, remedy: str) -> dict:
    """The dict saved at `path`, if it exists, loads and has format `fmt`."""
    if not path.exists():
        raise LmftError(f"No {path.name} at {path.parent}. {remedy}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        blob["state_dict"]
    except Exception as e:
        raise LmftError(f"{path} is unreadable or truncated ({type(e).__name__}). {remedy}") from e
    if fmt == MODEL_FORMAT and "labels" not in blob and "kwargs" in blob:
        raise LmftError(
            f"{path} is a pretraining run's encoder (an encoder.pt), not a fine-tuned "
            f"classifier's model.pt. {remedy}"
        )
    if blob.get("format") != fmt:
        raise LmftError(
            f"{path} was written by an older lmft (format {blob.get('format')}). {remedy}"
        )
    return blob


def encoder_path(pretrain_dir: str | Path, epoch: int | None = None) -> Path:
    """A pretraining run's final encoder.pt, or the one it kept after `epoch` (lm.snapshots)."""
    pretrain_dir = Path(pretrain_dir)
    return pretrain_dir / (f"snapshots/encoder_epoch{epoch}.pt" if epoch else "encoder.pt")


def encoder_readable(path: Path) -> bool:
    """Whether `path` is an encoder.pt this lmft can load (any settings)."""
    try:
        _load(path, ENCODER_FORMAT, "")
    except LmftError:
        return False
    return True


def save_encoder(path: str | Path, encoder: Encoder, tokenizer_fingerprint: str) -> None:
    """Weights, the type and kwargs that rebuild the encoder, the tokenizer it was trained with."""
    torch_save(
        {
            "format": ENCODER_FORMAT,
            "encoder": encoder.type_name(),
            "kwargs": encoder.kwargs,
            "tokenizer": tokenizer_fingerprint,
            "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        },
        path,
    )


def load_encoder_state(
    path: str | Path,
    config: dict,
    tokenizer_fingerprint: str,
    remedy: str,
    vocab_change: tuple[dict[str, int], dict[str, int]] | None = None,
) -> dict[str, torch.Tensor]:
    """The state dict in `path`, after checking it fits the encoder `config` builds (its
    `_target_` and kwargs).

    Settings in the encoder's `NOT_WEIGHTS` (dropout rates, init) may differ. With
    `vocab_change=(old, new)` (token -> id of the file's and of this run's tokenizer) the file
    may come from another tokenizer: its embedding rows are moved to the new ids, and words it
    never saw start at its mean embedding (ULMFiT's recipe for a domain corpus). Any problem
    is an LmftError naming what differs, followed by `remedy` (what to run).
    """
    path = Path(path)
    blob = _load(path, ENCODER_FORMAT, remedy)
    cls = encoder_class(config.get("_target_"))
    if blob.get("encoder") != cls.type_name():
        raise LmftError(
            f"{path} holds a {blob.get('encoder')}; this run builds a {cls.type_name()} "
            f"(the model config group). {remedy}"
        )
    ignore = set(cls.NOT_WEIGHTS) | {"_target_"} | ({"vocab_size"} if vocab_change else set())
    saved = blob["kwargs"]
    diffs = [
        f"{k}: file has {saved.get(k)!r}, config wants {v!r}"
        for k, v in config.items()
        if saved.get(k) != v and k not in ignore
    ]
    if not vocab_change and blob.get("tokenizer") != tokenizer_fingerprint:
        diffs.append(
            f"tokenizer: file has {blob.get('tokenizer')}, data config gives "
            f"{tokenizer_fingerprint}"
        )
    if diffs:
        raise LmftError(f"{path} does not match this run ({'; '.join(diffs)}). {remedy}")
    state = blob["state_dict"]
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


def save_model(
    path: str | Path,
    model: SentimentClassifier,
    state: dict,
    tokenizer_json: str,
    labels: list[str],
    max_len: int,
) -> None:
    """Everything `lmft.predict` needs: hyperparameters, weights, tokenizer, class names."""
    torch_save(
        {
            "format": MODEL_FORMAT,
            "encoder": model.encoder.type_name(),
            "hparams": dict(model.hparams),
            "state_dict": state,
            "tokenizer": tokenizer_json,
            "labels": list(labels),
            "max_len": max_len,
        },
        path,
    )


def load_model(run_dir: str | Path) -> tuple[SentimentClassifier, dict]:
    """The classifier saved in `run_dir`/model.pt (eval mode, CPU), and the file's contents
    (tokenizer, labels, max_len)."""
    path = Path(run_dir) / "model.pt"
    remedy = (
        "Give the folder of a finished cell (outputs/sweeps/<name>/<cell>: a pretrained or "
        "scratch cell keeps model.pt, a linear-baseline cell model.joblib), trained with "
        "classifier.save_model=true (default) by this lmft; rerun that cell if needed."
    )
    blob = _load(path, MODEL_FORMAT, remedy)
    cls = encoder_class(blob.get("encoder"))
    if blob["hparams"]["encoder"].get("_target_") != cls.type_name():
        raise LmftError(f"{path}: its encoder type and its settings disagree. {remedy}")
    try:
        model = SentimentClassifier(**blob["hparams"])
        model.load_state_dict(blob["state_dict"])
    except Exception as e:
        raise LmftError(f"{path} does not rebuild ({type(e).__name__}: {e}). {remedy}") from e
    return model.eval(), blob
