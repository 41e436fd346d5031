"""Turn a sweep into the answer: summary table, paired gaps with 95% CIs, and two figures.

    python -m lmft.report experiment=quick
    python -m lmft.report sweep_dir=outputs/sweeps/quick report_dir=outputs/reports/quick

Reads every finished cell (`<sweep_dir>/*/metrics.json`; unfinished cells are listed, never
counted) and writes summary.csv, gaps.csv, cells.csv, cells.json (each cell's full settings,
versions and git commit), summary.md, learning_curve.png and epochs.png to the report dir, and
prints the tables. Settings that differ between cells besides arm, size and seed (a swept
classifier.pooling, say) make recipes: rows and gaps per recipe, and best_recipes.csv, each
arm's best recipe per size (chosen on validation) against the other's. Pretrained cells that
started from several LM snapshots (init.lm_epoch) give rows and gaps per LM budget, against
the same scratch cells, and lm_budget.png.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from itertools import product
from pathlib import Path

import hydra
import matplotlib
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from lmft.cli import entry
from lmft.errors import LmftError
from lmft.io import atomic_path, write_csv, write_json, write_text
from lmft.resolvers import register

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

ARMS = ("pretrained", "scratch")
COLORS = {"pretrained": "tab:blue", "scratch": "tab:orange"}
LINESTYLES = ("-", "--", ":", "-.") * 4  # one per recipe (the sweep's other axes)
MARKERS = ("o", "s", "^", "D") * 4  # the learning curve's too: a recipe at one size is a point
REQUIRED = ("init", "train_size", "seed", "test/acc", "test/acc_at_best_val", "history")


def load_cells(sweep_dir: Path) -> tuple[list[dict], list[Path]]:
    """Finished cells (complete metrics.json) and the folders of unfinished ones."""
    if not sweep_dir.is_dir():
        raise LmftError(
            f"No sweep at {sweep_dir}. Run `python -m lmft.finetune -m experiment=...` "
            "first (or `make sweep EXP=...`)."
        )
    cells, unfinished = [], []
    # hidden folders are launchers' own (e.g. submitit's .submitit/), never cells
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = json.loads((d / "metrics.json").read_text())
            if all(k in m for k in REQUIRED):
                cells.append({**m, "cell": d.name})
                continue
        except (OSError, ValueError):
            pass
        unfinished.append(d)
    if not cells:
        raise LmftError(f"No finished cells in {sweep_dir}; run or resume the sweep first.")
    return cells, unfinished


def mean_ci(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean, sample std (ddof=1; nan for one value) and the t-interval half-width (nan if n<2)."""
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, math.nan, math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, std, stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)


# a sweep's own axes: arm, LM budget (the pretrained arm's snapshot), seed, size
AXES = ("init.name", "init.lm_epoch", "seed", "data.train_size")


def lm_epochs(cell: dict) -> int | None:
    """The LM epochs a pretrained cell started from (its budget); None for scratch."""
    return cell["lm"]["epochs"] if cell.get("lm") else None


def budgets(cells: list[dict]) -> list[int]:
    """The LM budgets the sweep's pretrained cells started from (several: LM snapshots)."""
    return sorted({lm_epochs(c) for c in cells if c.get("lm")})


def varying_keys(cells: list[dict]) -> list[str]:
    """Settings (dotted keys of the cells' identities) that differ between cells, beyond the
    arm, seed and size: the sweep's other axes (e.g. classifier.pooling)."""
    flat = [_flat(c.get("identity") or {}) for c in cells]
    keys = set().union(*flat) - set(AXES)
    return sorted(k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1)


def spelt(value) -> str:
    """A setting's value as a Hydra override spells it: `null`, not Python's `None` (which
    Hydra would read as a string)."""
    return "null" if value is None else str(value)


def recipe(cell: dict, keys: list[str]) -> str:
    """The cell's values of `keys` ("" when the sweep has no other axis)."""
    flat = _flat(cell.get("identity") or {})
    return ", ".join(f"{k}={spelt(flat.get(k))}" for k in keys)


