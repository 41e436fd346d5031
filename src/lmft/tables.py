"""The report's text: what was compared, the summary and gap tables, published anchors."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from lmft.baseline import MODEL_FILE
from lmft.comparison import BASELINE, at_largest_budget, spelt, varying_keys
from lmft.identity import flatten

DATA_FILES = "- data files: "  # the line naming the cells' input files (bench/keep_report.py)


def neural(cells: list[dict]) -> list[dict]:
    return [c for c in cells if c["init"] != BASELINE]


def settings_lines(cells: list[dict]) -> list[str]:
    """What the sweep compared and what it rests on: the LM(s) the pretrained cells started
    from (their corpus and settings), the data files and splits, the model and classifier
    settings all cells share, the settings that differ between cells, the baseline's grid and
    the code that ran."""
    lines = ["## What was compared", ""]
    lms = {json.dumps(c["lm"], sort_keys=True) for c in cells if c.get("lm")}
    for lm in sorted(map(json.loads, lms), key=lambda lm: lm["epochs"]):
        read = lm.get("corpus")
        read = f"; read {read['texts']:,} texts ({read['tokens']:,} tokens)" if read else ""
        read += f"; softmax {lm['softmax']}" if lm.get("softmax") else ""
        if lm.get("softmax_fell_back"):
            read += " (**on a GPU: slower than the fused kernel; results equal up to float noise**)"
        lines.append(
            f"- LM: `{lm['dir']}`, {n_epochs(lm['epochs'])}{read}; perplexity "
            f"{lm['val/ppl']:.1f} on the task's validation texts (comparable only between LMs "
            "with the same tokenizer and validation texts)"
        )
    varying = varying_keys(cells)
    flat = flatten((neural(cells) or cells)[0].get("identity") or {})
    sections = ("lm", "pretrain_data", "model", "classifier") if lms else ("model", "classifier")
    for section in sections:
        shown = ", ".join(
            f"{k.split('.', 1)[1]}={spelt(v)}"
            for k, v in flat.items()
            if k.startswith(f"{section}.") and k not in varying
        )
        lines.append(f"- {section}: {shown}")
    files = sorted({f for c in cells for f in c.get("inputs") or []})
    if files:
        lines.append(DATA_FILES + ", ".join(f"`{f}`" for f in files))
    data = [(c.get("identity") or {}).get("data", {}) for c in cells]
    by_group = {"validation": all(d.get("val_groups") for d in data)}
    # own data's test, held out of train (no data.test file), then takes whole groups too
    by_group["test"] = by_group["validation"] and all(
        d.get("group_column") and not d.get("test") for d in data
    )
    for split, key in (("validation", "n_val"), ("test", "n_test")):
        counts = sorted({c[key] for c in cells if key in c})
        if counts:
            sizes = " / ".join(f"{n:,}" for n in counts)
            held = ", whole groups held out (`data.val_groups`)" if by_group[split] else ""
            lines.append(f"- {split}: {sizes} texts{held}, every cell")
    if varying:
        values = {
            k: sorted({spelt(flatten(c["identity"]).get(k)) for c in neural(cells)})
            for k in varying
        }
        shown = "; ".join(f"`{k}` ({', '.join(v)})" for k, v in values.items())
        lines.append(f"- settings that differ between cells: {shown}")
    base = [c for c in cells if c["init"] == BASELINE]
    if base:
        grid = base[0]["identity"]["init"]
        chosen = Counter(c["baseline"]["chosen"]["model"] for c in base)
        lines.append(
            f"- baseline: {' / '.join(grid['models'])} on word 1- to {grid['ngram_max']}-grams, "
            f"C in {grid['C']}, model and C chosen per cell on validation "
            f"({', '.join(f'{m}: {n} cells' for m, n in sorted(chosen.items()))})"
        )
    made = {c["cell"]: c.get("provenance") or {} for c in cells}  # each once (beside_each_lm)
    code = Counter((str(p.get("git_commit")), p.get("git_tree")) for p in made.values())
    lines.append(
        "- code: lmft commit "
        + ", ".join(
            f"`{commit}`{f' (tree `{tree}`)' if tree else ''}: {n} cell{'s' * (n != 1)}"
            for (commit, tree), n in sorted(code.items(), key=str)
        )
    )
    trees = sorted({tree for _, tree in code if tree})
    if len(trees) > 1:  # merged runs: their gaps pair cells of different code
        lines[-1] += (
            f" ({len(trees)} code trees in one comparison: check that what differs between them, "
            f"`git diff {trees[0]} {trees[1]}`, does not touch training)"
        )
    return [*lines, ""]


def _by_validation(cell: dict) -> tuple[float, int]:
    """A cell's rank when picking the best: its best validation accuracy (ties: more labels)."""
    return cell["val/acc_best"], cell["train_size"]


