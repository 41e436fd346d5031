"""Report statistics on hand-made cells, where the right answer is known."""

import json
import math

import pytest

from lmft.comparison import (
    ARMS,
    beside_each_lm,
    best_against_best,
    load_cells,
    mean_ci,
    summarize,
)
from lmft.tables import caption, markdown, settings_lines

METRIC = "test/acc_at_best_val"


@pytest.fixture
def saved(monkeypatch) -> list:
    """The figures lmft.figures would write, kept (closed) instead of saved as PNG."""
    import matplotlib.pyplot as plt

    from lmft import figures

    kept = []
    monkeypatch.setattr(figures, "save_fig", lambda fig, _: (kept.append(fig), plt.close(fig)))
    return kept


def cell(init, size, seed, acc):
    hist = [
        {"epoch": 1, "val/acc": 0.5, "test/acc": 0.5},
        {"epoch": 2, "val/acc": 0.6, "test/acc": acc},
    ]
    return {
        "cell": f"init={init},n={size},seed={seed}",  # its folder's name
        "init": init,
        "train_size": size,
        "seed": seed,
        "test/acc": acc,
        "val/acc_best": 0.6,
        "test/acc_at_best_val": acc,
        "best_epoch": 2,
        "history": hist,
    }


def snapshot_cells() -> list[dict]:
    """Pretrained cells from LM epochs 1 and 3 (2 seeds each), then 2 scratch cells."""

    def pre(seed, epochs, ppl, acc, val):
        c = cell("pretrained", 100, seed, acc)
        c["val/acc_best"] = val
        c["lm"] = {"dir": "lm", "epochs": epochs, "val/ppl": ppl}
        c["identity"] = {"init": {"name": "pretrained", "lm_epoch": epochs}}
        return c

    cells = [pre(s, 1, 400.0, 0.6 + s / 100, 0.6) for s in range(2)]
    cells += [pre(s, 3, 200.0, 0.8 + s / 100, 0.7) for s in range(2)]
    cells += [cell("scratch", 100, s, 0.7) for s in range(2)]
    for c in cells[-2:]:
        c["identity"] = {"init": {"name": "scratch"}}
    return cells


def test_mean_std_and_paired_ci():
    pre = [0.80, 0.82, 0.84]
    scr = [0.70, 0.75, 0.71]
    cells = [cell("pretrained", 1000, s, a) for s, a in enumerate(pre)]
    cells += [cell("scratch", 1000, s, a) for s, a in enumerate(scr)]
    cells += [cell("pretrained", 22500, 0, 0.9), cell("scratch", 22500, 0, 0.88)]
    summary, gaps = summarize(cells, "test/acc_at_best_val")
    row = next(r for r in summary if r["init"] == "pretrained" and r["train_size"] == 1000)
    assert row["n_seeds"] == 3 and row["test_acc_mean"] == pytest.approx(0.82)
    assert row["test_acc_std"] == pytest.approx(0.02)
    g = next(g for g in gaps if g["train_size"] == 1000)
    d = [0.10, 0.07, 0.13]  # per-seed paired differences
    sd = math.sqrt(sum((x - 0.10) ** 2 for x in d) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df=2)
    assert g["gap_mean"] == pytest.approx(0.10)
    assert (g["ci95_low"], g["ci95_high"]) == (
        pytest.approx(0.10 - half),
        pytest.approx(0.10 + half),
    )
    assert g["excludes_0"]
    one = next(g for g in gaps if g["train_size"] == 22500)
    assert one["n_pairs"] == 1 and math.isnan(one["ci95_low"]) and not one["excludes_0"]


def test_pairs_only_by_matching_seed():
    cells = [
        cell("pretrained", 100, 0, 0.8),
        cell("pretrained", 100, 1, 0.9),
        cell("scratch", 100, 1, 0.6),
    ]
    _, gaps = summarize(cells, "test/acc")
    assert gaps[0]["n_pairs"] == 1 and gaps[0]["gap_mean"] == pytest.approx(0.3)


