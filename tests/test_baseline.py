"""The linear baseline arm: its examples, features and accuracy, and the report's three arms."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from lmft import finetune
from lmft.baseline import MODEL_FILE, cell_texts, fit_and_select, load_model, probabilities
from lmft.comparison import against_baseline, summarize
from lmft.data.imdb import read_imdb
from lmft.tables import answer, best_model_lines


def synthetic(n: int, classes: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts with one cue word per class among filler words (a separable task)."""
    rng = random.Random(seed)
    cues = [["great", "superb"], ["awful", "dull"], ["okay", "average"]][:classes]
    filler = ["the", "film", "was", "a", "story", "of", "an", "actor", "and", "it", "had"]
    texts, labels = [], []
    for i in range(n):
        y = i % classes
        words = rng.choices(filler, k=8) + rng.choices(cues[y], k=3)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(y)
    return texts, np.array(labels)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("model", ["tfidf_lr", "nbsvm"])
def test_each_model_learns_a_separable_task_with_any_number_of_classes(classes, model):
    train, val, test = (synthetic(n, classes, s) for n, s in ((60, 0), (60, 1), (300, 2)))
    _, fit = fit_and_select(train, val, test, [model], [0.1, 1, 10, 100], 2)
    assert fit["test/acc"] >= 0.95 and fit["chosen"]["model"] == model


def test_features_come_from_the_training_texts_only():
    """Words and n-grams that only validation or test texts hold add no feature."""
    train, val, test = (synthetic(n, 2, s) for n, s in ((40, 0), (40, 1), (40, 2)))

    def features(train, val, test) -> int:
        return fit_and_select(train, val, test, ["nbsvm"], [1], 2)[1]["n_features"]

    unseen = lambda split: ([f"{t} zebra quokka" for t in split[0]], split[1])  # noqa: E731
    plain = features(train, val, test)
    assert features(train, unseen(val), unseen(test)) == plain
    assert features(unseen(train), val, test) > plain


def test_the_choice_is_made_on_validation_never_on_test():
    """Validation labels flipped: the choice must follow them (and so lose on test)."""
    train, val, test = (synthetic(n, 2, s) for n, s in ((60, 0), (60, 1), (300, 2)))
    models = ["tfidf_lr", "nbsvm"]
    _, honest = fit_and_select(train, val, test, models, [0.1, 1, 10], 2)
    _, flipped = fit_and_select(train, (val[0], 1 - val[1]), test, models, [0.1, 1, 10], 2)
    assert flipped["val/acc"] < 0.5 and flipped["test/acc"] > 0.9  # the same models
    grid = {(r["model"], r["C"]): r["val/acc"] for r in flipped["grid"]}
    assert max(grid.values()) == flipped["val/acc"] and honest["val/acc"] > 0.9


def test_a_class_the_examples_lack_gets_probability_zero():
    texts, y = synthetic(60, 2, 0)
    y = y * 2  # classes 0 and 2 of three: class 1 has no example
    pipeline, _ = fit_and_select((texts, y), (texts, y), (texts, y), ["nbsvm"], [1], 2)
    probs = np.array(probabilities(pipeline, ["a", "b", "c"], texts))
    assert (probs[:, 1] == 0).all() and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y).mean() > 0.9


def test_an_unknown_model_is_an_error_before_any_work():
    from lmft.errors import LmftError

    data = synthetic(10, 2, 0)
    with pytest.raises(LmftError, match="tfidf_lr and/or nbsvm"):
        fit_and_select(data, data, data, ["svm"], [1], 2)


def test_a_cell_reads_the_neural_cells_examples(cfg_for, overrides, fake_archive):
    """The baseline's train / validation / test texts are those a neural cell of the same
    size and seed reads: the DataModule's index sets, applied to the raw reviews."""
    from lmft.data import ClassificationDataModule, load_corpus

    ov = [*overrides, "data.train_size=40", "seed=3", "data.test_size=100"]
    cfg = cfg_for("finetune", [*ov, "init=baseline"])
    got, names = cell_texts(cfg, [fake_archive])
    assert names == ["neg", "pos"]
    neural = cfg_for("finetune", ov)
    dm = ClassificationDataModule(
        load_corpus(neural.data, neural.pretrain_data), train_size=40, test_size=100,
        batch_size=8, max_len=64, seed=3,
    )  # fmt: skip
    raw = read_imdb(fake_archive)
    for split, source, idx in (
        ("train", "train", dm.train_idx),
        ("val", "train", dm.val_idx),
        ("test", "test", dm.test_idx),
    ):
        assert got[split][0] == [raw[source].texts[i] for i in idx.tolist()], split
        assert got[split][1].tolist() == [raw[source].labels[i] for i in idx.tolist()], split
    other, _ = cell_texts(cfg_for("finetune", [*ov, "init=baseline", "seed=4"]), [fake_archive])
    assert other["train"][0] != got["train"][0] and other["val"][0] == got["val"][0]


