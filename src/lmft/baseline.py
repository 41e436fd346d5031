"""The yardstick arm (`init=baseline`): linear bag-of-n-grams classifiers on a cell's examples.

    python -m lmft.finetune experiment=quick init=baseline data.train_size=1000 seed=0

What pretraining buys means little unless both neural arms are also compared with the cheapest
strong model trained on the same labeled examples. A baseline cell trains TF-IDF word n-grams +
logistic regression and NBSVM (Wang & Manning 2012: binary n-gram features scaled by the naive
Bayes log-count ratio, then a linear model) on exactly the texts a neural cell of the same size
and seed trains on (the same index sets: `lmft.data.splits`), fits its vocabulary and features
on those texts only, picks the model and its regularisation C on the validation split only,
and reads the chosen one on the same test texts. Seconds on a CPU; any number of classes
(one-vs-rest: NBSVM then has a log-count ratio per class). The chosen model, with its n-gram
vocabulary, is kept as `model.joblib` for `lmft.predict` (scikit-learn's own persistence, a
pickle: load only cells you made or trust).
"""

from __future__ import annotations

import time
from pathlib import Path

import joblib
import numpy as np
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from lmft.errors import LmftError
from lmft.io import atomic_path

MODEL_FILE = "model.joblib"  # a baseline cell's chosen model (a neural cell's is model.pt)
MODEL_FORMAT = 1


class NBLogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary NBSVM with a logistic loss: features binarised and scaled by the log-count ratio
    r = log((p / |p|) / (q / |q|)), p and q the smoothed (`alpha`) feature counts of the
    positive and the negative texts; then logistic regression with inverse regularisation `C`.
    Wrapped in `OneVsRestClassifier` for any number of classes."""

    def __init__(self, C: float = 1.0, alpha: float = 1.0):
        self.C, self.alpha = C, alpha

    def _scaled(self, X):
        return (X > 0).multiply(self.r_).tocsr()

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        pos = y == self.classes_[-1]
        binary = (X > 0).astype(np.float64)
        p = self.alpha + np.asarray(binary[pos].sum(0)).ravel()
        q = self.alpha + np.asarray(binary[~pos].sum(0)).ravel()
        self.r_ = np.log((p / p.sum()) / (q / q.sum()))
        self.lr_ = LogisticRegression(C=self.C, solver="liblinear").fit(self._scaled(X), y)
        return self

    def decision_function(self, X):
        return self.lr_.decision_function(self._scaled(X))

    def predict(self, X):
        return self.lr_.predict(self._scaled(X))

    def predict_proba(self, X):
        return self.lr_.predict_proba(self._scaled(X))


def make_model(name: str, C: float):
    """A classifier over n-gram counts: `tfidf_lr` or `nbsvm`."""
    if name == "tfidf_lr":
        lr = LogisticRegression(C=C, solver="liblinear")
        return make_pipeline(TfidfTransformer(sublinear_tf=True), OneVsRestClassifier(lr))
    if name == "nbsvm":
        return OneVsRestClassifier(NBLogisticRegression(C=C))
    raise LmftError(f"init.models: {name!r} is not a baseline model; use tfidf_lr and/or nbsvm.")


def accuracy(model, X, y: np.ndarray) -> float:
    return float((model.predict(X) == y).mean())


def fit_and_select(
    train: tuple[list[str], np.ndarray],
    val: tuple[list[str], np.ndarray],
    test: tuple[list[str], np.ndarray],
    models: list[str],
    Cs: list[float],
    ngram_max: int,
    label: str = "baseline",
) -> tuple[Pipeline, dict]:
    """Every (model, C) fitted on `train`, scored on `val`; the best on validation (the first
    of ties, in the order given) read on `test`. The n-gram vocabulary comes from the training
    texts alone. Returns the chosen model behind its n-gram counts (texts in, classes out), and
    its accuracies with, per model, its validation-chosen C and that C's accuracies (the test
    ones are information, never a choice)."""
    for name in models:
        make_model(name, 1.0)  # an unknown name fails before any work
    t0 = time.time()
    vec = CountVectorizer(ngram_range=(1, ngram_max), dtype=np.float64)
    X = vec.fit_transform(train[0])
    Xv, Xt = vec.transform(val[0]), vec.transform(test[0])
    print(f"[{label}] {X.shape[1]:,} n-gram features from {len(train[0]):,} training texts, "
          f"{time.time() - t0:.0f} s", flush=True)  # fmt: skip
    grid, per_model = [], {}
    for name in models:
        for C in Cs:
            model = make_model(name, C).fit(X, train[1])
            row = {"model": name, "C": C, "val/acc": accuracy(model, Xv, val[1])}
            grid.append(row)
            if name not in per_model or row["val/acc"] > per_model[name][0]["val/acc"]:
                per_model[name] = (row, model)
        row, model = per_model[name]
        row["test/acc"] = accuracy(model, Xt, test[1])
        print(f"[{label}] {name}: C={row['C']:g} chosen on validation, val/acc "
              f"{row['val/acc']:.4f}, test/acc {row['test/acc']:.4f}", flush=True)  # fmt: skip
    chosen, model = max(per_model.values(), key=lambda rm: rm[0]["val/acc"])  # first of ties
    return make_pipeline(vec, model), {
        "chosen": {"model": chosen["model"], "C": chosen["C"]},
        "val/acc": chosen["val/acc"],
        "test/acc": chosen["test/acc"],
        "models": {n: row for n, (row, _) in per_model.items()},
        "grid": grid,
        "n_features": X.shape[1],
        "fit_s": round(time.time() - t0, 1),
    }


def cell_texts(
    cfg: DictConfig, inputs: list[Path]
) -> tuple[dict[str, tuple[list[str], np.ndarray]], list[str]]:
    """The train / val / test texts and labels of the cell `cfg` describes, read from its data's
    `inputs`: the raw texts at the indices the neural cells of that size and seed read
    (`lmft.data.splits`); and the class names."""
    import torch

    from lmft.data.corpus import read_task, validation_and_pool
    from lmft.data.reader import dataset_reader
    from lmft.data.splits import test_subset, training_subset

    d = cfg.data
    texts, names = read_task(dataset_reader(d), inputs)
    train, test, own_val = texts["train"], texts["test"], texts.get("val")
    val_idx, pool = validation_and_pool(texts, d)
    train_idx = training_subset(torch.tensor(train.labels), pool, d.train_size, cfg.seed)
    test_labels = torch.tensor(test.labels)
    test_idx = test_subset(test_labels, torch.arange(len(test)), d.test_size, d.split_seed)

    def pick(split, idx: torch.Tensor) -> tuple[list[str], np.ndarray]:
        idx = idx.tolist()
        return [split.texts[i] for i in idx], np.array([split.labels[i] for i in idx])

    splits = {
        "train": pick(train, train_idx),
        "val": pick(train if own_val is None else own_val, val_idx),
        "test": pick(test, test_idx),
    }
    return splits, names


def save_model(path: Path, pipeline: Pipeline, labels: list[str]) -> None:
    """The chosen model, its n-gram vocabulary and the class names (label i is `labels[i]`)."""
    with atomic_path(path) as tmp:
        blob = {"format": MODEL_FORMAT, "pipeline": pipeline, "labels": labels}
        joblib.dump(blob, tmp, compress=3)  # half the size (the vocabulary), about 1 s more


def load_model(run_dir: str | Path) -> tuple[Pipeline, list[str]]:
    """(pipeline, class names) of the baseline cell in `run_dir`."""
    path = Path(run_dir) / MODEL_FILE
    try:
        blob = joblib.load(path)
        pipeline, labels = blob["pipeline"], blob["labels"]
    except Exception as e:
        raise LmftError(
            f"{path} is unreadable or truncated ({type(e).__name__}); rerun that cell (delete "
            "its folder)."
        ) from e
    if blob.get("format") != MODEL_FORMAT:
        raise LmftError(f"{path} was written by another lmft; rerun that cell (delete its folder).")
    return pipeline, labels


def probabilities(pipeline: Pipeline, labels: list[str], texts: list[str]) -> list[list | None]:
    """Each text's probability of each class (None for a text with no word the n-grams read,
    such as "!!!": there is nothing to classify); a class the cell's examples lacked gets 0."""
    words = pipeline[0].build_analyzer()
    some = [i for i, t in enumerate(texts) if words(t)]
    out: list[list | None] = [None] * len(texts)
    if some:
        p = np.zeros((len(some), len(labels)))
        p[:, pipeline.classes_] = pipeline.predict_proba([texts[i] for i in some])
        for i, row in zip(some, p.tolist(), strict=True):
            out[i] = row
    return out


