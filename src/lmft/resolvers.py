"""The config resolvers lmft's configs use; each entry point registers them before Hydra runs."""

from __future__ import annotations

import hashlib

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
    axis, one readable folder per combination (a name too long for a folder keeps its start and
    a hash of the rest). (Called from Python, without Hydra's command
    line, the name is the first three.)"""
    from hydra.core.hydra_config import HydraConfig

    base = f"init={init},n={size},seed={seed}"
    if not HydraConfig.initialized():
        return base
    task = HydraConfig.get().overrides.task
    extra = sorted(o.lstrip("+~") for o in task if names_cell(override_key(o), init))
    return fitted(",".join([base, *(e.replace("/", "_") for e in extra)]))  # one folder


MAX_NAME_BYTES = 200  # a folder name may hold 255 bytes on common filesystems


def fitted(name: str) -> str:
    """`name` when it fits a folder name, else its first bytes and a hash of all of it: stable,
    so a rerun finds the same folder (the full overrides are in its .hydra/overrides.yaml)."""
    raw = name.encode()
    if len(raw) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    head = raw[: MAX_NAME_BYTES - len(digest) - 6].decode(errors="ignore")
    return f"{head},hash={digest}"


def run_name(name: str) -> str:
    """`${lmft.name:${name}}`: a run's name as one folder under `paths.outputs`, refused when it
    would lead elsewhere (`/`, `..`) before any folder is made."""
    name = str(name)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(
            f"name / lm_name {name!r}: a run's name is one folder name under paths.outputs "
            "(no '/' and not '..'); to write elsewhere set paths.outputs=<folder>."
        )
    return name


def register() -> None:
    OmegaConf.register_new_resolver("lmft.job_gpu", job_gpu, replace=True)
    OmegaConf.register_new_resolver("lmft.cell", cell_name, replace=True)
    OmegaConf.register_new_resolver("lmft.name", run_name, replace=True)