def test_a_baseline_cell_is_a_cell_like_the_others(cfg_for, overrides, tmp_path, capsys):
    cfg = cfg_for("finetune", [*overrides, "init=baseline", "data.train_size=50"])
    out = Path(cfg.paths.sweep_dir) / cfg.cell
    assert out.name == "init=baseline,n=50,seed=0"
    m = finetune.run(cfg, out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test/acc_at_best_val"] == m["test/acc"] >= 0.9  # the synthetic task
    assert saved["identity"]["init"]["name"] == "baseline" and "lm" not in saved["identity"]
    assert {"lmft", "git_commit", "python"} <= set(saved["provenance"])
    assert list((out / "tb/hparams").glob("events.out.tfevents.*"))  # its HParams row
    # its chosen model, kept for lmft.predict: it reads the test texts as the cell did
    pipeline, labels = load_model(out)
    split, _ = cell_texts(cfg, [Path(cfg.data.archive)])
    texts, y = split["test"]
    probs = np.array(probabilities(pipeline, labels, texts))
    assert labels == ["neg", "pos"] and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y).mean() == pytest.approx(m["test/acc"])
    unsaved = cfg_for("finetune", [*overrides, "init=baseline", "classifier.save_model=false"])
    finetune.run(unsaved, tmp_path / "unsaved")
    assert not (tmp_path / "unsaved" / MODEL_FILE).exists()
    capsys.readouterr()
    assert finetune.run(cfg, out) == saved  # finished: skipped
    assert "skipping" in capsys.readouterr().out
    # settings only the neural arms read do not make it another cell
    neural_only = ["lm.epochs=7", "classifier.lr=0.5", "data.vocab_size=99"]
    other = cfg_for("finetune", [*overrides, "init=baseline", "data.train_size=50", *neural_only])
    assert finetune.run(other, out) == saved


def cells(init: str, accs: list[float], size: int = 100) -> list[dict]:
    hist = [{"epoch": 1, "val/acc": 0.5, "test/acc": 0.5}, {"epoch": 2, "val/acc": 0.6}]
    return [
        {"init": init, "train_size": size, "seed": s, "test/acc": a, "test/acc_at_best_val": a,
         "val/acc_best": 0.6, "best_epoch": None if init == "baseline" else 1,
         "history": [] if init == "baseline" else hist}
        for s, a in enumerate(accs)
    ]  # fmt: skip


def test_the_report_pairs_each_arm_with_the_baseline_and_says_where_pretraining_stands():
    cs = cells("pretrained", [0.60, 0.62, 0.64]) + cells("scratch", [0.55, 0.56, 0.60])
    cs += cells("baseline", [0.70, 0.71, 0.72])
    summary, gaps = summarize(cs, "test/acc_at_best_val")
    assert [r["init"] for r in summary] == ["pretrained", "scratch", "baseline"]
    base = summary[-1]
    assert base["n_best_last"] is None and base["test_acc_mean"] == pytest.approx(0.71)
    vs = {g["init"]: g for g in against_baseline(cs, "test/acc_at_best_val")}
    assert vs["pretrained"]["gap_mean"] == pytest.approx(-0.09)  # paired by seed
    assert vs["scratch"]["gap_mean"] == pytest.approx(-0.14)
    assert vs["pretrained"]["excludes_0"]
    first = answer(summary, gaps, list(vs.values()))[2]
    assert first.startswith("- **100 labels**: pretrained − linear baseline −9.00 points")
    assert "the baseline wins" in first and "pretraining pays" in first


def test_the_best_model_named_is_a_neural_one_and_a_better_baseline_is_said(tmp_path):
    cs = cells("pretrained", [0.6, 0.6]) + cells("baseline", [0.7, 0.7])
    for c in cs:
        c["cell"] = f"init={c['init']},n=100,seed={c['seed']}"
        (tmp_path / c["cell"]).mkdir()
    cs[1]["val/acc_best"], cs[3]["val/acc_best"] = 0.65, 0.8
    for c in cs[:2]:  # the neural cells keep their model; the baseline's (run before) none
        (tmp_path / c["cell"] / "model.pt").touch()
    lines = best_model_lines(cs, tmp_path)
    best = tmp_path / cs[1]["cell"]
    assert lines[0].startswith(f"Best neural model by validation accuracy: `{best}`")
    assert lines[2] == f'    lmft-predict "{best}" "some text to classify"'
    higher = "The linear baseline reads higher: 80.00% on validation (`init=baseline,n=100,seed=1`)"
    assert lines[4].startswith(higher) and "keep no model" in lines[4] and len(lines) == 6
    (tmp_path / cs[3]["cell"] / MODEL_FILE).touch()  # a baseline cell that kept its model
    lines = best_model_lines(cs, tmp_path)
    top = tmp_path / cs[3]["cell"]
    assert lines[4] == (
        f"The linear baseline reads higher: `{top}` (80.00% on validation, 70.00% on test). Use it:"
    )
    assert lines[6] == f'    lmft-predict "{top}" "some text to classify"'
    cs[3]["val/acc_best"] = 0.6
    assert "baseline" not in "".join(best_model_lines(cs, tmp_path))
    cs[3]["val/acc_best"] = 0.8
    for c in cs[:2]:  # no neural cell kept a model (classifier.save_model=false): the baseline
        (tmp_path / c["cell"] / "model.pt").unlink()
    assert best_model_lines(cs, tmp_path)[0].startswith("Best linear baseline: `")


def test_the_baseline_is_every_presets_third_arm(cfg_for):
    from pathlib import Path as P

    for exp in sorted(p.stem for p in (P(__file__).parents[1] / "conf/experiment").glob("*.yaml")):
        grid = cfg_for("finetune", [f"experiment={exp}"], hydra=True).hydra.sweeper.params
        assert grid["init"].split(",")[-1] == "baseline", exp