def test_mean_ci_single_value():
    m, s, h = mean_ci([0.5])
    assert m == 0.5 and math.isnan(s) and math.isnan(h)


def test_half_written_and_repeated_cells_are_not_counted_and_say_why(tmp_path):
    """A truncated or missing metrics.json is unfinished; a second folder with the same
    settings and seed (a default spelt on the command line) is counted once, not twice."""
    same = {"init": {"name": "scratch"}, "seed": 0, "classifier": {"pooling": "mean"}}
    other = {**same, "seed": 1}
    folders = {
        "a": {**cell("scratch", 10, 0, 0.5), "identity": same},
        "a,classifier.pooling=mean": {**cell("scratch", 10, 0, 0.5), "identity": same},
        "b": '{"init": "scr',  # truncated
        "c": None,  # started, nothing written
        "d": {**cell("scratch", 10, 1, 0.7), "identity": other},
    }
    for name, m in folders.items():
        (tmp_path / name).mkdir()
        if m is not None:
            text = m if isinstance(m, str) else json.dumps(m)
            (tmp_path / name / "metrics.json").write_text(text)
    cells, not_counted = load_cells(tmp_path)
    assert [c["cell"] for c in cells] == ["a", "d"]
    assert not_counted == {
        "a,classifier.pooling=mean": "the settings and seed of a",
        "b": "unfinished",
        "c": "unfinished",
    }
    summary, gaps = summarize(cells, "test/acc")
    assert [r["n_seeds"] for r in summary] == [2]
    md = markdown("x", "test/acc", summary, gaps, len(cells), not_counted)
    assert "Not counted: `a,classifier.pooling=mean` (the settings and seed of a), `b` " in md


def test_scratch_cells_trained_once_stand_beside_every_lm_setting(tmp_path):
    """A scratch cell never reads the LM: its identity has no `lm` section, so a sweep over two
    LMs trains it once, and each LM's pretrained cells pair with it. A scratch cell stored with
    an `lm` section (as lmft stored them before) is the same cell: counted once."""

    def make(init, seed, acc, lm_epochs=None):
        c = cell(init, 100, seed, acc)
        c["identity"] = {"init": {"name": init}, "seed": seed, "classifier": {"lr": 1e-3}}
        if lm_epochs:
            c["identity"]["lm"] = {"epochs": lm_epochs}
        if init == "pretrained":
            c["lm"] = {"dir": f"lm{lm_epochs}", "epochs": lm_epochs, "val/ppl": 100.0}
        return c

    folders = {f"init=scratch,n=100,seed={s}": make("scratch", s, 0.70 + s / 100) for s in (0, 1)}
    folders["init=scratch,n=100,seed=0,lm.epochs=8"] = make("scratch", 0, 0.70, lm_epochs=8)
    for e, acc in ((2, 0.72), (8, 0.75)):
        for s in (0, 1):
            folders[f"init=pretrained,n=100,seed={s},lm.epochs={e}"] = make("pretrained", s, acc, e)
    for name, m in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    found, not_counted = load_cells(tmp_path)
    legacy = "init=scratch,n=100,seed=0,lm.epochs=8"
    assert not_counted == {legacy: "the settings and seed of init=scratch,n=100,seed=0"}
    assert sum(c["init"] == "scratch" for c in found) == 2  # trained, and listed, once
    cells = beside_each_lm(found)
    assert sum(c["init"] == "scratch" for c in cells) == 4  # beside each of the two LMs
    _, gaps = summarize(cells, "test/acc")
    assert {g["recipe"]: (g["n_pairs"], round(g["gap_mean"], 4)) for g in gaps} == {
        "lm.epochs=2": (2, round(0.72 - 0.705, 4)),
        "lm.epochs=8": (2, round(0.75 - 0.705, 4)),
    }
    (best,) = best_against_best(cells, "test/acc")  # scratch's recipe names no LM setting
    assert (best["pretrained_recipe"], best["scratch_recipe"]) == ("lm.epochs=2, LM epoch 2", "–")
    alone = [c for c in found if c["init"] == "scratch"]
    assert beside_each_lm(alone) == alone  # no LM in the sweep: nothing to stand beside


