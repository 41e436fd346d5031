"""The bench (bench/bench.py) times the models the presets train."""

import inspect
from types import SimpleNamespace

import pytest
from conftest import ROOT
from omegaconf import OmegaConf

from lmft.models import LanguageModel, SentimentClassifier

PRESETS = sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def bench(bench_module):
    return bench_module("bench")


@pytest.mark.parametrize("exp", PRESETS)
def test_the_bench_builds_each_presets_lm_and_classifier(bench, exp):
    """Every constructor argument of the timed LM and classifier is the preset's setting (the
    encoder's too, with each stage's input dropout): a bench that built a model by hand and
    left out a setting (tied weights, gradual unfreezing, ...) fails here."""
    cfg = bench.bench_config(exp, [])
    corpus = SimpleNamespace(
        tokenizer=SimpleNamespace(get_vocab_size=lambda: 20_000), labels=["neg", "pos"]
    )
    for stage, cls, section in (
        ("LM", LanguageModel, "lm"),
        ("classifier", SentimentClassifier, "classifier"),
    ):
        model = bench.bench_model(stage, cfg, corpus)
        settings = OmegaConf.to_container(cfg[section])
        for name in inspect.signature(cls).parameters:
            if name == "encoder":
                continue
            want = len(corpus.labels) if name == "num_classes" else settings[name]
            got = model.hparams[name]
            assert (list(got) if isinstance(got, tuple) else got) == want, (stage, name)
        encoder = {**OmegaConf.to_container(cfg.model), "vocab_size": 20_000}
        if settings["input_dropout"] is not None:
            encoder["input_dropout"] = settings["input_dropout"]
        assert {k: model.encoder.kwargs[k] for k in encoder if k != "_target_"} == {
            k: v for k, v in encoder.items() if k != "_target_"
        }
        assert model.encoder.type_name() == cfg.model._target_


def test_the_bench_times_every_row_in_each_pass_with_one_like_for_like(
    bench, fake_archive, tmp_path, monkeypatch, capsys
):
    """Two passes; besides the preset's rows (bf16, adaptive softmax) and batch 32 at its
    setting, one lmft row per stage at the plain loop's batch, dtype and head or pooling; each
    lmft row has its ratio to the plain loop with its range over the passes."""
    monkeypatch.chdir(tmp_path)
    argv = ["--exp", "smoke", "--steps", "1", "--warmup", "0", "--repeats", "2"]
    monkeypatch.setattr(
        "sys.argv",
        ["bench.py", *argv, f"data.archive={fake_archive}", f"data.cache_dir={tmp_path}/cache",
         "trainer.precision=bf16-mixed", "lm.head=adaptive", "lm.cutoffs=[10]"],
    )  # fmt: skip
    bench.main()
    out = capsys.readouterr().out
    assert "bench: pass 2 of 2" in out
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith(("| LM ", "| classifier "))
    ]
    assert [r[:5] for r in rows] == [
        ["LM", "lmft", "16", "bf16-mixed", "adaptive/torch"],
        ["LM", "lmft", "32", "bf16-mixed", "adaptive/torch"],
        ["LM", "lmft", "32", "fp32", "full/torch"],
        ["LM", "plain loop", "32", "fp32", "full"],
        ["classifier", "lmft", "16", "bf16-mixed", "mean"],
        ["classifier", "lmft", "32", "bf16-mixed", "mean"],
        ["classifier", "lmft", "32", "fp32", "mean"],
        ["classifier", "plain loop", "32", "fp32", "mean"],
    ]
    for r in rows:
        ratio = r[-1]
        assert (ratio == "") == (r[1] == "plain loop")
        if ratio:  # median (min-max)
            median, lo, hi = map(
                float, ratio.replace("(", " ").replace(")", "").replace("-", " ").split()
            )
            assert lo <= median <= hi


def test_ratios_to_the_plain_loop_pair_rows_of_the_same_pass(bench):
    """A machine twice as fast in the second pass moves both rows: the ratio stays 2."""

    def row(code, tokens, s):
        return (("LM", code, 32, "fp32", "full", 64), {"tokens": tokens, "s": s, "steps": 4})

    passes = [
        [row("lmft", 200, 1.0), row("plain loop", 100, 1.0)],
        [row("lmft", 200, 0.5), row("plain loop", 100, 0.5)],
    ]
    lmft, plain = bench.summarize(passes)
    assert lmft["ratio"] == 2.0 and lmft["ratio_range"] == (2.0, 2.0)
    assert lmft["tps"] == 300.0 and lmft["spread"] == 200 / 300
    assert lmft["ms"] == 187.5 and plain["ratio"] is None


def test_replayed_early_stopping_is_lightnings(cfg_for, overrides, tmp_path, bench_module):
    """bench/replay_stopping.py on a cell that ran every epoch gives the epochs and best epoch
    the same cell trained with early stopping ran and kept."""
    from lmft import finetune

    replay = bench_module("replay_stopping")

    cell = [*overrides, "init=scratch", "data.train_size=60", "classifier.epochs=12"]
    full = finetune.run(cfg_for("finetune", [*cell, "classifier.patience=null"]), tmp_path / "a")
    val = [r["val/acc"] for r in full["history"]]
    for patience in (1, 2):
        stopped = finetune.run(
            cfg_for("finetune", [*cell, f"classifier.patience={patience}"]),
            tmp_path / f"p{patience}",
        )
        ran = len(stopped["history"])
        assert ran < 12  # it did stop early
        assert replay.replay(val, patience) == (ran, stopped["best_epoch"])
    assert replay.replay(val, None) == (12, full["best_epoch"])
