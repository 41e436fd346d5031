"""The config resolvers lmft's configs use; each entry point registers them before Hydra runs."""

from __future__ import annotations

from omegaconf import OmegaConf

from lmft.identity import CELL_AXES, cell_stage, decides, override_key


def job_gpu(n_gpus: int) -> list[int]:
    """`trainer.devices='${lmft.job_gpu:N}'`: job k of a sweep runs on GPU k mod N (joblib)."""
    from hydra.core.hydra_config import HydraConfig

    return [HydraConfig.get().job.num % int(n_gpus)]


def names_cell(key: str, init: str = "pretrained") -> bool:
    """Whether a command-line override of `key` goes into the folder name of a cell of arm
    `init`: it can change that cell's result and is not one of its own axes (so a baseline cell
    of a sweep over classifier.pooling is one folder, run once). (The trainer group picks
    hardware; the values it sets that matter are in the identity, which the rerun check
    compares.)"""
    return decides(key, cell_stage(init)) and key not in CELL_AXES and key != "trainer"


def cell_name(init: str, size, seed) -> str:
    """`cell: ${lmft.cell:...}`: a fine-tuning cell's folder, named from its arm, size and seed,
    then every other command-line override that can change its result, sorted (for example
    `init=scratch,n=1000,seed=0,classifier.pooling=concat`): so any config key can be a sweep
    axis, one readable folder per combination. (Called from Python, without Hydra's command
    line, the name is the first three.)"""
    from hydra.core.hydra_config import HydraConfig

    base = f"init={init},n={size},seed={seed}"
    if not HydraConfig.initialized():
        return base
    task = HydraConfig.get().overrides.task
    extra = sorted(o.lstrip("+~") for o in task if names_cell(override_key(o), init))
    return ",".join([base, *(e.replace("/", "_") for e in extra)])  # one folder, never nested


def register() -> None:
    OmegaConf.register_new_resolver("lmft.job_gpu", job_gpu, replace=True)
    OmegaConf.register_new_resolver("lmft.cell", cell_name, replace=True)