def best_model_lines(cells: list[dict], sweep_dir: Path) -> list[str]:
    """The neural cell whose saved model (`model.pt`) has the best validation accuracy, chosen
    on validation only (every cell reads the same validation texts), with the command that uses
    it; and the best baseline cell where it reads higher (or no neural cell kept a model), with
    its command where it kept its model (`model.joblib`)."""
    saved = [c for c in neural(cells) if (sweep_dir / c["cell"] / "model.pt").exists()]
    best = max(saved, key=_by_validation, default=None)
    top = max((c for c in cells if c["init"] == BASELINE), key=_by_validation, default=None)
    lines = _use("Best neural model by validation accuracy", best, sweep_dir) if best else []
    if top and (best is None or top["val/acc_best"] > best["val/acc_best"]):
        what = "The linear baseline reads higher" if best else "Best linear baseline"
        if (sweep_dir / top["cell"] / MODEL_FILE).exists():
            lines += _use(what, top, sweep_dir)
        else:
            lines += [
                f"{what}: {_pct(top['val/acc_best'])}% on validation (`{top['cell']}`); its "
                "cells keep no model (run by an older lmft, or with classifier.save_model=false).",
                "",
            ]
    return lines


def _use(what: str, cell: dict, sweep_dir: Path) -> list[str]:
    """`what`: the cell's folder and accuracies, and the lmft-predict command that uses it."""
    path = sweep_dir / cell["cell"]
    return [
        f"{what}: `{path}` ({_pct(cell['val/acc_best'])}% on validation, "
        f"{_pct(cell['test/acc_at_best_val'])}% on test). Use it:",
        "",
        f'    lmft-predict "{path}" "some text to classify"',
        "",
    ]


def n_epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def caption(cells: list[dict]) -> str:
    """One line for the figures: the LM(s) and the recipe settings the cells ran with."""
    lms = {(c["lm"]["epochs"], round(c["lm"]["val/ppl"], 1)) for c in cells if c.get("lm")}
    lm = "; ".join(f"LM {n_epochs(e)}, val ppl {p}" for e, p in sorted(lms)) or "no LM"
    flat = [flatten(c.get("identity") or {}) for c in neural(cells)]
    keys = ("classifier.pooling", "classifier.lr", "classifier.batch_size")
    recipe = ", ".join(
        f"{k.split('.')[1]}={'/'.join(sorted({str(f.get(k)) for f in flat}))}" for k in keys
    )
    ran = sorted({len(c["history"]) for c in neural(cells)})  # early stopping, max_examples
    if not ran:
        return lm
    most = "/".join(sorted({str(f.get("classifier.epochs")) for f in flat}))
    span = f"{ran[0]}" if len(ran) == 1 else f"{ran[0]}-{ran[-1]}"
    return f"{lm} | {recipe}, epochs={span}" + (f" (of {most})" if most != str(ran[-1]) else "")


def _epoch(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _pct(x: float | None) -> str:
    if x is None:
        return "–"
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}".replace("-0.00", "0.00")


