"""The dataset reader interface. The `data` config group picks a reader by `_target_`, as the
`model` group picks an encoder.

To add a dataset: a module with a subclass of `DatasetReader`, and `conf/data/<name>.yaml` with
`_target_: <module>.<Class>`, the keys the reader reads, and `defaults: [_shared, _self_]` for
the keys every dataset has (tokenizer, splits, sizes). Everything after the texts (tokenizer, id
cache, splits, both stages, the baseline, the report) is shared.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lmft.data.texts import Texts
from lmft.targets import target_class


class DatasetReader:
    """A labeled dataset, read from the `data` config (`self.cfg`).

    - `inputs()`: the files it reads, found but not read (their sizes and dates key the
      token-id cache, so a changed file is read again).
    - `read(inputs)`: the texts of each split with their label ids, and the class names (label
      i is `names[i]`). Splits: `train` and `test`; `val` when the data has its own validation
      split (otherwise `data.val_size` is held out of train); `unsup`, unlabeled texts the LM
      reads too, optional.
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def inputs(self) -> list[Path]:
        raise NotImplementedError

    def read(self, inputs: list[Path]) -> tuple[dict[str, Texts], list[str]]:
        raise NotImplementedError


def dataset_reader(cfg: DictConfig) -> DatasetReader:
    """The reader `data._target_` names, for the data config `cfg`."""
    hint = "Pick a dataset with data=imdb or data=text_classification (conf/data/)."
    return target_class(cfg.get("_target_"), DatasetReader, "data._target_", hint)(cfg)