def test_markdown_states_ci_verdict_and_anchors_beside_largest_size(tmp_path):
    cells = [cell("pretrained", 100, s, a) for s, a in enumerate([0.80, 0.82, 0.84])]
    cells += [cell("scratch", 100, s, a) for s, a in enumerate([0.81, 0.80, 0.85])]
    cells += [cell("pretrained", 300, s, 0.9 + s / 100) for s in range(3)]
    cells += [cell("scratch", 300, s, 0.7 + s / 100) for s in range(3)]
    for s, c in enumerate(cells[6:9]):  # pretrained at 300 labels: its best validation accuracy
        c["val/acc_best"] = 0.70 + s / 100
    summary, gaps = summarize(cells, "test/acc")
    md = markdown("x", "test/acc", summary, gaps, len(cells), {}, {"Some paper": 91.2})
    # test: mean, std, interval, last epoch; then the mean best validation accuracy
    assert "| pretrained | 300 | 3 | 91.00 | 1.00 | 2.48 | 91.00 | 71.00 | 2.0 |" in md
    assert "| 100 | 3 | 0.00 | [-4.30, 4.30] | **no** |" in md  # the CI covers 0
    assert "| 300 | 3 | 20.00 | [20.00, 20.00] | yes |" in md
    assert "| Some paper | 91.2 |" in md
    # the mean epoch of best validation, beside how many cells were still improving at the end
    assert md.count("| 2.0 | 3/3 |") == 4
    cells[0]["best_epoch"] = 1
    earlier, _ = summarize(cells, "test/acc")
    assert earlier[0]["best_epoch_mean"] == pytest.approx(5 / 3)
    assert "| 1.7 | 2/3 |" in markdown("x", "test/acc", earlier, gaps, len(cells), {})
    assert "| **this sweep: pretrained, 300 labels, 3 seed(s)** | **91.00** |" in md
    assert "this sweep: scratch, 100" not in md  # anchors sit beside the largest size only
    assert "Published anchors" not in markdown("x", "test/acc", summary, gaps, 12, {})
    one_recipe = markdown(
        "x", "test/acc", summary, gaps, len(cells), {}, best=best_against_best(cells, "test/acc")
    )
    assert "Within each recipe" not in one_recipe  # one recipe: no best-against-best lines


def test_cells_that_never_beat_chance_on_validation_are_counted_and_named():
    """A cell is at chance when its best validation accuracy is not above the most frequent
    label's share by a one-sided binomial test (5%): on 1,000 balanced texts 52.6% is, 52.7%
    is not. Cells that did not record the share are unknown, never counted as learned."""
    from lmft.comparison import at_chance

    def scored(init, seed, val, share=0.5):
        c = cell(init, 100, seed, 0.6)
        c.update({"val/acc_best": val, "n_val": 1000, "val_majority": share})
        return {**c, "at_chance": at_chance(c)}  # as load_cells gives it

    assert at_chance(scored("scratch", 0, 0.526)) and not at_chance(scored("scratch", 0, 0.527))
    assert at_chance(scored("scratch", 0, 0.62, share=0.62))  # an imbalanced validation
    assert at_chance(cell("scratch", 100, 0, 0.6)) is None  # no share recorded
    cells = [scored("pretrained", s, v) for s, v in enumerate([0.501, 0.6, 0.61])]
    cells += [scored("scratch", s, v) for s, v in enumerate([0.6, 0.502, 0.51])]
    summary, gaps = summarize(cells, "test/acc")
    assert [r["n_at_chance"] for r in summary] == [1, 2]
    md = markdown("x", "test/acc", summary, gaps, len(cells), {})
    assert "| 3/3 | 1/3 |" in md and "| 3/3 | 2/3 |" in md  # best = last, at chance
    assert "never beat chance on validation: 1 pretrained, 2 scratch." in md
    # a cell without a share is not counted, and the table and the answer say how many
    mixed = summarize([*cells, cell("scratch", 100, 3, 0.6)], "test/acc")
    assert [(r["n_at_chance"], r["n_chance_known"]) for r in mixed[0]] == [(1, 3), (2, 3)]
    md = markdown("x", "test/acc", *mixed, len(cells) + 1, {})
    assert "| 4/4 | 2/3 (1 not recorded) |" in md
    assert "chance on validation: 1 pretrained, 2 scratch (of the 3 cells that recorded" in md
    unknown = markdown(
        "x", "test/acc", *summarize([cell("scratch", 100, 0, 0.6)], "test/acc"), 1, {}
    )
    assert "| 1/1 | – |" in unknown  # no cell recorded a share: unknown, not 0
    learned = summarize([scored(i, 0, 0.6) for i in ARMS], "test/acc")
    assert "never beat chance" not in markdown("x", "test/acc", *learned, 2, {})