def markdown(
    name: str,
    metric: str,
    summary: list[dict],
    gaps: list[dict],
    n_cells: int,
    not_counted: dict[str, str],
    anchors: dict[str, float] | None = None,
    settings: list[str] = (),
    best: list[dict] = (),
    base_gaps: list[dict] = (),
) -> str:
    several = any(r["recipe"] for r in summary)  # a column for the sweep's other axes
    col = lambda r: f" {r['recipe']} |" if several else ""  # noqa: E731
    lms = len({r["lm_epochs"] for r in summary if r["lm_epochs"]}) > 1  # LM snapshots: a column
    lm_col = lambda r: f" {r['lm_epochs'] or '–'} |" if lms else ""  # noqa: E731
    ppl_col = lambda g: f" {g['lm_val_ppl']:.1f} |" if lms else ""  # noqa: E731
    lines = [
        f"# lmft report: {name}",
        "",
        *answer(summary, gaps, base_gaps, best),
        *settings,
        f"{n_cells} finished cells; accuracy = `{metric}` on the test split, in % "
        "(the epoch is chosen on validation accuracy; test never selects anything). "
        '"val best": the mean best validation accuracy, a maximum over epochs (the baseline\'s '
        "over models and C), an optimistic pick: compare it with validation numbers, not with "
        'test. "best epoch": the mean epoch of best validation accuracy, the one tested. '
        '"best = last": cells whose best validation epoch was their last, still improving '
        'when training stopped. "at chance": cells whose best validation accuracy is not '
        "above the most frequent label's share (one-sided binomial test, 5%; counted among "
        "the cells that recorded that share, – where none did): they never learned, and their "
        "test accuracy weighs on the mean and the gaps.",
        "",
        f"|{' recipe |' if several else ''} init |{' LM epochs |' if lms else ''} labeled "
        "examples | seeds | test acc mean | std | 95% CI ± | last-epoch mean | val best "
        "| best epoch | best = last | at chance |",
        f"|{'---|' if several else ''}---|{'---:|' if lms else ''}" + "---:|" * 10,
    ]
    lines += [
        f"|{col(r)} {r['init']} |{lm_col(r)} {r['labels']} | {r['n_seeds']} "
        f"| {_pct(r['test_acc_mean'])} | {_pct(r['test_acc_std'])} | {_pct(r['test_acc_ci95'])} "
        f"| {_pct(r['test_acc_last_epoch_mean'])} | {_pct(r['val_acc_best_mean'])} "
        f"| {_epoch(r['best_epoch_mean'])} "
        f"| {_count(r, 'n_best_last')} "
        f"| {_chance(r)} |"
        for r in summary
    ]
    lines += [
        "",
        "Gap = pretrained − scratch, mean of per-seed paired differences (points), "
        "with a 95% t-interval over seeds" + (", within each recipe:" if several else ":"),
        "",
        f"|{' recipe |' if several else ''}{' LM epochs | LM val ppl |' if lms else ''} labeled "
        "examples | pairs | gap | 95% CI | CI excludes 0 |",
        f"|{'---|' if several else ''}{'---:|---:|' if lms else ''}---:|---:|---:|---|---|",
    ]
    lines += [f"|{col(g)}{lm_col(g)}{ppl_col(g)} {g['labels']} | {_gap_cells(g)}" for g in gaps]
    if base_gaps:
        lines += [
            "",
            "Against the linear baseline: each neural arm − the baseline, mean of per-seed "
            "paired differences (points; the same labeled examples), with a 95% t-interval:",
            "",
            f"|{' recipe |' if several else ''} init |{' LM epochs |' if lms else ''} labeled "
            "examples | pairs | gap | 95% CI | CI excludes 0 |",
            f"|{'---|' if several else ''}---|{'---:|' if lms else ''}---:|---:|---:|---|---|",
        ]
        lines += [
            f"|{col(g)} {g['init']} |{lm_col(g)} {g['labels']} | {_gap_cells(g)}" for g in base_gaps
        ]
    if best:
        lines += [
            "",
            "Best recipe against best recipe: per size, each arm's recipe with the best mean "
            "validation accuracy over the seeds all its recipes have (chosen on validation "
            "only), then the paired test gap "
            "between the two choices. Unlike the per-recipe gaps above, this compares each "
            "arm at its own best settings.",
            "",
            "| labeled examples | pretrained recipe | scratch recipe | pairs | gap | 95% CI "
            "| CI excludes 0 |",
            "|---:|---|---|---:|---:|---|---|",
        ]
        lines += [
            f"| {b['labels']} | {b['pretrained_recipe']} | {b['scratch_recipe']} | {_gap_cells(b)}"
            for b in best
        ]
    if anchors:
        lines += ["", *anchor_table(summary, anchors)]
    if not_counted:
        why = ", ".join(f"`{cell}` ({reason})" for cell, reason in not_counted.items())
        lines += ["", f"Not counted: {why}"]
    lines += ["", "![learning curve](learning_curve.png)", "", "![epochs](epochs.png)", ""]
    if lms:
        lines += ["![LM budget](lm_budget.png)", ""]
    return "\n".join(lines)


def _count(r: dict, key: str) -> str:
    """A count of a row's cells as `n/seeds`; – where it does not apply (the baseline) or is
    unknown."""
    return "–" if r[key] is None else f"{r[key]}/{r['n_seeds']}"


def _unrecorded(r: dict) -> int:
    """How many of a row's cells did not record the validation's label share."""
    return r["n_seeds"] - r["n_chance_known"]


def _chance(r: dict) -> str:
    """The at-chance count: `n/seeds`, `n/known (m not recorded)` where only some cells
    recorded the validation's label share, – where none did (the baseline's never do)."""
    if r["n_at_chance"] is None or not _unrecorded(r):
        return _count(r, "n_at_chance")
    return f"{r['n_at_chance']}/{r['n_chance_known']} ({_unrecorded(r)} not recorded)"


