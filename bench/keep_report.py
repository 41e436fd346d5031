"""Keep a report under docs/: its summary.md and tables, without the machine's paths.

    python bench/keep_report.py outputs/reports/quick_1k docs/results/data/quick_1k-452c30f/x \
        --figure epochs.png=docs/img/quick_1k_x_epochs.png

Copies summary.md and the report's CSV tables (cells, per-epoch histories, gaps) into DEST,
which must not exist yet. In summary.md the data files become their file names, and each
figure is either copied where --figure says (and linked from there) or named as not kept,
since figures belong in docs/img/. Nothing is written unless all of it can be.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path

from lmft.errors import LmftError
from lmft.tables import DATA_FILES

TABLES = ("cells.csv", "histories.csv", "gaps.csv", "baseline_gaps.csv", "best_recipes.csv")
FIGURE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<file>[^)/]+\.png)\)$")


def data_line(line: str) -> str:
    """The report's data-files line with each path cut to its file name."""
    files = re.findall(r"`([^`]+)`", line[len(DATA_FILES) :])
    return DATA_FILES + ", ".join(f"`{Path(f).name}`" for f in files)


def keep_summary(text: str, report: Path, dest: Path, figures: dict[str, Path]) -> str:
    """summary.md as kept in DEST: no machine paths, figure links that resolve."""
    lines = text.splitlines()
    matches = [FIGURE.match(line) for line in lines]
    missing = sorted(set(figures) - {m["file"] for m in matches if m})
    if missing:
        raise LmftError(f"{report / 'summary.md'} shows no figure {', '.join(missing)}")
    out = []
    for line, fig in zip(lines, matches, strict=True):
        if line.startswith(DATA_FILES):
            line = data_line(line)
        elif fig and fig["file"] in figures:
            target = figures[fig["file"]]
            line = f"![{fig['alt']}]({Path(os.path.relpath(target, dest)).as_posix()})"
        elif fig:
            line = f"(The report's figure `{fig['file']}` was not kept with this copy.)"
        out.append(line)
    return "\n".join(out) + "\n"


def figure_map(specs: list[str], report: Path) -> dict[str, Path]:
    """--figure NAME=PATH pairs, each NAME a figure the report wrote."""
    figures = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep or not target.endswith(".png"):
            raise LmftError(
                f"--figure {spec}: write it as NAME=PATH.png, e.g. epochs.png=docs/img/x.png"
            )
        if not (report / name).is_file():
            raise LmftError(f"--figure {spec}: {report / name} does not exist")
        if Path(target).exists():
            raise LmftError(f"--figure {spec}: {target} exists already; choose another name")
        figures[name] = Path(target)
    return figures


def keep(report: Path, dest: Path, specs: list[str]) -> list[Path]:
    """Write DEST (and the figures) from REPORT; the files written."""
    if not (report / "summary.md").is_file():
        raise LmftError(f"{report} has no summary.md: name a folder under outputs/reports/")
    if dest.exists():
        raise LmftError(f"{dest} exists already: choose a new folder for this copy")
    figures = figure_map(specs, report)
    summary = keep_summary((report / "summary.md").read_text(), report, dest, figures)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staged = Path(tmp) / dest.name
        staged.mkdir()
        (staged / "summary.md").write_text(summary)
        for name in TABLES:
            if (report / name).is_file():
                shutil.copyfile(report / name, staged / name)
        for name, target in figures.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report / name, target)
        staged.rename(dest)
    return sorted(dest.iterdir()) + list(figures.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="a report folder, e.g. outputs/reports/quick")
    ap.add_argument("dest", type=Path, help="the new folder, e.g. docs/results/data/NAME")
    ap.add_argument(
        "--figure",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="copy the report's figure NAME to PATH and link it (repeatable)",
    )
    args = ap.parse_args()
    for path in keep(args.report, args.dest, args.figure):
        print(path)


if __name__ == "__main__":
    try:
        main()
    except LmftError as e:
        raise SystemExit(f"keep_report: {e}") from None
