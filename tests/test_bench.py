"""The bench (bench/bench.py) times the models the presets train."""

import importlib.util
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from lmft.models import LanguageModel, SentimentClassifier

ROOT = Path(__file__).parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("lmft_bench", ROOT / "bench/bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