def _groups(cells: list[dict]) -> dict[tuple, dict[int, dict]]:
    """(recipe, init, train_size, LM epochs or None) -> {seed: cell}."""
    keys, by = varying_keys(cells), defaultdict(dict)
    for c in cells:
        by[(recipe(c, keys), c["init"], c["train_size"], lm_epochs(c))][c["seed"]] = c
    return by


def paired_gap(pre: dict[int, dict], scr: dict[int, dict], metric: str) -> dict | None:
    """pretrained - scratch, paired by seed, with a 95% t-interval; None without a pair."""
    seeds = sorted(set(pre) & set(scr))
    if not seeds:
        return None
    mean, std, ci = mean_ci([pre[s][metric] - scr[s][metric] for s in seeds])
    return {
        "n_pairs": len(seeds),
        "gap_mean": mean,
        "gap_std": std,
        "ci95_low": mean - ci,
        "ci95_high": mean + ci,
        "excludes_0": bool(ci == ci and abs(mean) > ci),
    }


def summarize(cells: list[dict], metric: str) -> tuple[list[dict], list[dict]]:
    """One row per (recipe, init, train_size, LM budget); one gap row per (recipe, size, LM
    budget): each pretrained group against the scratch cells of its recipe and size, paired
    by seed.

    `n_best_last`: cells whose best validation epoch was their last (still improving when
    training stopped: judged before they were done)."""
    by = _groups(cells)
    summary = []
    for (rec, init, size, lm), runs in sorted(by.items(), key=_order):
        vals = [r[metric] for r in runs.values()]
        last = [r["test/acc"] for r in runs.values()]
        mean, std, ci = mean_ci(vals)
        summary.append(
            {
                "recipe": rec,
                "init": init,
                "train_size": size,
                "lm_epochs": lm,
                "lm_val_ppl": next(iter(runs.values()))["lm"]["val/ppl"] if lm else None,
                "n_seeds": len(vals),
                "test_acc_mean": mean,
                "test_acc_std": std,
                "test_acc_ci95": ci,
                "test_acc_last_epoch_mean": sum(last) / len(last),
                "val_acc_best_mean": sum(r["val/acc_best"] for r in runs.values()) / len(vals),
                "n_best_last": sum(r["best_epoch"] == len(r["history"]) for r in runs.values()),
            }
        )
    gaps = []
    for row in summary:
        if row["init"] != "pretrained":
            continue
        key = (row["recipe"], row["train_size"])
        scratch = by.get((*key[:1], "scratch", key[1], None), {})
        gap = paired_gap(by[(*key[:1], "pretrained", key[1], row["lm_epochs"])], scratch, metric)
        if gap:
            lm = {k: row[k] for k in ("lm_epochs", "lm_val_ppl")}
            gaps.append({"recipe": row["recipe"], "train_size": row["train_size"], **lm, **gap})
    return summary, gaps


def _order(item) -> tuple:
    """Summary rows by size, recipe, arm, then LM budget."""
    rec, init, size, lm = item[0]
    return size, rec, init, lm or 0