def run_cell(cfg: DictConfig, out_dir: Path, identity: dict) -> dict:
    """A baseline cell: fit and choose on its texts, then write its metrics.json (the same
    keys the report reads from a neural cell: the accuracy at the validation-chosen setting
    stands where a neural cell's best-validation epoch does) and its HParams row."""
    from lmft.data.reader import dataset_reader
    from lmft.io import write_json
    from lmft.results import log_hparams, provenance

    inputs = dataset_reader(cfg.data).inputs()
    split, names = cell_texts(cfg, inputs)
    i = cfg.init
    pipeline, fit = fit_and_select(
        split["train"], split["val"], split["test"], list(i.models), list(i.C), i.ngram_max,
        f"{cfg.name} {cfg.cell}",
    )  # fmt: skip
    metrics = {
        "init": "baseline",
        "train_size": len(split["train"][0]),
        "seed": cfg.seed,
        "n_val": len(split["val"][0]),
        "n_test": len(split["test"][0]),
        "lm": None,
        "inputs": [str(p.resolve()) for p in inputs],
        "test/acc": fit["test/acc"],
        "test/acc_at_best_val": fit["test/acc"],
        "val/acc": fit["val/acc"],
        "val/acc_best": fit["val/acc"],
        "best_epoch": None,
        "history": [],
        "baseline": {k: v for k, v in fit.items() if k not in ("test/acc", "val/acc")},
        "identity": identity,
        "provenance": provenance(),
    }
    log_hparams(out_dir, identity, metrics)
    if cfg.classifier.save_model:
        save_model(out_dir / MODEL_FILE, pipeline, names)
    write_json(out_dir / "metrics.json", metrics)  # last: its presence means "finished"
    chosen = f"{fit['chosen']['model']}, C={fit['chosen']['C']:g}"
    print(f"[finetune] {cfg.cell}: test/acc {fit['test/acc']:.4f} ({chosen}, chosen on validation)")
    return metrics