def test_report_names_the_lm_the_settings_and_what_differs():
    ident = {"model": {"hidden_size": 512}, "classifier": {"pooling": "mean", "lr": 0.001}}
    cells = [cell("pretrained", 100, s, 0.8) for s in range(2)] + [cell("scratch", 100, 0, 0.7)]
    for i, c in enumerate(cells):
        c["identity"] = json.loads(json.dumps(ident))
        c["identity"]["seed"] = i
        c["identity"]["classifier"]["dropout"] = 0.5 if i else 0.3
    for c in cells[:2]:
        c["lm"] = {"dir": "outputs/pretrain/x", "epochs": 60, "val/ppl": 247.04}
    text = "\n".join(settings_lines(cells))
    assert "LM: `outputs/pretrain/x`, 60 epochs; perplexity 247.0 on the task's validation" in text
    assert "- model: hidden_size=512" in text and "pooling=mean" in text
    assert "settings that differ between cells: `classifier.dropout` (0.3, 0.5)" in text
    assert "`seed`" not in text  # seeds, sizes and arms are the sweep's own axes
    assert "- code: lmft commit `None`: 3 cells" in text  # (not run from a checkout)
    for c, code in zip(cells, ("abc1234", "abc1234", "def5678-dirty"), strict=True):
        c["provenance"] = {"git_commit": code, "git_tree": f"t{code[:3]}"}
    code = next(line for line in settings_lines(cells) if line.startswith("- code"))
    assert code == (
        "- code: lmft commit `abc1234` (tree `tabc`): 2 cells, "
        "`def5678-dirty` (tree `tdef`): 1 cell (2 code trees in one comparison: check that "
        "what differs between them, `git diff tabc tdef`, does not touch training)"
    )
    cells[2]["provenance"]["git_tree"] = "tabc"  # the same tree, once committed: no warning
    code = next(line for line in settings_lines(cells) if line.startswith("- code"))
    assert code.endswith("(tree `tabc`): 1 cell")
    assert "softmax" not in text and "**" not in text
    # a GPU LM whose softmax fell back from the fused kernel: said in bold
    why = "chunked (torch): liger-kernel is not installed"
    for c in cells[:2]:
        c["lm"] |= {"softmax": why, "softmax_fell_back": True}
    lm_line = next(line for line in settings_lines(cells) if line.startswith("- LM"))
    assert f"; softmax {why} (**on a GPU: slower than the fused kernel;" in lm_line
    # LM snapshots: listed by their epoch (a number, not text)
    for c, epochs in zip(cells, (10, 1, 3), strict=True):
        c["lm"] = {"dir": "x", "epochs": epochs, "val/ppl": 100.0}
    lms = [line for line in settings_lines(cells) if line.startswith("- LM")]
    assert [line.split(", ")[1].split(";")[0] for line in lms] == [
        "1 epoch",
        "3 epochs",
        "10 epochs",
    ]
    # the validation split: its size, and whether whole groups (films) were held out
    for c in cells:
        c |= {"n_val": 995, "identity": {**c["identity"], "data": {"val_groups": True}}}
    held = "- validation: 995 texts, whole groups held out (`data.val_groups`), every cell"
    assert held in settings_lines(cells)
    assert "- test: 80 texts, every cell" in settings_lines([c | {"n_test": 80} for c in cells])
    for c in cells:  # own data's test held out of train by its group column: whole groups too
        c["identity"]["data"] |= {"group_column": "user", "test": None}
        c["n_test"] = 80
    assert "- test: 80 texts, whole groups held out (`data.val_groups`), every cell" in (
        settings_lines(cells)
    )
    cells[0]["identity"]["data"]["val_groups"] = False
    lines = settings_lines(cells)
    assert {"- validation: 995 texts, every cell", "- test: 80 texts, every cell"} <= set(lines)