def best_against_best(cells: list[dict], metric: str) -> list[dict]:
    """Per size: each arm's best recipe (for the pretrained arm, with its LM budget), chosen on
    mean validation accuracy (never on test), then the paired test gap between the two
    choices. Empty when the sweep has one recipe and one LM budget."""
    several = len(budgets(cells)) > 1
    if not varying_keys(cells) and not several:
        return []
    by, out = _groups(cells), []

    def label(option: tuple) -> str:
        rec, lm = option
        return ", ".join(x for x in (rec, f"LM epoch {lm}" if several and lm else "") if x) or "–"

    for size in sorted({s for _, _, s, _ in by}):
        chosen = {}
        for arm in ARMS:
            options = {(r, lm): runs for (r, a, s, lm), runs in by.items() if (a, s) == (arm, size)}
            if options:
                chosen[arm] = max(
                    sorted(options, key=lambda o: (o[0], o[1] or 0)),
                    key=lambda o: (
                        sum(c["val/acc_best"] for c in options[o].values()) / len(options[o])
                    ),
                )
        if len(chosen) < 2:
            continue
        pre, scr = chosen["pretrained"], chosen["scratch"]
        gap = paired_gap(
            by[(pre[0], "pretrained", size, pre[1])], by[(scr[0], "scratch", size, None)], metric
        )
        if gap:
            out.append(
                {
                    "train_size": size,
                    "pretrained_recipe": label(pre),
                    "scratch_recipe": label(scr),
                    **gap,
                }
            )
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def settings_lines(cells: list[dict]) -> list[str]:
    """What the sweep compared: the LM(s) the pretrained cells started from, the model and
    classifier settings all cells share, and the settings that differ between cells."""
    lines = ["## What was compared", ""]
    lms = {json.dumps(c["lm"], sort_keys=True) for c in cells if c.get("lm")}
    for lm in sorted(map(json.loads, lms), key=lambda lm: lm["epochs"]):
        ppl = f"validation perplexity {lm['val/ppl']:.1f}"
        lines.append(f"- LM: `{lm['dir']}`, {n_epochs(lm['epochs'])}, {ppl}")
    varying, flat = varying_keys(cells), _flat(cells[0].get("identity") or {})
    for section in ("model", "classifier"):
        shown = ", ".join(
            f"{k.split('.', 1)[1]}={spelt(v)}"
            for k, v in flat.items()
            if k.startswith(f"{section}.") and k not in varying
        )
        lines.append(f"- {section}: {shown}")
    if varying:
        values = {k: sorted({spelt(_flat(c["identity"]).get(k)) for c in cells}) for k in varying}
        shown = "; ".join(f"`{k}` ({', '.join(v)})" for k, v in values.items())
        lines.append(f"- settings that differ between cells: {shown}")
    return [*lines, ""]


def n_epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def caption(cells: list[dict]) -> str:
    """One line for the figures: the LM(s) and the recipe settings the cells ran with."""
    lms = {(c["lm"]["epochs"], round(c["lm"]["val/ppl"], 1)) for c in cells if c.get("lm")}
    lm = "; ".join(f"LM {n_epochs(e)}, val ppl {p}" for e, p in sorted(lms)) or "no LM"
    flat = [_flat(c.get("identity") or {}) for c in cells]
    keys = ("classifier.pooling", "classifier.lr", "classifier.batch_size", "classifier.epochs")
    recipe = ", ".join(
        f"{k.split('.')[1]}={'/'.join(sorted({str(f.get(k)) for f in flat}))}" for k in keys
    )
    return f"{lm} | {recipe}"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f}".replace("-0.00", "0.00")


