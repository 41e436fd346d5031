"""Learning-rate schedules over a run's optimizer steps, shared by the LM and the classifier."""

from __future__ import annotations

import torch

from lmft.errors import LmftError

SCHEDULES = ("constant", "slanted_triangular", "one_cycle")


def check_schedule(schedule: str, section: str) -> None:
    if schedule not in SCHEDULES:
        raise LmftError(f"{section}.schedule must be one of {SCHEDULES}, not {schedule!r}")


def with_schedule(module, opt: torch.optim.Optimizer, schedule: str, warmup_frac: float):
    """What `module.configure_optimizers` returns: `opt` alone (constant), or with a per-step
    schedule over the run's steps that rises over the first `warmup_frac` of them to each
    group's rate, then decays:
    - slanted_triangular (ULMFiT's STLR): linear, from and back to rate / 32;
    - one_cycle: torch's OneCycleLR with its defaults (cosine, from rate / 25 down to
      rate / 2.5e5, with momentum cycling).
    """
    if schedule == "constant":
        return opt
    kw = {}
    if schedule == "slanted_triangular":
        kw = dict(
            anneal_strategy="linear", div_factor=32.0, final_div_factor=1.0, cycle_momentum=False
        )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=[g["lr"] for g in opt.param_groups],
        total_steps=int(module.trainer.estimated_stepping_batches),
        pct_start=warmup_frac,
        **kw,
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