def test_figure_caption_states_the_lm_and_the_recipe():
    cells = [cell("pretrained", 100, 0, 0.8), cell("scratch", 100, 0, 0.7)]
    for c in cells:
        c["identity"] = {"classifier": {"pooling": "mean", "lr": 0.001, "batch_size": 32}}
    cells[0]["lm"] = {"dir": "x", "epochs": 60, "val/ppl": 247.04}
    for c in cells:
        c["identity"]["classifier"]["epochs"] = 10
    text = caption(cells)
    assert (
        text
        == "LM 60 epochs, val ppl 247.0 | pooling=mean, lr=0.001, batch_size=32, epochs=2 (of 10)"
    )
    cells[1]["history"] = cells[1]["history"] * 4  # early stopping, a cap: epochs as they ran
    assert caption(cells).endswith("epochs=2-8 (of 10)")
    cells[1]["history"] = cells[1]["history"] + cells[1]["history"][:2]
    assert caption(cells).endswith("epochs=2-10")


def test_other_axes_make_recipes_and_each_arm_is_judged_at_its_best_on_validation():
    def make(init, pooling, seed, val, test, best_epoch=2):
        c = cell(init, 100, seed, test)
        c.update({"val/acc_best": val, "best_epoch": best_epoch})
        c["identity"] = {"classifier": {"pooling": pooling}, "seed": seed}
        return c

    cells = [make("pretrained", "mean", s, 0.70, 0.70) for s in range(3)]
    cells += [make("pretrained", "concat", s, 0.80, 0.75 + s / 100) for s in range(3)]
    cells += [make("scratch", "mean", s, 0.78, 0.74, best_epoch=2 if s else 1) for s in range(3)]
    cells += [make("scratch", "concat", s, 0.60, 0.90) for s in range(3)]  # best on test only
    summary, gaps = summarize(cells, "test/acc")
    assert {(r["recipe"], r["init"]) for r in summary} == {
        (f"classifier.pooling={p}", a) for p in ("mean", "concat") for a in ARMS
    }
    assert {g["recipe"]: round(g["gap_mean"], 4) for g in gaps} == {
        "classifier.pooling=concat": round(0.76 - 0.90, 4),
        "classifier.pooling=mean": round(0.70 - 0.74, 4),
    }
    last = {(r["recipe"], r["init"]): r["n_best_last"] for r in summary}
    assert last[("classifier.pooling=mean", "scratch")] == 2  # best epoch 2 of 2: still rising
    (best,) = best_against_best(cells, "test/acc")
    assert best["pretrained_recipe"] == "classifier.pooling=concat"  # 0.80 on validation
    assert best["scratch_recipe"] == "classifier.pooling=mean"  # not concat's 0.90 on test
    assert round(best["gap_mean"], 4) == round(0.76 - 0.74, 4) and best["n_pairs"] == 3
    assert best_against_best(cells[:6], "test/acc") == []  # one arm only: nothing to pair
    # seeds 3-9 added to scratch's concat recipe only, good on validation, do not make it the
    # choice: recipes are compared on the seeds they share (there concat's 0.60 < mean's 0.78)
    more = cells + [make("scratch", "concat", s, 0.99, 0.90) for s in range(3, 10)]
    assert best_against_best(more, "test/acc")[0]["scratch_recipe"] == "classifier.pooling=mean"
    # the answer leads with each arm at its best recipe; concat's own gap (scratch at its worst
    # on validation) follows, within its recipe
    md = markdown("x", "test/acc", summary, gaps, len(cells), {}, best=[best])
    head = md[: md.index("Within each recipe:")]
    assert (
        "pretrained (classifier.pooling=concat) − scratch (classifier.pooling=mean) +2.00 points"
        " [−0.48, +4.48], no measurable difference" in head
    )
    assert "pretraining costs" not in head and "pretraining costs" in md


