"""Turn a sweep into the answer: summary table, paired gaps with 95% CIs, and two figures.

    python -m lmft.report experiment=quick
    python -m lmft.report sweep_dir=outputs/sweeps/quick report_dir=outputs/reports/quick

Reads every finished cell (`<sweep_dir>/*/metrics.json`; unfinished cells, and any with the
settings and seed of a cell already read, are listed, never counted) and writes summary.csv,
gaps.csv (pretrained − scratch), baseline_gaps.csv (each neural arm − the linear baseline),
cells.csv, histories.csv (every cell's per-epoch rows), cells.json (each cell's full settings,
versions and git commit), summary.md,
learning_curve.png (each arm's accuracy by size, and beside it the paired gaps) and epochs.png
(validation accuracy per epoch) to the report dir, and prints the tables.
Settings that differ between cells besides arm, size and seed (a swept classifier.pooling,
say) make recipes: rows and gaps per recipe, and best_recipes.csv, each arm's best recipe per
size (chosen on validation) against the other's. Pretrained cells that started from several
LM snapshots (init.lm_epoch) give rows and gaps per LM budget, against the same scratch
cells, and lm_budget.png.

The parts: comparison.py (cells to rows and gaps), cells_csv.py (cells.csv, histories.csv),
tables.py (summary.md), figures.py (PNGs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lmft import cells_csv
from lmft.cli import check_names, entry
from lmft.comparison import (
    against_baseline,
    at_largest_budget,
    beside_each_lm,
    best_against_best,
    budgets,
    lm_epochs,
    load_cells,
    summarize,
)
from lmft.figures import epochs_figure, learning_curve, lm_budget_figure
from lmft.io import write_csv, write_json, write_text
from lmft.resolvers import register
from lmft.tables import best_model_lines, caption, markdown, settings_lines

# What a report writes only for some sweeps: a rerun removes those it no longer writes.
OPTIONAL_FILES = frozenset(
    {"gaps.csv", "baseline_gaps.csv", "best_recipes.csv", "histories.csv", "lm_budget.png"}
)


def run(cfg: DictConfig, out_dir: Path) -> dict:
    sweep_dir, out_dir = Path(cfg.sweep_dir), Path(out_dir)
    found, not_counted = load_cells(sweep_dir)
    cells = beside_each_lm(found)  # compared: each scratch cell beside every LM setting
    name = sweep_dir.name  # the folder read (= the preset's name unless another was given)
    summary, gaps = summarize(cells, cfg.metric)
    best = best_against_best(cells, cfg.metric)
    base_gaps = against_baseline(cells, cfg.metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def out(file: str) -> Path:
        written.append(file)
        return out_dir / file

    write_csv(out("summary.csv"), summary)
    write_csv(out("cells.csv"), [cells_csv.row(c) for c in found])
    # every neural cell's per-epoch history, one file: small enough to keep beside cells.csv
    epochs = cells_csv.history_rows(found)
    if epochs:
        write_csv(out("histories.csv"), epochs)
    # every cell's full settings and the code that made it (versions, git commit)
    write_json(
        out("cells.json"),
        [{k: c.get(k) for k in ("cell", "identity", "provenance")} for c in found],
    )
    if gaps:
        write_csv(out("gaps.csv"), gaps)
    if base_gaps:
        write_csv(out("baseline_gaps.csv"), base_gaps)
    if best:
        write_csv(out("best_recipes.csv"), best)
    # the curves per size and per epoch show the pretrained arm from its largest LM budget;
    # lm_budget.png shows every budget (LM snapshots)
    final = at_largest_budget(cells, lm_epochs)
    note = caption(final)
    learning_curve(
        name,
        cfg.metric,
        at_largest_budget(summary),
        out("learning_curve.png"),
        note,
        at_largest_budget(gaps),
        at_largest_budget(base_gaps),
    )
    epochs_figure(name, final, out("epochs.png"), note)
    if len(budgets(cells)) > 1:
        lm_budget_figure(name, summary, gaps, out("lm_budget.png"), caption(cells))
    # the dataset's published numbers, for cells of that dataset only
    dataset = {(c.get("identity") or {}).get("data", {}).get("_target_") for c in cells}
    same = dataset == {cfg.data._target_}
    anchors = OmegaConf.to_container(cfg.data.anchors) if same else {}
    md = markdown(
        name,
        cfg.metric,
        summary,
        gaps,
        len(found),
        not_counted,
        anchors,
        [*best_model_lines(found, sweep_dir), *settings_lines(cells)],
        best,
        base_gaps,
    )
    write_text(out("summary.md"), md)
    for stale in OPTIONAL_FILES - set(written):  # an earlier report's, of another sweep state
        (out_dir / stale).unlink(missing_ok=True)
    print(md.split("![")[0].rstrip())
    print(f"\nReport written to {out_dir}/ ({', '.join(sorted(written))})", file=sys.stderr)
    return {"summary": summary, "gaps": gaps, "best": best}


register()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="report")
def main(cfg: DictConfig) -> None:
    entry(run, cfg)


if __name__ == "__main__":
    check_names(sys.argv)
    main()
