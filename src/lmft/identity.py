"""What changes a result: the one declaration, and the run identities and checks built on it.

Every key of the config sections a stage reads decides that stage's result, except the keys
declared here. A run stores its identity (those values, resolved) in metrics.json; a rerun with
the same identity skips it, one with another is refused. The same declaration names the id
cache (`cache_key`), the fine-tuning cells' folders and the pretrain command finetune prints.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lmft.errors import LmftError

# The config sections each stage reads (its identity); finetune's (the pretrained arm's cells)
# include the LM's settings.
STAGE_SECTIONS = {
    "pretrain": ("data", "pretrain_data", "model", "lm", "trainer"),
    "finetune": ("data", "pretrain_data", "model", "lm", "classifier", "trainer", "init", "seed"),
    # the scratch arm never reads the LM: one scratch cell serves every LM setting of a sweep
    "scratch": ("data", "pretrain_data", "model", "classifier", "trainer", "init", "seed"),
    # the linear baseline arm (init=baseline) reads the raw texts: no LM, encoder or tokenizer
    "baseline": ("data", "init", "seed"),
}
# Data keys only fine-tuning reads: they change cells, never the LM.
FINETUNE_ONLY = frozenset({"data.train_size", "data.test_size", "data.curve_test_size"})
# Data keys only the neural arms read (the token ids, the LM's texts, the per-epoch test curve):
# the linear baseline, which reads the raw labeled texts once, never sees them.
NEURAL_ONLY = frozenset(
    {
        "data.tokenizer",
        "data.vocab_size",
        "data.min_frequency",
        "data.truncating",
        "data.use_unsup",
        "data.curve_test_size",
    }
)
# Data keys applied to the token ids after tokenization: results, but not the id cache's key.
AFTER_TOKENS = FINETUNE_ONLY | {"data.truncating"}
# Speed, hardware and file locations: never a result.
NOT_RESULTS = frozenset(
    {
        "data.archive",  # the texts read are keyed by the archive's contents (its stat), not path
        "data.data_dir",
        "data.download",
        "data.cache_dir",
        "data.num_workers",
        "data.anchors",  # published numbers the report prints
        "classifier.save_model",
        "init.wait_s",  # how long a cell waits for its LM to finish
        "classifier.eval_batch_size",  # a text's outputs never depend on its batch (float noise)
        "lm.eval_batch_size",  # likewise; the loss is a mean over all validation tokens
        "lm.loss_impl",  # one softmax computed two ways (equal up to float noise; tested)
        "lm.snapshots",  # which epochs' encoders are kept besides the last
        "lm.checkpoint_every",  # how often resume state is written (resuming is exact)
        "trainer.progress_bar",
        "trainer.num_threads",
        "trainer.keep_freed_memory",  # where freed memory goes, not what is computed
        "trainer.log_every_n_steps",
        "trainer.devices",
        "trainer.accelerator",
        "trainer.strategy",  # DDP shards each batch over processes: the same result
        "trainer.num_nodes",
    }
)
# Settings added after runs were stored, with the value those runs were made with: a stored
# identity that lacks one has it (so finished runs and cells stay finished when lmft gains a
# setting). A setting added to a stage's sections joins this list with its default.
ADDED = {"lm.schedule": "constant", "lm.warmup_frac": 0.1, "data.val_groups": False}
# Likewise for the settings of one dataset reader (`data._target_`), which other datasets lack.
READER_ADDED = {"lmft.data.text_files.TextClassification": {"data.group_column": None}}
# Keys of a stage's sections that the stage never reads.
UNREAD = {"pretrain": FINETUNE_ONLY, "baseline": NEURAL_ONLY}
# A fine-tuning cell's own axes, first in its folder name (`cell_name`).
CELL_AXES = ("init", "data.train_size", "seed")


def reads(key: str, stage: str) -> bool:
    """Whether `stage` reads the dotted config key (`lm.lr`; a group choice: `model`)."""
    return key.split(".")[0] in STAGE_SECTIONS[stage] and key not in UNREAD.get(stage, ())


def cell_stage(init: str) -> str:
    """The stage whose identity a fine-tuning cell of arm `init` has."""
    return init if init in ("scratch", "baseline") else "finetune"


def decides(key: str, stage: str) -> bool:
    """Whether the dotted config key can change `stage`'s result."""
    return reads(key, stage) and key not in NOT_RESULTS


def override_key(override: str) -> str:
    """`+lm.lr=3e-3` -> `lm.lr`; `model=transformer` -> `model`."""
    return override.lstrip("+~").split("=")[0]


def run_identity(cfg: DictConfig, stage: str) -> dict:
    """The resolved config values that determine a stage's result (stored with its metrics)."""
    full = OmegaConf.to_container(cfg, resolve=True)
    out = {}
    for s in STAGE_SECTIONS[stage]:
        v = full[s]
        if isinstance(v, dict):
            v = {k: x for k, x in v.items() if decides(f"{s}.{k}", stage)}
        out[s] = v
    return out


def added(data: dict | None) -> dict:
    """The settings added since runs were stored (`ADDED`), with those of the reader that a
    data section names (`READER_ADDED`)."""
    return {**ADDED, **READER_ADDED.get((data or {}).get("_target_"), {})}


def cache_settings(data: dict) -> dict:
    """The data settings the tokenizer and the token ids depend on (the id cache's key); a
    setting added since (`added`) only where it is not the value caches were made with."""
    new = added(data)
    return {
        k: v
        for k, v in data.items()
        if decides(f"data.{k}", "finetune")
        and f"data.{k}" not in AFTER_TOKENS
        and not (f"data.{k}" in new and new[f"data.{k}"] == v)
    }


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested identity as dotted keys: {"classifier": {"lr": 1e-3}} -> {"classifier.lr": 1e-3}."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested dicts ('lm.epochs: 2 != 3')."""
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, "<missing>"), b.get(k, "<missing>")
        if isinstance(x, dict) and isinstance(y, dict):
            out += diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}: {x!r} != {y!r}")
    return out


def stored_identity(metrics: dict, sections) -> dict | None:
    """A finished run's stored identity: its `sections` (those its stage reads today; a scratch
    cell stored before lmft left out the LM it never reads has an `lm` section, dropped), with
    the settings added since it ran (`added`)."""
    done = metrics.get("identity")
    if done is None:
        return None
    done = {s: copy.deepcopy(v) for s, v in done.items() if s in sections}
    for key, value in added(done.get("data")).items():
        section, name = key.split(".", 1)
        if isinstance(done.get(section), dict):
            done[section].setdefault(name, value)
    return done


def read_finished(path: Path, identity: dict, what: str, remedy: str = "") -> dict | None:
    """Metrics of a finished run at `path`; None if unfinished; error if other settings made it."""
    if not path.exists():
        return None
    try:
        metrics = json.loads(path.read_text())
        done = stored_identity(metrics, identity)
    except ValueError:
        return None  # unreadable: not finished
    if done is None:
        return None
    if done != identity:
        raise LmftError(
            f"{path.parent} holds a finished {what} made with other settings "
            f"({'; '.join(diff(done, identity)[:5])}). "
            + (remedy or "Use another name=... for the new settings, or delete that folder.")
        )
    return metrics
