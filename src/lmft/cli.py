"""The body of every `@hydra.main`: runs a stage in Hydra's output folder, turns user errors into
a message and exit code 2, and makes multirun jobs and DDP get along."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, read_write

from lmft.errors import LmftError


def _relaunch_as_this_job(hc) -> None:
    """Lightning's `ddp` starts ranks > 0 by re-running `sys.argv` + `hydra.run.dir=<run.dir>`.

    Under `-m` that would be the whole sweep, in another folder: make it this job alone, in
    this job's folder.
    """
    sys.argv = [sys.argv[0], *hc.overrides.task]
    with read_write(hc.run):
        hc.run.dir = hc.runtime.output_dir


def _check_ddp_launcher(cfg: DictConfig, hc) -> None:
    """Only the basic launcher runs jobs in the process that got the command line, so only there
    can Lightning re-launch ranks; on SLURM, submitit starts one task per device itself."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    many = str(cfg.trainer.strategy).startswith("ddp") and str(cfg.trainer.devices) != "1"
    basic = hc.launcher._target_.endswith("BasicLauncher")
    if many and not basic and not SLURMEnvironment.detect():
        raise LmftError(
            f"trainer.strategy={cfg.trainer.strategy} with several devices needs the basic "
            "launcher (plain -m) or SLURM (hydra/launcher=slurm starts one task per device); "
            "under joblib or submitit_local give each cell one device (docs/scaling.md)."
        )


def _remove_if_unused(out_dir: Path, job_name: str) -> None:
    """Delete a run folder that holds only what Hydra (and the cell's lock) put there, and a
    sweep folder left with nothing but Hydra's multirun.yaml: refused input leaves nothing."""
    hydra_own = {".hydra", f"{job_name}.log", ".lock"}
    if out_dir.is_dir() and {p.name for p in out_dir.iterdir()} <= hydra_own:
        shutil.rmtree(out_dir, ignore_errors=True)
        sweep = out_dir.parent
        if sweep.is_dir() and {p.name for p in sweep.iterdir()} <= {"multirun.yaml"}:
            shutil.rmtree(sweep, ignore_errors=True)


def check_names(argv: list[str]) -> None:
    """Before Hydra makes any folder: a `name=` or `lm_name=` override that would leave
    `paths.outputs` is one `error:` line and exit code 2 (Hydra, resolving its run folder from
    it, would fail later with a traceback)."""
    from lmft.resolvers import run_name

    for arg in argv[1:]:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") in ("name", "lm_name"):
            try:
                run_name(value)
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)


def entry(run: Callable[[DictConfig, Path], dict], cfg: DictConfig) -> None:
    """Body of every @hydra.main: call `run` in Hydra's output dir; user errors exit 2 cleanly.

    Each call leaves the process as it found it (environment, no process group), so that the
    next job of a multirun can start DDP afresh.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc, env = HydraConfig.get(), dict(os.environ)
    out_dir = Path(hc.runtime.output_dir)
    try:
        if hc.mode == RunMode.MULTIRUN:
            _check_ddp_launcher(cfg, hc)
            _relaunch_as_this_job(hc)
        run(cfg, out_dir)
    except LmftError as e:
        _remove_if_unused(out_dir, hc.job.name)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        # Hydra raises a sweep job's error only after the jobs that follow it, and a later
        # job's own failure (Hydra's, on a full disk) would hide it: said here, as it happens
        if hc.mode == RunMode.MULTIRUN:
            print(f"error: {out_dir} failed: {type(e).__name__}: {e}", file=sys.stderr)
        raise
    finally:
        dist = sys.modules.get("torch.distributed")  # only a stage that imported torch ran DDP
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(env)
