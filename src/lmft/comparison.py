"""A sweep's cells, compared: loading, grouping by recipe, arm, size and LM budget, paired
pretrained − scratch gaps with t-intervals, each neural arm against the linear baseline, and
best recipe against best recipe."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from scipy import stats

from lmft.errors import LmftError
from lmft.identity import STAGE_SECTIONS, cell_stage, flatten, reads, stored_identity

ARMS = ("pretrained", "scratch")  # the neural arms
BASELINE = "baseline"  # the linear yardstick (lmft.baseline): no recipe, no LM
ORDER = {"pretrained": 0, "scratch": 1, BASELINE: 2}  # rows of a size, in this order
REQUIRED = ("init", "train_size", "seed", "test/acc", "test/acc_at_best_val", "history")


def load_cells(sweep_dir: Path) -> tuple[list[dict], dict[str, str]]:
    """Finished cells (complete metrics.json), and the folders not counted, each with why:
    unfinished, or the same settings and seed as a cell already counted (a default spelt on
    the command line, `classifier.pooling=mean`, names a folder of its own)."""
    if not sweep_dir.is_dir():
        raise LmftError(
            f"No sweep at {sweep_dir}. Run `python -m lmft.finetune -m experiment=...` "
            "first (or `make sweep EXP=...`)."
        )
    cells, not_counted, seen = [], {}, {}
    # hidden folders are launchers' own (e.g. submitit's .submitit/), never cells
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError):
            m = {}
        if not all(k in m for k in REQUIRED):
            not_counted[d.name] = "unfinished"
            continue
        if "identity" in m:
            m["identity"] = stored_identity(m, STAGE_SECTIONS[cell_stage(m["init"])])
        same = json.dumps(m.get("identity"), sort_keys=True)
        if m.get("identity") and same in seen:
            not_counted[d.name] = f"the settings and seed of {seen[same]}"
            continue
        seen[same] = d.name
        cells.append({**m, "cell": d.name, "at_chance": at_chance(m)})
    if not cells:
        raise LmftError(f"No finished cells in {sweep_dir}; run or resume the sweep first.")
    return cells, not_counted


def beside_each_lm(cells: list[dict]) -> list[dict]:
    """The cells as the tables and figures compare them: a scratch cell, which never reads the
    LM (its identity has no `lm` section), stands beside the pretrained cells of every LM
    setting the sweep holds, once per setting (a copy with that setting's `lm` section). So a
    sweep over LM settings trains its scratch cells once, and each LM's recipe pairs with them."""
    lms = {}
    for c in cells:
        lm = (c.get("identity") or {}).get("lm")
        if c["init"] == "pretrained" and lm is not None:
            lms.setdefault(json.dumps(lm, sort_keys=True), lm)
    out = []
    for c in cells:
        identity = c.get("identity")
        if c["init"] == "scratch" and identity and "lm" not in identity and lms:
            out += [{**c, "identity": {**identity, "lm": lm}} for lm in lms.values()]
        else:
            out.append(c)
    return out


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
    """Settings (dotted keys of the neural cells' identities) that differ between them, beyond
    the arm, seed and size: the sweep's other axes (e.g. classifier.pooling)."""
    flat = [flatten(c.get("identity") or {}) for c in cells if c["init"] != BASELINE]
    if not flat:
        return []
    keys = set().union(*flat) - set(AXES)
    return sorted(k for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1)


def size_labels(cells: list[dict]) -> dict[int, str]:
    """Each labeled size as the report writes it: its count, and "(all)" where the cells took
    every labeled example (`data.train_size=all`)."""
    every = {
        c["train_size"]
        for c in cells
        if (c.get("identity") or {}).get("data", {}).get("train_size") == "all"
    }
    return {
        n: f"{n:,}" + (" (all)" if n in every else "") for n in {c["train_size"] for c in cells}
    }


def spelt(value) -> str:
    """A setting's value as a Hydra override spells it: `null`, not Python's `None` (which
    Hydra would read as a string)."""
    return "null" if value is None else str(value)


def recipe(cell: dict, keys: list[str]) -> str:
    """The cell's values of `keys` ("" when the sweep has no other axis, and for the baseline,
    which every recipe is compared with)."""
    if cell["init"] == BASELINE:
        return ""
    flat = flatten(cell.get("identity") or {})
    return ", ".join(f"{k}={spelt(flat.get(k))}" for k in keys)


def _groups(cells: list[dict]) -> dict[tuple, dict[int, dict]]:
    """(recipe, init, train_size, LM epochs or None) -> {seed: cell}."""
    keys, by = varying_keys(cells), defaultdict(dict)
    for c in cells:
        by[(recipe(c, keys), c["init"], c["train_size"], lm_epochs(c))][c["seed"]] = c
    return by


def paired_gap(pre: dict[int, dict], scr: dict[int, dict], metric: str) -> dict | None:
    """`pre` - `scr` (pretrained - scratch, or an arm - the baseline), paired by seed, with a
    95% t-interval; None without a pair."""
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
        "excludes_0": bool(not math.isnan(ci) and abs(mean) > ci),
    }


def at_chance(cell: dict) -> bool | None:
    """Whether a neural cell never beat chance on validation: its best validation accuracy is
    not above the share of the validation's most frequent label by a one-sided binomial test
    at the 5% level (1,000 balanced texts: 52.6% or less). Such a cell never learned; its test
    accuracy is a failed run's, not the arm's. None for a cell that recorded no share (the
    baseline's, and neural cells written before the share was recorded). Given once, when a
    cell is loaded (`load_cells`; lmft.cells_csv reads back the verdict a report wrote)."""
    share, n = cell.get("val_majority"), cell.get("n_val")
    if share is None or not n:
        return None
    hits = round(cell["val/acc_best"] * n)
    return stats.binomtest(hits, n, share, alternative="greater").pvalue >= 0.05