def test_recipes_are_spelt_as_overrides_and_every_panel_recipe_is_in_the_legend(tmp_path, saved):
    """A `null` axis reads `classifier.max_examples=null` (what Hydra takes; `None` would be a
    string), and the per-epoch figure's one legend names a recipe that only one size has."""
    from lmft import figures

    cells = [cell(a, 100, 0, 0.6) for a in ARMS] + [cell(a, 1000, 0, 0.7) for a in ARMS]
    for c, cap in zip(cells, [15000, 15000, None, None], strict=True):
        c["identity"] = {"classifier": {"max_examples": cap}}
    summary, _ = summarize(cells, "test/acc")
    assert {r["recipe"] for r in summary} == {
        "classifier.max_examples=15000",
        "classifier.max_examples=null",
    }
    figures.epochs_figure("x", cells, tmp_path / "epochs.png", "note")
    ((legend,),) = [fig.legends for fig in saved]
    assert {t.get_text() for t in legend.get_texts()} == {
        f"{a} classifier.max_examples={v}" for a in ARMS for v in ("15000", "null")
    }


def test_the_epoch_figure_draws_each_cell_to_its_end_and_the_mean_while_every_cell_trains(
    tmp_path, saved
):
    """Early stopping ends cells at different epochs: each cell's validation curve runs to its
    own last epoch, and the mean stops at the shortest (past it, it would average the cells
    that happened to train longer)."""
    from lmft import figures

    cells = [cell(a, 100, s, 0.6) for a in ARMS for s in range(2)]
    cells[1]["history"] = [
        {"epoch": e, "val/acc": 0.5 + e / 100, "test/acc": 0.5} for e in range(1, 6)
    ]
    figures.epochs_figure("x", cells, tmp_path / "epochs.png", "note")
    drawn = saved[0].axes[0].lines
    ends = sorted((line.get_color(), max(line.get_xdata())) for line in drawn)
    blue, orange = figures.COLORS["pretrained"], figures.COLORS["scratch"]
    # per arm: its cells (thin, to epochs 2 and 5 for pretrained), then its means (val, test)
    assert ends == sorted([(blue, 2), (blue, 5), (blue, 2), (blue, 2)] + [(orange, 2)] * 4)
    means = [line for line in drawn if line.get_linewidth() == 2]
    assert [line.get_label() for line in means] == [
        f"{a} {split}" for a in ARMS for split in ("val", "test")
    ]
    assert list(means[0].get_ydata()) == pytest.approx([(50 + 51) / 2, (60 + 52) / 2])