def markdown(
    name: str,
    metric: str,
    summary: list[dict],
    gaps: list[dict],
    n_cells: int,
    unfinished: list[Path],
    anchors: dict[str, float] | None = None,
    settings: list[str] = (),
    best: list[dict] = (),
) -> str:
    several = any(r["recipe"] for r in summary)  # a column for the sweep's other axes
    col = lambda r: f" {r['recipe']} |" if several else ""  # noqa: E731
    lms = len({r["lm_epochs"] for r in summary if r["lm_epochs"]}) > 1  # LM snapshots: a column
    lm_col = lambda r: f" {r['lm_epochs'] or '–'} |" if lms else ""  # noqa: E731
    ppl_col = lambda g: f" {g['lm_val_ppl']:.1f} |" if lms else ""  # noqa: E731
    lines = [
        f"# lmft report: {name}",
        "",
        *settings,
        f"{n_cells} finished cells; accuracy = `{metric}` on the test split, in % "
        "(the epoch is chosen on validation accuracy; test never selects anything). "
        '"best = last": cells whose best validation epoch was their last, still improving '
        "when training stopped.",
        "",
        f"|{' recipe |' if several else ''} init |{' LM epochs |' if lms else ''} labeled "
        "examples | seeds | test acc mean | std | 95% CI ± | last-epoch mean | best = last |",
        f"|{'---|' if several else ''}---|{'---:|' if lms else ''}" + "---:|" * 7,
    ]
    lines += [
        f"|{col(r)} {r['init']} |{lm_col(r)} {r['train_size']:,} | {r['n_seeds']} "
        f"| {_pct(r['test_acc_mean'])} | {_pct(r['test_acc_std'])} | {_pct(r['test_acc_ci95'])} "
        f"| {_pct(r['test_acc_last_epoch_mean'])} | {r['n_best_last']}/{r['n_seeds']} |"
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
    lines += [
        f"|{col(g)}{lm_col(g)}{ppl_col(g)} {g['train_size']:,} | {_gap_cells(g)}" for g in gaps
    ]
    if best:
        lines += [
            "",
            "Best recipe against best recipe: per size, each arm's recipe with the best mean "
            "validation accuracy (chosen on validation only), then the paired test gap "
            "between the two choices. Unlike the per-recipe gaps above, this compares each "
            "arm at its own best settings.",
            "",
            "| labeled examples | pretrained recipe | scratch recipe | pairs | gap | 95% CI "
            "| CI excludes 0 |",
            "|---:|---|---|---:|---:|---|---|",
        ]
        lines += [
            f"| {b['train_size']:,} | {b['pretrained_recipe']} | {b['scratch_recipe']} "
            f"| {_gap_cells(b)}"
            for b in best
        ]
    if anchors:
        lines += ["", *anchor_table(summary, anchors)]
    if unfinished:
        lines += ["", f"Not counted (unfinished): {', '.join(p.name for p in unfinished)}"]
    lines += ["", "![learning curve](learning_curve.png)", "", "![epochs](epochs.png)", ""]
    if lms:
        lines += ["![LM budget](lm_budget.png)", ""]
    return "\n".join(lines)


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
        "Published anchors (full 25k labels, full test set) beside this sweep's largest size:",
        "",
        "| system | test acc |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {acc:.1f} |" for name, acc in anchors.items()]
    for r in (r for r in summary if r["train_size"] == size):
        arm = f"{r['init']} ({r['recipe']})" if r["recipe"] else r["init"]
        lines.append(
            f"| **this sweep: {arm}, {size:,} labels, {r['n_seeds']} seed(s)** "
            f"| **{_pct(r['test_acc_mean'])}** |"
        )
    return lines


