"""The report's text: what was compared, the summary and gap tables, published anchors."""

from __future__ import annotations

import json

from lmft.comparison import at_largest_budget, flatten, spelt, varying_keys


def settings_lines(cells: list[dict]) -> list[str]:
    """What the sweep compared: the LM(s) the pretrained cells started from, the model and
    classifier settings all cells share, and the settings that differ between cells."""
    lines = ["## What was compared", ""]
    lms = {json.dumps(c["lm"], sort_keys=True) for c in cells if c.get("lm")}
    for lm in sorted(map(json.loads, lms), key=lambda lm: lm["epochs"]):
        ppl = f"validation perplexity {lm['val/ppl']:.1f}"
        lines.append(f"- LM: `{lm['dir']}`, {n_epochs(lm['epochs'])}, {ppl}")
    varying, flat = varying_keys(cells), flatten(cells[0].get("identity") or {})
    for section in ("model", "classifier"):
        shown = ", ".join(
            f"{k.split('.', 1)[1]}={spelt(v)}"
            for k, v in flat.items()
            if k.startswith(f"{section}.") and k not in varying
        )
        lines.append(f"- {section}: {shown}")
    if varying:
        values = {k: sorted({spelt(flatten(c["identity"]).get(k)) for c in cells}) for k in varying}
        shown = "; ".join(f"`{k}` ({', '.join(v)})" for k, v in values.items())
        lines.append(f"- settings that differ between cells: {shown}")
    return [*lines, ""]


def n_epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def caption(cells: list[dict]) -> str:
    """One line for the figures: the LM(s) and the recipe settings the cells ran with."""
    lms = {(c["lm"]["epochs"], round(c["lm"]["val/ppl"], 1)) for c in cells if c.get("lm")}
    lm = "; ".join(f"LM {n_epochs(e)}, val ppl {p}" for e, p in sorted(lms)) or "no LM"
    flat = [flatten(c.get("identity") or {}) for c in cells]
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
    not_counted: dict[str, str],
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
    if not_counted:
        why = ", ".join(f"`{cell}` ({reason})" for cell, reason in not_counted.items())
        lines += ["", f"Not counted: {why}"]
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
