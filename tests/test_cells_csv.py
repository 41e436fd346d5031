"""lmft.cells_csv: the cells.csv and histories.csv a report writes read back as the cells the
report read, which is what the bench scripts over kept reports rely on."""

import json

import pytest
from omegaconf import OmegaConf

from lmft import cells_csv
from lmft.comparison import at_chance, load_cells
from lmft.errors import LmftError
from lmft.report import run

KEYS = [*(key for key, _ in cells_csv.COLUMNS.values()), "history"]


def write_sweep(sweep):
    for i, (init, seed) in enumerate([("pretrained", 0), ("scratch", 0), ("pretrained", 1)]):
        history = [{"epoch": e, "val/acc": 0.5 + e / 100 + i / 10} for e in range(1, 3 + i)]
        metrics = {
            "init": init,
            "train_size": 100,
            "seed": seed,
            "test/acc": 0.61 + i / 100,
            "test/acc_at_best_val": 0.62 + i / 100,
            "val/acc_best": history[-1]["val/acc"],
            "best_epoch": len(history),
            "history": history,
        }
        if i < 2:  # the validation's label share recorded: c0 (best 52%) at chance, c1 (63%) not
            metrics |= {"val_majority": 0.5, "n_val": 1000}
        (sweep / f"c{i}").mkdir(parents=True)
        (sweep / f"c{i}/metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def report(tmp_path):
    sweep, out = tmp_path / "sweep", tmp_path / "report"
    write_sweep(sweep)
    data = {"_target_": "lmft.data.imdb.IMDB", "anchors": {}}
    run(OmegaConf.create({"sweep_dir": str(sweep), "metric": "test/acc", "data": data}), out)
    return sweep, out / "cells.csv"


def test_a_reports_cells_read_back_as_the_report_read_them(report):
    sweep, path = report
    read = cells_csv.read(path)
    loaded = load_cells(sweep)[0]
    assert [{k: c[k] for k in KEYS} for c in read] == [{k: c[k] for k in KEYS} for c in loaded]
    assert [len(c["history"]) for c in read] == [2, 3, 4]
    assert [c["at_chance"] for c in read] == [c["at_chance"] for c in loaded]
    assert [c["at_chance"] for c in loaded] == [at_chance(c) for c in loaded] == [True, False, None]


def test_without_histories_a_cell_keeps_its_epoch_count_only(report):
    _, path = report
    path.with_name("histories.csv").unlink()
    read = cells_csv.read(path)
    assert [c["history"] for c in read][2] == [{"epoch": e} for e in (1, 2, 3, 4)]
    assert read[2]["test/acc_at_best_val"] == pytest.approx(0.64)


def test_a_missing_file_or_other_csv_is_refused(tmp_path):
    with pytest.raises(LmftError, match="is not a file: give a report's cells.csv"):
        cells_csv.read(tmp_path / "cells.csv")
    with pytest.raises(LmftError, match="is not a file: give a report's histories.csv"):
        cells_csv.read_histories(tmp_path / "histories.csv")
    (tmp_path / "other.csv").write_text("cell,seed\nx,0\n")
    with pytest.raises(LmftError, match="has no .*best_epoch.*: not a report's cells.csv"):
        cells_csv.read(tmp_path / "other.csv")