def verdict(g: dict | None, above: str, below: str) -> str:
    """A gap in words: its mean and interval, and whether it is measured."""
    if g is None:
        return "not run"
    if g["n_pairs"] < 2:
        return f"{_signed(g['gap_mean'])} points (one seed: no interval)"
    ci = f"[{_signed(g['ci95_low'])}, {_signed(g['ci95_high'])}]"
    if not g["excludes_0"]:
        return f"{_signed(g['gap_mean'])} points {ci}, no measurable difference"
    return f"{_signed(g['gap_mean'])} points {ci}: {above if g['gap_mean'] > 0 else below}"


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}".replace("-", "−")


def _of(gaps: list[dict], row: dict) -> dict | None:
    """The pretrained arm's gap row for the summary row `row` (its recipe, size, LM budget)."""
    key = ("pretrained", row["recipe"], row["train_size"], row["lm_epochs"])
    return next(
        (g for g in gaps if (g.get("init", "pretrained"), g["recipe"], g["train_size"],
                             g["lm_epochs"]) == key),
        None,
    )  # fmt: skip


def answer(
    summary: list[dict], gaps: list[dict], base_gaps: list[dict], best: list[dict] = ()
) -> list[str]:
    """The report's first lines: where recipes differ, per size, pretrained against scratch
    each at its best recipe on validation (a recipe can widen the gap by handicapping scratch);
    then per size, where the pretrained arm (from its largest LM budget, in each recipe) stands
    against the linear baseline, then against scratch."""
    summary = at_largest_budget(summary)
    top = [r for r in summary if r["init"] == "pretrained"]
    if not top:
        return []
    lines = ["## The answer", ""]
    if best:
        lines += [
            "Each arm at its recipe with the best validation accuracy:",
            "",
            *(
                f"- **{b['labels']} labels**: pretrained ({b['pretrained_recipe']}) − scratch "
                f"({b['scratch_recipe']}) "
                f"{verdict(b, 'pretraining pays', 'pretraining costs')}."
                for b in best
            ),
            "",
            "Within each recipe:",
            "",
        ]
    for r in sorted(top, key=lambda r: (r["train_size"], r["recipe"])):
        # this size's arms in this recipe, and the baseline (no recipe)
        rows = [x for x in summary if x["train_size"] == r["train_size"]
                and x["recipe"] in (r["recipe"], "")]  # fmt: skip
        accs = [f"{x['init']} {_pct(x['test_acc_mean'])}%" for x in rows]
        base = verdict(_of(base_gaps, r), "pretraining beats the baseline", "the baseline wins")
        scratch = verdict(_of(gaps, r), "pretraining pays", "pretraining costs")
        rec = f" ({r['recipe']})" if r["recipe"] else ""
        failed = [
            f"{x['n_at_chance']} {x['init']}"
            + f" (of the {x['n_chance_known']} cells that recorded the label share)"
            * bool(_unrecorded(x))
            for x in rows
            if x["n_at_chance"]
        ]
        never = f" Cells that never beat chance on validation: {', '.join(failed)}." * bool(failed)
        lines.append(
            f"- **{r['labels']} labels**{rec}: pretrained − linear baseline {base}; "
            f"pretrained − scratch {scratch} ({', '.join(accs)}; {r['n_seeds']} seed(s)).{never}"
        )
    return [*lines, ""]


def _gap_cells(g: dict) -> str:
    """`pairs | gap | 95% CI | excludes 0 |` of a gap row."""
    one = g["n_pairs"] < 2
    ci = "n/a (one seed)" if one else f"[{_pct(g['ci95_low'])}, {_pct(g['ci95_high'])}]"
    yes = "n/a" if one else ("yes" if g["excludes_0"] else "**no**")
    return f"{g['n_pairs']} | {_pct(g['gap_mean'])} | {ci} | {yes} |"


def anchor_table(summary: list[dict], anchors: dict[str, float]) -> list[str]:
    """Published results beside this sweep's largest labeled size, per arm (the pretrained arm
    from its largest LM budget)."""
    summary = at_largest_budget(summary)
    size = max(r["train_size"] for r in summary)
    lines = [
        "Published anchors (`data.anchors`) beside this sweep's largest size:",
        "",
        "| system | test acc |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {acc:.1f} |" for name, acc in anchors.items()]
    for r in (r for r in summary if r["train_size"] == size):
        arm = f"{r['init']} ({r['recipe']})" if r["recipe"] else r["init"]
        lines.append(
            f"| **this sweep: {arm}, {r['labels']} labels, {r['n_seeds']} seed(s)** "
            f"| **{_pct(r['test_acc_mean'])}** |"
        )
    return lines