def _count_known(flags) -> tuple[int | None, int]:
    """How many of the known flags (not None) are true, None if none is known; and how many
    are known."""
    known = [f for f in flags if f is not None]
    return (sum(known) if known else None), len(known)


def summarize(cells: list[dict], metric: str) -> tuple[list[dict], list[dict]]:
    """One row per (recipe, init, train_size, LM budget); one gap row per (recipe, size, LM
    budget): each pretrained group against the scratch cells of its recipe and size, paired
    by seed.

    `best_epoch_mean`: the mean epoch of best validation accuracy (how fast an arm learns
    what it learns). `n_best_last`: cells whose best validation epoch was their last (still
    improving when training stopped: judged before they were done). `n_at_chance`: cells
    that never beat chance on validation (their `at_chance` verdict), among the
    `n_chance_known` cells with one (cells written before lmft recorded the validation's label
    share have none, and are not counted)."""
    by, labels = _groups(cells), size_labels(cells)
    summary = []
    for (rec, init, size, lm), runs in sorted(by.items(), key=_order):
        vals = [r[metric] for r in runs.values()]
        last = [r["test/acc"] for r in runs.values()]
        mean, std, ci = mean_ci(vals)
        neural = init != BASELINE
        chance, known = _count_known(r.get("at_chance") for r in runs.values())
        summary.append(
            {
                "recipe": rec,
                "init": init,
                "train_size": size,
                "labels": labels[size],
                "lm_epochs": lm,
                "lm_val_ppl": next(iter(runs.values()))["lm"]["val/ppl"] if lm else None,
                "n_seeds": len(vals),
                "test_acc_mean": mean,
                "test_acc_std": std,
                "test_acc_ci95": ci,
                "test_acc_last_epoch_mean": sum(last) / len(last) if neural else None,
                "val_acc_best_mean": sum(r["val/acc_best"] for r in runs.values()) / len(vals),
                "best_epoch_mean": sum(r["best_epoch"] for r in runs.values()) / len(vals)
                if neural
                else None,
                "n_best_last": sum(r["best_epoch"] == len(r["history"]) for r in runs.values())
                if neural
                else None,
                "n_at_chance": chance,
                "n_chance_known": known,
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
            size = {k: row[k] for k in ("train_size", "labels")}
            gaps.append({"recipe": row["recipe"], **size, **lm, **gap})
    return summary, gaps


def _order(item) -> tuple:
    """Summary rows by size, recipe (the baseline after them), arm, then LM budget."""
    rec, init, size, lm = item[0]
    return size, init == BASELINE, rec, ORDER.get(init, len(ORDER)), init, lm or 0


def against_baseline(cells: list[dict], metric: str) -> list[dict]:
    """Each neural group (recipe, arm, size, LM budget) minus the baseline cells of its size,
    paired by seed (the same labeled examples), with a 95% t-interval."""
    by, out, labels = _groups(cells), [], size_labels(cells)
    for (rec, init, size, lm), runs in sorted(by.items(), key=_order):
        base = by.get(("", BASELINE, size, None))
        gap = base and init != BASELINE and paired_gap(runs, base, metric)
        if gap:
            row = {"recipe": rec, "init": init, "train_size": size, "labels": labels[size]}
            out.append({**row, "lm_epochs": lm, **gap})
    return out


def best_on_validation(options: dict[tuple, dict]) -> tuple:
    """Of one arm's options at one size ((recipe, LM budget) -> {seed: cell}), the one with the
    best mean validation accuracy over the seeds all options have (each option's own seeds where
    they share none), so that seeds added to one recipe do not change the choice."""
    shared = set.intersection(*(set(runs) for runs in options.values()))

    def validation(option: tuple) -> float:
        seeds = shared or options[option]
        return sum(options[option][s]["val/acc_best"] for s in seeds) / len(seeds)

    return max(sorted(options, key=lambda o: (o[0], o[1] or 0)), key=validation)


def best_against_best(cells: list[dict], metric: str) -> list[dict]:
    """Per size: each arm's best recipe (for the pretrained arm, with its LM budget), chosen on
    validation (`best_on_validation`, never on test), then the paired test gap between the two
    choices. Empty when the sweep has one recipe and one LM budget."""
    several, keys = len(budgets(cells)) > 1, varying_keys(cells)
    if not keys and not several:
        return []
    by, out, labels = _groups(cells), [], size_labels(cells)

    def label(option: tuple, arm: str, size: int) -> str:
        rec, lm = option
        if arm == "scratch":  # the settings a scratch cell reads: not the LM's (beside_each_lm)
            one = next(iter(by[(rec, arm, size, lm)].values()))
            rec = recipe(one, [k for k in keys if reads(k, "scratch")])
        return ", ".join(x for x in (rec, f"LM epoch {lm}" if several and lm else "") if x) or "–"

    for size in sorted({s for _, _, s, _ in by}):
        chosen = {}
        for arm in ARMS:
            options = {(r, lm): runs for (r, a, s, lm), runs in by.items() if (a, s) == (arm, size)}
            if options:
                chosen[arm] = best_on_validation(options)
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
                    "labels": labels[size],
                    "pretrained_recipe": label(pre, "pretrained", size),
                    "scratch_recipe": label(scr, "scratch", size),
                    **gap,
                }
            )
    return out


def at_largest_budget(items: list[dict], epochs_of=lambda row: row["lm_epochs"]) -> list[dict]:
    """Scratch and the pretrained arm from its largest LM budget: summary rows, or cells
    (`epochs_of=lm_epochs`)."""
    top = max((epochs_of(x) or 0 for x in items), default=0)
    return [x for x in items if epochs_of(x) in (None, top or None)]