def test_the_learning_curve_shows_the_paired_gaps_by_size_beside_the_accuracies(tmp_path, saved):
    from lmft import figures
    from lmft.comparison import against_baseline

    cells = [cell(a, n, s, 0.6 + s / 100) for a in ARMS for n in (100, 1000) for s in range(3)]
    for c in cells:
        c[METRIC] += {"pretrained": 0.05, "scratch": 0.0}[c["init"]] + (
            c["train_size"] == 1000
        ) / 10
    cells += [cell("baseline", n, s, 0.8) for n in (100, 1000) for s in range(3)]
    for c in cells[-6:]:
        c["history"] = []
    summary, gaps = summarize(cells, METRIC)
    base_gaps = against_baseline(cells, METRIC)
    figures.learning_curve("x", METRIC, summary, tmp_path / "lc.png", "note", gaps, base_gaps)
    figures.learning_curve("x", METRIC, summary, tmp_path / "lc.png", "note")
    (accuracy, paired), (alone,) = (fig.axes for fig in saved)
    assert len(accuracy.containers) == 3 == len(alone.containers)  # an error bar per arm
    lines = {c.get_label().split(" (")[0]: c.lines[0] for c in paired.containers}
    assert set(lines) == {"pretrained − scratch", "pretrained − baseline"}  # not scratch − base
    assert list(lines["pretrained − scratch"].get_ydata()) == pytest.approx([5.0, 5.0])
    assert list(lines["pretrained − baseline"].get_ydata()) == pytest.approx([-14.0, -4.0])
    assert list(lines["pretrained − scratch"].get_xdata()) == [100, 1000]
    # one size: the axis is centred on it, not stretched to the arms' nudged points
    one = [r for r in summary if r["train_size"] == 100]
    figures.learning_curve("x", METRIC, one, tmp_path / "lc.png", "note")
    assert saved[-1].axes[0].get_xlim() == pytest.approx((100 / 1.5, 150))


def test_lm_snapshots_give_a_row_and_a_gap_per_budget_against_the_same_scratch(tmp_path):
    """Pretrained cells from LM epochs 1 and 3 (init.lm_epoch): each budget is compared with
    the one set of scratch cells; the best pretrained budget is chosen on validation."""
    from lmft.figures import lm_budget_figure

    cells = snapshot_cells()
    summary, gaps = summarize(cells, "test/acc")
    assert [(g["lm_epochs"], g["lm_val_ppl"], g["n_pairs"]) for g in gaps] == [
        (1, 400.0, 2),
        (3, 200.0, 2),
    ]
    assert [round(g["gap_mean"], 3) for g in gaps] == [-0.095, 0.105]
    assert all(r["recipe"] == "" for r in summary)  # the LM budget is no recipe
    (best,) = best_against_best(cells, "test/acc")
    assert best["pretrained_recipe"] == "LM epoch 3" and best["gap_mean"] == pytest.approx(0.105)
    md = markdown("x", "test/acc", summary, gaps, len(cells), {}, best=[best])
    assert "| LM epochs | LM val ppl |" in md and "| pretrained | 3 | 100 |" in md
    lm_budget_figure("x", summary, gaps, tmp_path / "lm_budget.png", "note")
    assert (tmp_path / "lm_budget.png").stat().st_size > 0


def test_a_rerun_names_what_it_wrote_and_removes_what_it_no_longer_writes(tmp_path, capsys):
    """A report rewritten after the sweep changed must not leave an earlier state's figure or
    table beside the new summary (here: one LM budget and no scratch arm left)."""
    from omegaconf import OmegaConf

    from lmft.report import run

    sweep, out = tmp_path / "sweep", tmp_path / "report"
    for i, c in enumerate(snapshot_cells()):
        (sweep / f"c{i}").mkdir(parents=True)
        (sweep / f"c{i}/metrics.json").write_text(json.dumps(c))
    data = {"_target_": "lmft.data.imdb.IMDB", "anchors": {}}
    cfg = OmegaConf.create({"sweep_dir": str(sweep), "metric": "test/acc", "data": data})
    run(cfg, out)
    assert {"gaps.csv", "best_recipes.csv", "lm_budget.png"} <= {p.name for p in out.iterdir()}
    for i in (0, 1, 4, 5):  # LM epoch 1 and scratch gone: one budget, nothing to pair
        (sweep / f"c{i}/metrics.json").unlink()
    capsys.readouterr()
    run(cfg, out)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(
        ["summary.md", "summary.csv", "cells.csv", "cells.json", "histories.csv"]
        + ["learning_curve.png", "epochs.png"]
    )
    rows = (out / "histories.csv").read_text().splitlines()
    # the cell counted (the fixture's c3 repeats c2's identity), one row per epoch
    assert rows == ["cell,epoch,val/acc,test/acc", "c2,1,0.5,0.5", "c2,2,0.6,0.8"]
    assert f"({', '.join(files)})" in capsys.readouterr().err