def save_fig(fig, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def learning_curve(name: str, metric: str, summary: list[dict], dest: Path, note: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    recipes = sorted({r["recipe"] for r in summary})
    styles = zip(recipes, LINESTYLES, MARKERS, strict=False)
    for (rec, style, marker), arm in product(styles, ARMS):
        rows = [r for r in summary if r["init"] == arm and r["recipe"] == rec]
        if not rows:
            continue
        err = [
            0 if r["test_acc_ci95"] != r["test_acc_ci95"] else 100 * r["test_acc_ci95"]
            for r in rows
        ]
        ax.errorbar(
            [r["train_size"] for r in rows],
            [100 * r["test_acc_mean"] for r in rows],
            yerr=err,
            marker=marker,
            capsize=4,
            color=COLORS[arm],
            linestyle=style,
            label=f"{arm}{f' {rec}' if rec else ''} "
            f"(seeds per size: {', '.join(str(r['n_seeds']) for r in rows)})",
        )
    ax.set_xscale("log")
    sizes = sorted({r["train_size"] for r in summary})
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{n:,}" for n in sizes])
    ax.set_xlabel("labeled training examples (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"{name}: pretrained vs scratch\n(mean over seeds ± 95% CI; epoch chosen on validation)"
        f"\n{note}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    # below the axes, so a long legend (one entry per recipe and arm) never hides a point
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8 if len(recipes) > 1 else 10
    )
    save_fig(fig, dest)


def epochs_figure(name: str, cells: list[dict], dest: Path, note: str) -> None:
    sizes = sorted({c["train_size"] for c in cells})
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4.2 * len(sizes), 4.0), squeeze=False, sharey=True
    )
    keys = varying_keys(cells)
    recipes = sorted({recipe(c, keys) for c in cells})
    one = len(recipes) == 1  # then validation and test; else validation, a style per recipe
    for ax, size in zip(axes[0], sizes, strict=True):
        for (rec, rec_style), arm in product(zip(recipes, LINESTYLES, strict=False), ARMS):
            runs = [
                c["history"]
                for c in cells
                if c["train_size"] == size and c["init"] == arm and recipe(c, keys) == rec
            ]
            if not runs:
                continue
            n_ep = min(len(h) for h in runs)
            x = list(range(1, n_ep + 1))
            for split, style in (("val", "-"), ("test", "--")) if one else (("val", rec_style),):
                y = [100 * sum(h[e][f"{split}/acc"] for h in runs) / len(runs) for e in range(n_ep)]
                label = f"{arm} {split}" if one else f"{arm} {rec}"
                ax.plot(x, y, style, marker=".", color=COLORS[arm], label=label)
        ax.set_title(f"{size:,} labeled examples")
        ax.set_xlabel("epoch")
        n_max = max(len(c["history"]) for c in cells if c["train_size"] == size)
        ax.set_xlim(0.5, n_max + 0.5)
        ax.set_xticks(range(1, n_max + 1, max(1, n_max // 10)))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%), mean over seeds")
    # one legend for all panels, below them: a panel may hold recipes the others lack
    labelled = {
        lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    fig.legend(
        labelled.values(),
        labelled.keys(),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(2, len(labelled)),
        fontsize=8,
    )
    what = "validation (solid) and test (dashed)" if one else "validation (a style per recipe)"
    fig.suptitle(f"{name}: {what} accuracy per epoch\n{note}")
    fig.tight_layout()
    save_fig(fig, dest)


def at_largest_budget(items: list[dict], epochs_of=lambda row: row["lm_epochs"]) -> list[dict]:
    """Scratch and the pretrained arm from its largest LM budget: summary rows, or cells
    (`epochs_of=lm_epochs`)."""
    top = max((epochs_of(x) or 0 for x in items), default=0)
    return [x for x in items if epochs_of(x) in (None, top or None)]


def lm_budget_figure(
    name: str, summary: list[dict], gaps: list[dict], dest: Path, note: str
) -> None:
    """What pretraining compute buys: the pretrained arm per LM snapshot against scratch
    (dashed), and the gap against the LM's epochs and its validation perplexity then; one
    colour per labeled size."""
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 4.4))
    lines = sorted({(g["train_size"], g["recipe"]) for g in gaps})
    cmap = plt.get_cmap("viridis")
    for i, (size, rec) in enumerate(lines):
        color = cmap(0.85 * i / max(1, len(lines) - 1))
        label = f"{size:,}{f' {rec}' if rec else ''}"
        rows = sorted(
            (g for g in gaps if (g["train_size"], g["recipe"]) == (size, rec)),
            key=lambda g: g["lm_epochs"],
        )
        arm = {
            (r["init"], r["lm_epochs"]): r
            for r in summary
            if (r["train_size"], r["recipe"]) == (size, rec)
        }
        x = [g["lm_epochs"] for g in rows]
        pre = [arm[("pretrained", e)] for e in x]
        kw = dict(marker="o", capsize=3, color=color)
        axes[0].errorbar(
            x,
            [100 * r["test_acc_mean"] for r in pre],
            yerr=[_half(r["test_acc_ci95"]) for r in pre],
            label=f"pretrained, {label}",
            **kw,
        )
        axes[0].axhline(100 * arm[("scratch", None)]["test_acc_mean"], color=color, ls="--")
        gap, err = (
            [100 * g["gap_mean"] for g in rows],
            [_half(g["gap_mean"] - g["ci95_low"]) for g in rows],
        )
        axes[1].errorbar(x, gap, yerr=err, label=label, **kw)
        axes[2].errorbar([g["lm_val_ppl"] for g in rows], gap, yerr=err, label=label, **kw)
    epochs, ppls = sorted({g["lm_epochs"] for g in gaps}), sorted({g["lm_val_ppl"] for g in gaps})
    for ax, xlabel, ticks in zip(
        axes,
        ("LM epochs (log scale)", "LM epochs (log scale)", "LM validation perplexity (log scale)"),
        (epochs, epochs, ppls),
        strict=True,
    ):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:,.0f}" for t in ticks])
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[1:]:
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylabel("gap, pretrained − scratch (points)")
    axes[0].set_ylabel("test accuracy (%); scratch dashed")
    axes[0].legend(fontsize=8)
    axes[1].legend(title="labeled examples", fontsize=8)
    fig.suptitle(
        f"{name}: what the LM budget buys (mean over seeds ± 95% CI; epoch chosen on "
        f"validation)\n{note}"
    )
    fig.tight_layout()
    save_fig(fig, dest)


def _half(ci: float) -> float:
    """An error bar's half-width in points (0 where one seed gives no interval)."""
    return 0.0 if ci != ci else 100 * ci


# What a report writes only for some sweeps: a rerun removes those it no longer writes.
OPTIONAL_FILES = frozenset({"gaps.csv", "best_recipes.csv", "lm_budget.png"})


def run(cfg: DictConfig, out_dir: Path) -> dict:
    sweep_dir, out_dir = Path(cfg.sweep_dir), Path(out_dir)
    cells, unfinished = load_cells(sweep_dir)
    name = sweep_dir.name  # the folder read (= the preset's name unless another was given)
    summary, gaps = summarize(cells, cfg.metric)
    best = best_against_best(cells, cfg.metric)
    cell_rows = [
        {
            "cell": c["cell"],
            "init": c["init"],
            "train_size": c["train_size"],
            "seed": c["seed"],
            "test_acc_at_best_val": c["test/acc_at_best_val"],
            "test_acc_last": c["test/acc"],
            "val_acc_best": c["val/acc_best"],
            "best_epoch": c["best_epoch"],
            "epochs": len(c["history"]),
            "test_acc_curve_max": c.get("test/acc_curve_max"),
            **c.get("provenance", {}),
        }
        for c in cells
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def out(file: str) -> Path:
        written.append(file)
        return out_dir / file

    write_csv(out("summary.csv"), summary)
    write_csv(out("cells.csv"), cell_rows)
    # every cell's full settings and the code that made it (versions, git commit)
    write_json(
        out("cells.json"),
        [{k: c.get(k) for k in ("cell", "identity", "provenance")} for c in cells],
    )
    if gaps:
        write_csv(out("gaps.csv"), gaps)
    if best:
        write_csv(out("best_recipes.csv"), best)
    # the curves per size and per epoch show the pretrained arm from its largest LM budget;
    # lm_budget.png shows every budget (LM snapshots)
    final = at_largest_budget(cells, lm_epochs)
    note = caption(final)
    learning_curve(name, cfg.metric, at_largest_budget(summary), out("learning_curve.png"), note)
    epochs_figure(name, final, out("epochs.png"), note)
    if len(budgets(cells)) > 1:
        lm_budget_figure(name, summary, gaps, out("lm_budget.png"), caption(cells))
    anchors = cfg.data.get("anchors")
    imdb = all((c.get("identity") or {}).get("data", {}).get("kind") == "imdb" for c in cells)
    anchors = OmegaConf.to_container(anchors) if anchors and imdb else {}  # IMDB's, for IMDB
    md = markdown(
        name,
        cfg.metric,
        summary,
        gaps,
        len(cells),
        unfinished,
        anchors,
        settings_lines(cells),
        best,
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
    main()
