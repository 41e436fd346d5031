"""bench/combine_cells.py: the report's tables and figures over the cells.csv (and histories.csv)
of reports whose runs are split over machines, as a GPU grid split over jobs is."""

import csv
from pathlib import Path

from conftest import ROOT

from lmft import cells_csv

REPORT = ROOT / "docs/results/data/quick_more_seeds"  # a committed report: 210 cells


def split_report(tmp_path: Path) -> list[Path]:
    """The report's cells and histories in two sources, even seeds and odd seeds."""
    cells = list(csv.DictReader((REPORT / "cells.csv").open()))
    history = list(csv.DictReader((REPORT / "histories.csv").open()))
    sources = []
    for parity in (0, 1):
        src = tmp_path / f"run{parity}"
        src.mkdir()
        mine = [c for c in cells if int(c["seed"]) % 2 == parity]
        names = {c["cell"] for c in mine}
        for file, rows in (("cells.csv", mine), ("histories.csv", history)):
            with (src / file).open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=rows[0].keys())
                w.writeheader()
                w.writerows(r for r in rows if r["cell"] in names)
        sources.append(src / "cells.csv")
    return sources


def test_split_reports_combine_to_the_one_report_with_its_epoch_figure(tmp_path, bench_cli):
    sources = split_report(tmp_path)
    r = bench_cli(
        "combine_cells",
        *sources,
        "--name",
        "quick",
        "--figure",
        tmp_path / "lc.png",
        "--epochs",
        tmp_path / "ep.png",
    )
    assert r.returncode == 0, r.stderr
    one = {g["train_size"]: g for g in csv.DictReader((REPORT / "gaps.csv").open())}
    for size, g in one.items():  # the same pairs, gap and interval as the report of all cells
        low, high = (f"{100 * float(g[k]):.2f}" for k in ("ci95_low", "ci95_high"))
        row = f"| {size} | {g['n_pairs']} | {100 * float(g['gap_mean']):.2f} | [{low}, {high}] |"
        assert row in r.stdout
    assert "| pretrained | 100 | 60 | 57.92 |" in r.stdout and "| 10.7 | 0/60 |" in r.stdout
    assert "| 0/60 | 3/50 (10 not recorded) |" in r.stdout  # cells.csv's at_chance, as reported
    assert (tmp_path / "lc.png").stat().st_size > 0 and (tmp_path / "ep.png").stat().st_size > 0
    # each cell gets its own rows of histories.csv, as numbers
    cell = next(
        c for c in cells_csv.read(sources[0]) if c["cell"] == "init=pretrained,n=100,seed=0"
    )
    first = cell["history"][0]
    assert (first["epoch"], first["val/acc"], first["train/loss"]) == (1, 0.559, 0.69762)
    assert [r["epoch"] for r in cell["history"]] == list(range(1, 20))  # its 19 epochs


def test_the_epoch_figure_without_histories_is_refused_before_anything_is_written(
    tmp_path, bench_cli
):
    sources = split_report(tmp_path)
    (sources[1].parent / "histories.csv").unlink()
    r = bench_cli(
        "combine_cells", *sources, "--figure", tmp_path / "lc.png", "--epochs", tmp_path / "ep.png"
    )
    assert r.returncode != 0 and r.stdout == ""
    assert f"combine_cells: No histories.csv beside {sources[1]}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.png"))
    # the tables need no histories
    r = bench_cli("combine_cells", *sources)
    assert r.returncode == 0 and "| 100 | 60 | 0.93 |" in r.stdout


def test_a_cell_in_two_sources_is_an_error(tmp_path, bench_cli):
    sources = split_report(tmp_path)
    r = bench_cli("combine_cells", sources[0], sources[0])
    assert r.returncode != 0 and "repeats" in r.stderr and "(arm, size and seed)" in r.stderr
