"""The pretrained arm's encoder: found in the pretrain run its config points to, waited for if
that run is still training, checked against it, and loaded from its hand-off files
(`lmft.models.handoff`). Errors say which pretrain command makes the missing LM.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from omegaconf import DictConfig

from lmft.errors import LmftError
from lmft.identity import override_key, read_finished, reads, run_identity
from lmft.models.handoff import encoder_path, load_encoder_state


def pretrain_command(cfg: DictConfig, name: str | None = None, extra: tuple = ()) -> str:
    """The pretrain command for this run: its preset, where its LM goes, and its
    data/model/lm/trainer overrides (under `name` instead of the run's own, if given; the
    overrides in `extra` replace those of the same keys)."""
    from hydra.core.hydra_config import HydraConfig

    added = [*([f"name={name}"] if name else []), *extra]
    if not HydraConfig.initialized():  # called from Python, not the CLI
        return " ".join([f"python -m lmft.pretrain experiment={cfg.name}", *added])
    where = ("experiment", "paths.outputs", "paths.pretrain_dir")
    replaced = {override_key(o) for o in extra}

    def needed(key: str) -> bool:  # the preset, where the LM goes, what it reads
        if key in replaced:
            return False
        return key in where or reads(key, "pretrain") or (key in ("name", "lm_name") and not name)

    task = [o for o in HydraConfig.get().overrides.task if needed(override_key(o))]
    return " ".join(["python -m lmft.pretrain", *task, *added])


def or_make(cmd: str) -> str:
    """A pretrain command (`pretrain_command`) in backticks, and the make target that runs it:
    `python -m lmft.pretrain experiment=quick lm.epochs=3` (or `make pretrain EXP=quick
    ARGS='lm.epochs=3'`)."""
    args = cmd.split()[3:]
    exp = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), "quick")
    rest = " ".join(a for a in args if not a.startswith("experiment="))
    return f"`{cmd}` (or `make pretrain EXP={exp}" + (f" ARGS='{rest}'`)" if rest else "`)")


def wait_for_lm(pdir: Path, wanted: dict, remedy: str, wait_s: float) -> dict | None:
    """The metrics of the finished LM in `pdir`, or None. A cell started while its LM still
    trains (`init.wait_s`: bench/gpu_check.sh starts the pretrained arm before the LM ends, so
    that the cells' start-up overlaps its last epochs) waits up to `wait_s` seconds for them."""

    def finished() -> dict | None:
        return read_finished(pdir / "metrics.json", wanted, "pretraining", remedy)

    done = finished()
    if done is None and wait_s > 0:
        print(f"[finetune] waiting up to {wait_s} s for the LM in {pdir} to finish", flush=True)
        t0 = time.monotonic()
        while (done := finished()) is None and time.monotonic() - t0 < wait_s:
            time.sleep(1)
        if done is not None:
            print(f"[finetune] the LM finished after {time.monotonic() - t0:.0f} s", flush=True)
    return done


def finished_lm(cfg: DictConfig) -> dict:
    """The metrics of the finished pretrain run this config points to, waited for up to
    `init.wait_s`; an error that names the pretrain command when it is missing, has other
    settings, or kept no encoder after `init.lm_epoch`."""
    pdir = Path(cfg.paths.pretrain_dir)
    cmd = pretrain_command(cfg)
    other = (  # that folder keeps its run: these settings need a name of their own
        f"Pretrain these settings under a new name ({or_make(pretrain_command(cfg, 'NEW'))}) "
        f"and give this command name=NEW too, or delete {pdir} and run {or_make(cmd)}."
    )
    done = wait_for_lm(pdir, run_identity(cfg, "pretrain"), other, cfg.init.wait_s)
    if done is None:
        waited = f" (waited {cfg.init.wait_s} s)" if cfg.init.wait_s > 0 else ""
        raise LmftError(
            f"init=pretrained needs a finished pretraining run in {pdir}{waited}. "
            f"Run {or_make(cmd)} first."
        )
    epoch, kept = cfg.init.lm_epoch, done.get("snapshots", [])
    if epoch and epoch != done["epochs"] and epoch not in kept:
        keep = pretrain_command(cfg, "NEW", [f"lm.snapshots=[{epoch}]"])
        raise LmftError(
            f"init.lm_epoch={epoch}: {pdir} kept the encoder after epochs {kept} and its last, "
            f"{done['epochs']}, only (lm.snapshots). Pretrain with lm.snapshots listing {epoch} "
            f"under a new name ({or_make(keep)}) and give this command lm_name=NEW, or pick one of "
            "those epochs."
        )
    return done


def load_pretrained(cfg: DictConfig, kwargs: dict, tokenizer_fingerprint: str) -> tuple[dict, dict]:
    """The encoder weights of the pretrain run this config points to (after its last epoch, or
    after `init.lm_epoch`), checked against it, and what the report says of that LM (its
    folder, epochs and validation perplexity then)."""
    done = finished_lm(cfg)
    pdir, epoch = Path(cfg.paths.pretrain_dir), cfg.init.lm_epoch
    if epoch == done["epochs"]:
        epoch = None  # the last epoch's encoder is encoder.pt
    remedy = f"Run {or_make(pretrain_command(cfg))} first."
    path = encoder_path(pdir, epoch)
    state = load_encoder_state(path, kwargs, tokenizer_fingerprint, remedy)
    ppl = math.exp(done["history"][epoch - 1]["lm/val_loss"]) if epoch else done["val/ppl"]
    used = {"dir": str(pdir), "epochs": epoch or done["epochs"], "val/ppl": ppl}
    return state, used | {
        k: done[k] for k in ("corpus", "softmax", "softmax_fell_back") if k in done
    }
