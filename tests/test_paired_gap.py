"""bench/paired_gap.py: the paired gap between any two sets of cells of a report's cells.csv,
the numbers the results pages give for one arm with and without a setting."""

import csv
from pathlib import Path

from lmft import cells_csv

FIELDS = [*cells_csv.COLUMNS, "epochs"]


def write_cells(tmp_path: Path, rows: list[tuple], name: str = "cells.csv") -> Path:
    path = tmp_path / name
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for label, size, seed, test, val in rows:
            w.writerow(
                [
                    f"init=pretrained,n={size},seed={seed},{label}",
                    "pretrained",
                    size,
                    seed,
                    test,
                    test,  # the last epoch's
                    val,
                    1,  # the best epoch
                    1,  # of 1
                ]
            )
    return path


def test_gaps_are_paired_by_size_and_seed(tmp_path, bench_cli):
    # a = b + 1, 2, 3 points on test at 100 labels (seed 3 has no b: left out), + 5 at 1,000
    rows = [("a", 100, s, 0.50 + d, 0.60) for s, d in ((0, 0.01), (1, 0.02), (2, 0.03), (3, 0.5))]
    rows += [("b", 100, s, 0.50, 0.60) for s in (0, 1, 2)]
    rows += [(n, 1000, s, 0.70 + (0.05 if n == "a" else 0), 0.70) for n in "ab" for s in (0, 1)]
    rows += [("a", 300, 0, 0.61, 0.6), ("b", 300, 0, 0.60, 0.6)]
    r = bench_cli("paired_gap", write_cells(tmp_path, rows), "a$", "b$")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].startswith("100 labels, 3 pairs: test +2.00 [-0.48, +4.48] (0 of 3 below 0)")
    assert "validation +0.00" in lines[1]
    one = "(one pair: no interval)"
    assert lines[2] == f"300 labels, 1 pair: test +1.00 {one}; validation +0.00 {one}"
    assert lines[3].startswith("1,000 labels, 2 pairs: test +5.00")


def test_than_takes_the_difference_of_two_gaps_per_seed(tmp_path, bench_cli):
    # (a - b) is 3 and 5 points, (c - d) 1 and 1: the difference 2 and 4, mean 3
    rows = [("a", 100, 0, 0.53, 0.5), ("a", 100, 1, 0.55, 0.5)]
    rows += [("b", 100, s, 0.50, 0.5) for s in (0, 1)]
    rows += [("c", 100, s, 0.51, 0.5) for s in (0, 1)] + [("d", 100, s, 0.50, 0.5) for s in (0, 1)]
    r = bench_cli("paired_gap", write_cells(tmp_path, rows), "a$", "b$", "--than", "c$", "d$")
    assert r.returncode == 0, r.stderr
    assert "100 labels, 2 pairs: test +3.00 [" in r.stdout


def test_an_ambiguous_or_empty_pattern_is_refused_with_nothing_printed(tmp_path, bench_cli):
    rows = [("x,a", 100, 0, 0.5, 0.5), ("y,a", 100, 0, 0.6, 0.5), ("b", 100, 0, 0.5, 0.5)]
    rows.append(("c", 300, 0, 0.5, 0.5))
    path = write_cells(tmp_path, rows)
    r = bench_cli("paired_gap", path, "a$", "b$")
    assert r.returncode != 0 and r.stdout == ""
    assert "the same size and seed" in r.stderr and "narrower" in r.stderr
    r = bench_cli("paired_gap", path, "zzz", "b$")
    assert r.returncode != 0 and "matches no cell" in r.stderr
    r = bench_cli("paired_gap", path, "x,a$", "c$")
    assert r.returncode != 0 and "share no labeled size and seed" in r.stderr
    r = bench_cli("paired_gap", path, "x,a$", "(")
    assert r.returncode != 0 and "not a regular expression" in r.stderr
    (tmp_path / "other.csv").write_text("cell,seed\nx,0\n")
    r = bench_cli("paired_gap", tmp_path / "other.csv", "x", "x")
    assert r.returncode != 0 and "not a report's cells.csv" in r.stderr
    r = bench_cli("paired_gap", tmp_path / "missing.csv", "a", "b")
    assert r.returncode != 0 and "is not a file" in r.stderr


def test_cells_of_several_files_pair_as_one(tmp_path, bench_cli):
    a = write_cells(tmp_path, [("a", 100, s, 0.52, 0.5) for s in (0, 1)], "one.csv")
    b = write_cells(tmp_path, [("b", 100, s, 0.50, 0.5) for s in (0, 1, 2)], "two.csv")
    r = bench_cli("paired_gap", a, b, "a$", "b$")
    assert r.returncode == 0, r.stderr
    assert "100 labels, 2 pairs: test +2.00 [+2.00, +2.00]" in r.stdout
    r = bench_cli("paired_gap", a, a, "a$", "b$")  # the same cells twice: ambiguous
    assert r.returncode != 0 and "the same size and seed" in r.stderr
