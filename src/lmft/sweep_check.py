"""Every cell of a fine-tuning sweep checked before the first one trains.

Hydra composes a sweep's cells as each starts, so a value only a later cell has (a labeled size
beyond the data's pool, a missing LM for the pretrained arm after the scratch cells) would fail
after the cells before it trained. `CheckCells`, a Hydra callback of the finetune config,
composes every cell of the sweep first and checks what would refuse it, and refuses the sweep
with one `error:` line (exit 2) before any folder is made.
"""

from __future__ import annotations

import json
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lmft.errors import LmftError
from lmft.identity import FINETUNE_ONLY, NEURAL_ONLY
from lmft.train_size import is_all, parse_train_size, requested_size

# Data keys the labeled pool does not depend on: the cell's own sizes, the tokenizer's settings
NOT_THE_POOL = FINETUNE_ONLY | NEURAL_ONLY
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def job_configs(config: DictConfig) -> list[DictConfig]:
    """The config of each cell of the sweep `config` describes, composed as Hydra's basic sweeper
    composes them (its grid, `hydra.sweeper.params`, with the command line's overrides)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader()
    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(lines)
    (jobs,) = BasicSweeper.split_arguments(parsed, None)
    cells = (loader.load_sweep_config(config, list(job)) for job in jobs)
    # without the hydra node: its run-time values are set only when a job runs
    return [OmegaConf.masked_copy(c, [k for k in c if k != "hydra"]) for c in cells]


def check_cells(cells: list[DictConfig]) -> None:
    """What would refuse a cell, for every cell: its labeled size against its data's pool (the
    data read once per setting of the keys the pool depends on), and for the pretrained arm the
    finished LM (unless the cell is to wait for one in training, `init.wait_s`)."""
    from lmft.data.corpus import read_task, validation_and_pool
    from lmft.data.reader import dataset_reader
    from lmft.pretrained import finished_lm

    for cfg in cells:  # malformed sizes first: refused before any data is read
        requested_size(cfg.data.train_size)
    pools: dict[str, int] = {}
    for cfg in cells:
        size = cfg.data.train_size
        if not is_all(size):  # "all" fits any pool: no data to read for it
            data = OmegaConf.to_container(cfg.data, resolve=True)
            pool = {k: v for k, v in data.items() if f"data.{k}" not in NOT_THE_POOL}
            key = json.dumps(pool, sort_keys=True)
            if key not in pools:
                reader = dataset_reader(cfg.data)
                texts, _ = read_task(reader, reader.inputs())
                pools[key] = len(validation_and_pool(texts, cfg.data)[1])
            parse_train_size(size, pools[key])
        if cfg.init.name == "pretrained" and not cfg.init.wait_s:
            finished_lm(cfg)


class CheckCells(Callback):
    """Hydra callback (conf/finetune.yaml): `check_cells` on a multirun's cells before the first
    one starts. Only under Hydra's basic sweeper, whose grid it knows how to expand."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.sweeper._target_ != BASIC_SWEEPER:
            return
        try:
            check_cells(job_configs(config))
        except LmftError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
