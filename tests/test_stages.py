"""The two stages called through `run(cfg, out_dir)` on the synthetic archive."""

import json
from pathlib import Path

import pytest
import torch

from lmft import finetune, pretrain
from lmft.errors import LmftError
from lmft.models import SentimentClassifier

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("stage", ["pretrain", "finetune", "report"])
@pytest.mark.parametrize("exp", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_config_composes(cfg_for, stage, exp):
    cfg = cfg_for(stage, [f"experiment={exp}"])
    assert cfg.name == exp and cfg.paths.pretrain_dir == f"outputs/pretrain/{exp}"


def test_seed_preset_is_the_reference(cfg_for):
    c = cfg_for("finetune", ["experiment=seed"], hydra=True)
    assert (c.model.embed_dim, c.model.hidden_size, c.model.num_layers) == (200, 512, 1)
    assert (c.lm.epochs, c.lm.batch_size, c.lm.dropout, c.lm.head, c.lm.lr) == (
        60,
        32,
        0.3,
        "full",
        1e-3,
    )
    assert (c.classifier.epochs, c.classifier.dropout, c.classifier.pooling) == (20, 0.5, "mean")
    assert c.classifier.encoder_lr_factor == 1.0 and c.data.vocab_size is None
    assert c.trainer.precision == "32-true"
    assert c.hydra.sweeper.params["data.train_size"] == "1000,3000,all"


def test_unknown_keys_and_presets_are_errors(cfg_for):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        cfg_for("finetune", ["experiment=smoke", "classifier.lrr=0.1"])
    with pytest.raises(ConfigCompositionException, match="smoke"):
        cfg_for("finetune", ["experiment=smok"])  # the message lists the valid presets


@pytest.fixture
def pretrained(cfg_for, overrides):
    cfg = cfg_for("pretrain", overrides)
    metrics = pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    return cfg, metrics


def test_pretrain_writes_handoff_files(pretrained):
    cfg, metrics = pretrained
    d = Path(cfg.paths.pretrain_dir)
    for f in ("encoder.pt", "tokenizer.json", "metrics.json", "history.csv"):
        assert (d / f).exists(), f
    assert list((d / "tb").glob("events.out.tfevents.*"))
    blob = torch.load(d / "encoder.pt", weights_only=True)
    assert blob["kwargs"]["hidden_size"] == cfg.model.hidden_size
    assert blob["tokenizer"] == metrics["tokenizer"]
    assert metrics["epochs"] == cfg.lm.epochs and len(metrics["history"]) == cfg.lm.epochs
    assert metrics["history"][-1]["val/ppl"] < metrics["vocab_size"]


def test_handoff_pretrained_equals_encoder_pt_scratch_does_not(
    pretrained, cfg_for, overrides, monkeypatch
):
    captured = {}

    def grab(self, *a, **k):  # the classifier's encoder at step 0, before any update
        captured[self_init] = {k: v.clone() for k, v in self.encoder.state_dict().items()}

    monkeypatch.setattr(SentimentClassifier, "on_fit_start", grab)
    saved = torch.load(Path(pretrained[0].paths.pretrain_dir) / "encoder.pt", weights_only=True)[
        "state_dict"
    ]
    for self_init in ("pretrained", "scratch"):
        cfg = cfg_for(
            "finetune",
            [*overrides, f"init={self_init}", "data.train_size=40", "classifier.epochs=1"],
        )
        finetune.run(cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
    assert all(torch.equal(captured["pretrained"][k], saved[k]) for k in saved)
    assert not any(torch.equal(captured["scratch"][k], saved[k]) for k in saved if "weight" in k)


def test_finetune_metrics_and_skip(pretrained, cfg_for, overrides, capsys):
    cfg = cfg_for("finetune", [*overrides, "data.train_size=60", "seed=3"])
    out = Path(cfg.paths.sweep_dir) / cfg.cell
    assert out.name == "init=pretrained,n=60,seed=3"
    m = finetune.run(cfg, out)
    on_disk = json.loads((out / "metrics.json").read_text())
    for k in (
        "init",
        "train_size",
        "seed",
        "test/acc",
        "test/acc_at_best_val",
        "val/acc_best",
        "history",
    ):
        assert k in on_disk, k
    assert (on_disk["init"], on_disk["train_size"], on_disk["seed"]) == ("pretrained", 60, 3)
    best = max(m["history"], key=lambda r: r["val/acc"])
    assert m["test/acc_at_best_val"] == best["test/acc"] and m["val/acc_best"] == best["val/acc"]
    assert len(m["history"]) == cfg.classifier.epochs and (out / "history.csv").exists()
    capsys.readouterr()
    assert finetune.run(cfg, out) == on_disk
    assert "skipping" in capsys.readouterr().out
    changed = cfg_for("finetune", [*overrides, "data.train_size=60", "seed=3", "classifier.lr=0.5"])
    with pytest.raises(LmftError, match="classifier.lr"):
        finetune.run(changed, out)


def test_same_seed_same_metrics(cfg_for, overrides, tmp_path):
    cfg = cfg_for("finetune", [*overrides, "init=scratch", "data.train_size=60"])
    a = finetune.run(cfg, tmp_path / "a")
    b = finetune.run(cfg, tmp_path / "b")
    untimed = [
        [{k: v for k, v in r.items() if k != "time_s"} for r in m["history"]] for m in (a, b)
    ]
    assert untimed[0] == untimed[1]
    assert a["test/acc"] == b["test/acc"]


def test_pretrained_without_pretrain_dir_names_the_command(cfg_for, overrides, tmp_path):
    cfg = cfg_for("finetune", overrides)
    with pytest.raises(LmftError, match="python -m lmft.pretrain experiment=smoke"):
        finetune.run(cfg, tmp_path / "cell")
    assert not (tmp_path / "cell" / "metrics.json").exists()


def test_mismatched_or_truncated_encoder_is_a_clear_error(pretrained, cfg_for, overrides, tmp_path):
    cfg, _ = pretrained
    other_model = cfg_for("finetune", [*overrides, "model.hidden_size=24"])
    with pytest.raises(
        LmftError, match="pretraining made with other settings.*hidden_size: 32 != 24"
    ):
        finetune.run(other_model, tmp_path / "a")
    enc = Path(cfg.paths.pretrain_dir) / "encoder.pt"
    enc.write_bytes(enc.read_bytes()[:1000])
    with pytest.raises(LmftError, match="unreadable or truncated"):
        finetune.run(cfg_for("finetune", overrides), tmp_path / "b")


def test_nan_loss_stops_with_the_step(cfg_for, overrides, tmp_path, monkeypatch):
    from lmft.models import classifier

    real, calls = classifier.F.binary_cross_entropy_with_logits, []

    def poisoned(logits, labels):  # the 4th training loss is NaN
        calls.append(1)
        loss = real(logits, labels)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(classifier.F, "binary_cross_entropy_with_logits", poisoned)
    cfg = cfg_for("finetune", [*overrides, "init=scratch"])
    with pytest.raises(LmftError, match="loss became nan at step 3"):
        finetune.run(cfg, tmp_path / "nan")
    assert not (tmp_path / "nan" / "metrics.json").exists()
