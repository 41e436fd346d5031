"""The report's figures: the learning curve, accuracy per epoch, and what the LM budget buys."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import matplotlib

from lmft.comparison import ARMS, BASELINE, recipe, size_labels, varying_keys
from lmft.io import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

COLORS = {"pretrained": "tab:blue", "scratch": "tab:orange", BASELINE: "tab:green"}
# each arm's points a little apart on the log axis, so that error bars never hide each other
NUDGE = {"pretrained": 0.96, "scratch": 1.0, BASELINE: 1.04}
LINESTYLES = ("-", "--", ":", "-.") * 4  # one per recipe (the sweep's other axes)
MARKERS = ("o", "s", "^", "D") * 4  # the learning curve's too: a recipe at one size is a point


def save_fig(fig, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def learning_curve(
    name: str,
    metric: str,
    summary: list[dict],
    dest: Path,
    note: str,
    gaps: Sequence[dict] = (),
    base_gaps: Sequence[dict] = (),
) -> None:
    """Each arm's test accuracy by labeled size; beside it, where there are pairs, the paired
    gaps: pretrained − scratch (`gaps`) and pretrained − the baseline (from `base_gaps`)."""
    pairs = [("scratch", g) for g in gaps]  # (what pretrained is set against, a gap row)
    pairs += [(BASELINE, g) for g in base_gaps if g["init"] == "pretrained"]
    fig, axes = plt.subplots(1, 1 + bool(pairs), figsize=(6.4 * (1 + bool(pairs)), 4.4))
    ax = axes[0] if pairs else axes
    recipes = sorted({r["recipe"] for r in summary if r["init"] != BASELINE})
    styles = zip(recipes, LINESTYLES, MARKERS, strict=False)
    lines = [(rec, arm, style, marker) for (rec, style, marker), arm in product(styles, ARMS)]
    lines.append(("", BASELINE, ":", "x"))  # the yardstick: one line, every recipe's
    for rec, arm, style, marker in lines:
        rows = [r for r in summary if r["init"] == arm and r["recipe"] == rec]
        if not rows:
            continue
        ax.errorbar(
            [NUDGE[arm] * r["train_size"] for r in rows],
            [100 * r["test_acc_mean"] for r in rows],
            yerr=[_half(r["test_acc_ci95"]) for r in rows],
            marker=marker,
            capsize=4,
            color=COLORS[arm],
            linestyle=style,
            label=f"{'linear baseline' if arm == BASELINE else arm}{f' {rec}' if rec else ''} "
            f"(seeds per size: {', '.join(str(r['n_seeds']) for r in rows)})",
        )
    labels = {r["train_size"]: r["labels"] for r in summary}
    _size_axis(ax, labels)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"{name}: pretrained vs scratch vs a linear baseline\n(mean over seeds ± 95% CI; "
        "epoch, model and C chosen on validation)"
        f"\n{note}",
        fontsize=9,
    )
    if pairs:
        _gaps_panel(axes[1], pairs, recipes, labels)
    # below the axes, so a long legend (one entry per recipe and arm) never hides a point
    size = 8 if len(recipes) > 1 else 10
    for a in fig.axes:
        a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=size)
    save_fig(fig, dest)


def _size_axis(ax, labels: dict[int, str]) -> None:
    """The labeled sizes on a log axis, each tick named as the report names it."""
    ax.set_xscale("log")
    sizes = sorted(labels)
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([labels[n] for n in sizes])
    if len(sizes) == 1:  # else the limits hug the arms' nudged points, far apart
        ax.set_xlim(sizes[0] / 1.5, sizes[0] * 1.5)
    ax.set_xlabel("labeled training examples (log scale)")
    ax.grid(True, which="both", alpha=0.3)


def _gaps_panel(ax, pairs: list[tuple], recipes: list[str], labels: dict[int, str]) -> None:
    """The paired gaps by labeled size, a line per comparison and recipe, ± their 95% CI."""
    styles = dict(zip(recipes, zip(LINESTYLES, MARKERS, strict=False), strict=False))
    for other, rec in product(dict.fromkeys(o for o, _ in pairs), recipes):
        rows = sorted(
            (g for o, g in pairs if o == other and g["recipe"] == rec),
            key=lambda g: g["train_size"],
        )
        if not rows:
            continue
        ax.errorbar(
            [NUDGE[other] * g["train_size"] for g in rows],
            [100 * g["gap_mean"] for g in rows],
            yerr=[_half(g["gap_mean"] - g["ci95_low"]) for g in rows],
            marker=styles[rec][1],
            capsize=4,
            color="black" if other == "scratch" else COLORS[BASELINE],
            linestyle=styles[rec][0],
            label=f"pretrained − {other}{f' {rec}' if rec else ''} (pairs per size: "
            f"{', '.join(str(g['n_pairs']) for g in rows)})",
        )
    ax.axhline(0, color="black", lw=0.8)
    _size_axis(ax, labels)
    ax.set_ylabel("gap (points)")
    ax.set_title(
        "paired gaps: mean of per-seed differences ± 95% CI\n(above 0: pretraining is ahead)",
        fontsize=9,
    )


def epochs_figure(name: str, cells: list[dict], dest: Path, note: str) -> None:
    sizes, labels = sorted({c["train_size"] for c in cells}), size_labels(cells)
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4.2 * len(sizes), 4.0), squeeze=False, sharey=True
    )
    keys = varying_keys(cells)
    recipes = sorted({recipe(c, keys) for c in cells if c["init"] != BASELINE})
    one = len(recipes) == 1  # then validation and test; else validation, a style per recipe
    curve = all("test/acc" in r for c in cells for r in c["history"])  # curve_test_size=0: none
    for ax, size in zip(axes[0], sizes, strict=True):
        for (rec, rec_style), arm in product(zip(recipes, LINESTYLES, strict=False), ARMS):
            runs = [
                c["history"]
                for c in cells
                if c["train_size"] == size and c["init"] == arm and recipe(c, keys) == rec
            ]
            if not runs:
                continue
            if one:  # each cell's validation curve, to its last epoch: early stopping varies it
                for h in runs:
                    y = [100 * r["val/acc"] for r in h]
                    ax.plot(range(1, len(h) + 1), y, "-", lw=0.6, alpha=0.25, color=COLORS[arm])
            # the mean only while every cell runs: past that it would average the cells that
            # happened to train longer
            n_ep = min(len(h) for h in runs)
            x = list(range(1, n_ep + 1))
            splits = (("val", "-"), ("test", "--")) if one and curve else (("val", rec_style),)
            for split, style in splits:
                y = [100 * sum(h[e][f"{split}/acc"] for h in runs) / len(runs) for e in range(n_ep)]
                label = f"{arm} {split}" if one else f"{arm} {rec}"
                ax.plot(x, y, style, lw=2, marker=".", color=COLORS[arm], label=label)
        base = [
            c["test/acc_at_best_val"]
            for c in cells
            if (c["init"], c["train_size"]) == (BASELINE, size)
        ]
        if base:
            ax.axhline(
                100 * sum(base) / len(base),
                color=COLORS[BASELINE],
                ls=":",
                label="linear baseline test",
            )
        ax.set_title(f"{labels[size]} labeled examples")
        ax.set_xlabel("epoch")
        n_max = max(len(c["history"]) for c in cells if c["train_size"] == size) or 1
        ax.set_xlim(0.5, n_max + 0.5)
        ax.set_xticks(range(1, n_max + 1, max(1, n_max // 10)))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
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
    what = "validation (a style per recipe)" if not one else "validation"
    if one and curve:
        what = "validation (solid) and test (dashed)"
    each = "; thin: each cell's validation" if one else ""
    fig.suptitle(
        f"{name}: {what} accuracy per epoch\n(bold: the mean over seeds while every cell "
        f"trains{each})\n{note}"
    )
    fig.tight_layout()
    save_fig(fig, dest)


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
        rows = sorted(
            (g for g in gaps if (g["train_size"], g["recipe"]) == (size, rec)),
            key=lambda g: g["lm_epochs"],
        )
        label = f"{rows[0]['labels']}{f' {rec}' if rec else ''}"
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
    return 0.0 if math.isnan(ci) else 100 * ci
