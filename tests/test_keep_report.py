"""bench/keep_report.py: a report kept under docs/ carries no machine path, links only the
figures it keeps, and is written whole or not at all."""

from pathlib import Path

import pytest

from lmft.errors import LmftError

SUMMARY = """# lmft report: x

- data files: `/home/someone/data/aclImdb_v1.tar.gz`, `/tmp/extra.csv`
- code: lmft commit `abc1234`

![learning curve](learning_curve.png)

![epochs](epochs.png)
"""


@pytest.fixture(scope="module")
def keep_report(bench_module):
    return bench_module("keep_report")


@pytest.fixture
def report(tmp_path: Path) -> Path:
    r = tmp_path / "outputs/reports/x"
    r.mkdir(parents=True)
    (r / "summary.md").write_text(SUMMARY)
    for name in ("cells.csv", "histories.csv", "gaps.csv", "summary.csv", "cells.json"):
        (r / name).write_text(name)
    for name in ("learning_curve.png", "epochs.png"):
        (r / name).write_bytes(b"\x89PNG " + name.encode())
    return r


def test_kept_copy(keep_report, report: Path, tmp_path: Path):
    dest, fig = tmp_path / "docs/results/data/x", tmp_path / "docs/img/x_epochs.png"
    keep_report.keep(report, dest, [f"epochs.png={fig}"])
    assert sorted(p.name for p in dest.iterdir()) == [
        "cells.csv", "gaps.csv", "histories.csv", "summary.md"
    ]  # fmt: skip
    text = (dest / "summary.md").read_text()
    assert "- data files: `aclImdb_v1.tar.gz`, `extra.csv`" in text
    assert "/home/" not in text and "/tmp/" not in text
    assert "![epochs](../../../img/x_epochs.png)" in text
    assert (dest / "../../../img/x_epochs.png").resolve().read_bytes() == b"\x89PNG epochs.png"
    assert "figure `learning_curve.png` was not kept" in text
    assert "lmft commit `abc1234`" in text


@pytest.mark.parametrize(
    ("figure", "says"),
    [
        ("epochs.png", "NAME=PATH.png"),
        ("gone.png=img/y.png", "does not exist"),
        ("unshown.png=img/y.png", "shows no figure unshown.png"),
    ],
)
def test_bad_figure_writes_nothing(
    keep_report, report: Path, tmp_path: Path, figure: str, says: str
):
    (report / "unshown.png").write_bytes(b"\x89PNG")  # a figure summary.md does not show
    dest = tmp_path / "kept"
    with pytest.raises(LmftError, match=says):
        keep_report.keep(report, dest, [figure.replace("img/", f"{tmp_path}/img/")])
    assert not dest.exists() and not (tmp_path / "img").exists()


def test_refuses_existing_dest_and_non_report(keep_report, report: Path, tmp_path: Path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(LmftError, match="exists already"):
        keep_report.keep(report, tmp_path / "kept", [])
    with pytest.raises(LmftError, match="no summary.md"):
        keep_report.keep(tmp_path, tmp_path / "new", [])
    assert not (tmp_path / "new").exists()
