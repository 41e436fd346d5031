"""The two stages called through `run(cfg, out_dir)` on the synthetic archive."""

import json
import threading
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
    """What the reference's code fixes (docs/reference.md); the GPU-speed differences are the
    "Fidelity to the reference" table of docs/reference.md."""
    c = cfg_for("finetune", ["experiment=seed"], hydra=True)
    assert (c.model.embed_dim, c.model.hidden_size, c.model.num_layers) == (200, 512, 1)
    assert c.model.init == "keras" and c.data.vocab_size is None
    assert (c.data.tokenizer, c.data.truncating, c.data.test_size) == ("keras", "pre", None)
    assert (c.lm.epochs, c.lm.dropout, c.lm.input_dropout, c.lm.head) == (60, 0.3, 0.3, "full")
    assert (c.classifier.epochs, c.classifier.dropout, c.classifier.input_dropout) == (20, 0.5, 0.5)
    assert c.classifier.pooling == "mean" and c.classifier.encoder_lr_factor == 1.0
    assert c.lm.adam_eps == c.classifier.adam_eps == 1e-7
    # the reference's grid; the largest cells first (the launcher starts them in this order)
    grid = c.hydra.sweeper.params
    assert dict(grid) == {"data.train_size": "all,3000,1000", "init": "pretrained,scratch,baseline",
                          "seed": "0,1,2"}  # fmt: skip
    assert list(grid)[0] == "data.train_size"


def test_each_stage_sets_its_own_input_dropout(cfg_for, overrides, tmp_path):
    """Keras' LSTM(dropout=r): 0.3 in the LM, 0.5 in the classifier, on one shared encoder."""
    from lmft.build import encoder_kwargs
    from lmft.data import load_corpus

    ov = [*overrides, "lm.input_dropout=0.3", "classifier.input_dropout=0.5"]
    cfg = cfg_for("finetune", ov)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    assert encoder_kwargs(cfg, corpus, "lm")["input_dropout"] == 0.3
    assert encoder_kwargs(cfg, corpus, "classifier")["input_dropout"] == 0.5
    plain = cfg_for("finetune", overrides)
    assert encoder_kwargs(plain, corpus, "lm")["input_dropout"] == plain.model.input_dropout


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
    assert metrics["history"][-1]["lm/val_ppl"] < metrics["vocab_size"]


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_handoff_pretrained_equals_encoder_pt_scratch_does_not(
    model, cfg_for, overrides, monkeypatch
):
    overrides = [*overrides, f"model={model}"]
    pcfg = cfg_for("pretrain", overrides)
    pretrain.run(pcfg, Path(pcfg.paths.pretrain_dir))
    captured = {}

    def grab(self, *a, **k):  # the classifier's encoder at step 0, before any update
        captured[self_init] = {k: v.clone() for k, v in self.encoder.state_dict().items()}

    monkeypatch.setattr(SentimentClassifier, "on_fit_start", grab)
    saved = torch.load(Path(pcfg.paths.pretrain_dir) / "encoder.pt", weights_only=True)
    assert saved["encoder"].endswith(
        {"lstm": "LSTMEncoder", "transformer": "TransformerEncoder"}[model]
    )
    saved = saved["state_dict"]
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
    assert on_disk["val_majority"] == 0.5 and on_disk["n_val"] == 50  # a balanced hold-out
    best = max(m["history"], key=lambda r: r["val/acc"])
    assert m["test/acc_at_best_val"] == best["test/acc"] and m["val/acc_best"] == best["val/acc"]
    assert len(m["history"]) == cfg.classifier.epochs and (out / "history.csv").exists()
    capsys.readouterr()
    assert finetune.run(cfg, out) == on_disk
    assert "skipping" in capsys.readouterr().out
    changed = cfg_for("finetune", [*overrides, "data.train_size=60", "seed=3", "classifier.lr=0.5"])
    with pytest.raises(LmftError, match="classifier.lr"):
        finetune.run(changed, out)


def test_runs_stored_before_a_setting_was_added_stay_finished(
    pretrained, cfg_for, overrides, capsys
):
    """An LM and a cell whose stored identities lack the settings added since (`ADDED`, as
    lmft's older runs stored them) are still finished with those settings' values, and the
    report reads the values in; another stored value of such a setting is still refused."""
    from omegaconf import OmegaConf

    from lmft.comparison import load_cells
    from lmft.identity import ADDED

    cfg, _ = pretrained
    cell = cfg_for("finetune", [*overrides, "data.train_size=60"])
    out = Path(cell.paths.sweep_dir) / cell.cell
    finetune.run(cell, out)
    files = [Path(cfg.paths.pretrain_dir) / "metrics.json", out / "metrics.json"]
    for f in files:  # as a run made before the settings existed stored it
        m = json.loads(f.read_text())
        for key in ADDED:
            section, name = key.split(".")
            del m["identity"][section][name]
        f.write_text(json.dumps(m))
    capsys.readouterr()
    pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    finetune.run(cell, out)
    said = capsys.readouterr().out
    assert "already finished" in said and "skipping" in said
    (read,), _ = load_cells(out.parent)
    for key, value in ADDED.items():  # the value runs had before the setting existed
        section, name = key.split(".")
        assert read["identity"][section][name] == value
        defaults = "_shared" if section == "data" else "default"  # conf/data/: every dataset's
        assert OmegaConf.load(CONF / section / f"{defaults}.yaml")[name] == value
    m = json.loads(files[0].read_text())
    m["identity"]["lm"]["schedule"] = "one_cycle"
    files[0].write_text(json.dumps(m))
    with pytest.raises(LmftError, match="lm.schedule"):
        pretrain.run(cfg, Path(cfg.paths.pretrain_dir))


def test_same_seed_same_metrics(cfg_for, overrides, tmp_path):
    cfg = cfg_for("finetune", [*overrides, "init=scratch", "data.train_size=60"])
    a = finetune.run(cfg, tmp_path / "a")
    no_model = cfg_for(
        "finetune",
        [*overrides, "init=scratch", "data.train_size=60", "classifier.save_model=false"],
    )
    b = finetune.run(no_model, tmp_path / "b")
    assert (tmp_path / "a/model.pt").exists() and not (tmp_path / "b/model.pt").exists()
    untimed = [
        [{k: v for k, v in r.items() if not k.endswith("_s")} for r in m["history"]] for m in (a, b)
    ]
    assert untimed[0] == untimed[1]
    # each epoch's evaluation time is a part of that epoch's time (time_s: to 0.1 s)
    starts = [0.0] + [r["time_s"] for r in a["history"][:-1]]
    rows = zip(a["history"], starts, strict=True)
    assert all(0 <= r["eval_s"] <= r["time_s"] - t + 0.1 for r, t in rows)
    assert sum(r["eval_s"] for r in a["history"]) > 0
    assert a["test/acc"] == b["test/acc"]


def test_eval_batch_size_is_speed_not_a_result(cfg_for, overrides, tmp_path, capsys):
    """Evaluating 7 texts at a time instead of 2 x 16 gives the same accuracies every epoch and
    on test (losses to float noise), and a finished cell is not rerun for it."""
    from lmft.data import ClassificationDataModule, load_corpus

    cell = [*overrides, "init=scratch", "data.train_size=60"]
    a = finetune.run(cfg_for("finetune", cell), tmp_path / "a")
    small = cfg_for("finetune", [*cell, "classifier.eval_batch_size=7"])
    corpus = load_corpus(small.data, small.pretrain_data)
    for eval_batch, expected in ((None, 32), (7, 7)):
        dm = ClassificationDataModule(corpus, 60, batch_size=16, max_len=64, seed=0,
                                      eval_batch_size=eval_batch)  # fmt: skip
        dm.setup()
        assert [len(b) for b in dm.test_dataloader().batch_sampler][0] == expected
    b = finetune.run(small, tmp_path / "b")
    for ra, rb in zip(a["history"], b["history"], strict=True):
        assert [ra[k] for k in ra if "/acc" in k] == [rb[k] for k in rb if "/acc" in k]
        assert rb["val/loss"] == pytest.approx(ra["val/loss"], abs=1e-4)
    assert (a["test/acc"], a["test/acc_at_best_val"]) == (b["test/acc"], b["test/acc_at_best_val"])
    capsys.readouterr()
    assert finetune.run(small, tmp_path / "a") == a
    assert "skipping" in capsys.readouterr().out


def test_lm_eval_batch_size_is_speed_not_a_result(pretrained, cfg_for, overrides, tmp_path):
    """Validating the LM 5 texts at a time instead of 2 x 16 gives the same validation loss
    every epoch (float noise) and the same training, and a finished LM is not rerun for it."""
    from lmft.build import lm_datamodule
    from lmft.data import load_corpus

    cfg, a = pretrained
    small = cfg_for("pretrain", [*overrides, "lm.eval_batch_size=5"])
    dm = lm_datamodule(small, load_corpus(small.data, small.pretrain_data))
    dm.setup()
    assert {len(b) for b in dm.val_dataloader().batch_sampler} == {5}  # (50 texts)
    b = pretrain.run(small, tmp_path / "b")
    for ra, rb in zip(a["history"], b["history"], strict=True):
        assert rb["lm/train_loss"] == ra["lm/train_loss"]
        assert rb["lm/val_loss"] == pytest.approx(ra["lm/val_loss"], abs=1e-4)
    assert pretrain.run(small, Path(cfg.paths.pretrain_dir)) == a


def test_data_workers_are_speed_not_a_result(pretrained, cfg_for, overrides, tmp_path):
    """Two DataLoader worker processes instead of none give the same LM and the same cell to
    the bit, dropout on, from the second epoch on too (a loader's iterators draw their workers'
    seed from the loader's own generator, not from the one dropout draws from)."""
    cfg, lm = pretrained
    workers = ["data.num_workers=2"]
    lm2 = pretrain.run(cfg_for("pretrain", [*overrides, *workers]), tmp_path / "lm2")
    assert [r["lm/train_loss"] for r in lm2["history"]] == [
        r["lm/train_loss"] for r in lm["history"]
    ]
    cell = [*overrides, "init=scratch", "data.train_size=60", "classifier.save_model=false"]
    a, b = (finetune.run(cfg_for("finetune", cell + w), tmp_path / d)
            for w, d in (([], "a"), (workers, "b")))  # fmt: skip
    assert [r["train/loss"] for r in a["history"]] == [r["train/loss"] for r in b["history"]]
    assert len(a["history"]) > 1 and a["test/acc"] == b["test/acc"]


def test_pretrained_without_pretrain_dir_names_the_command(cfg_for, overrides, tmp_path):
    """Before anything is read: the data is neither read nor tokenized (no cache made)."""
    cfg = cfg_for("finetune", overrides)
    with pytest.raises(LmftError, match="python -m lmft.pretrain experiment=smoke"):
        finetune.run(cfg, tmp_path / "cell")
    assert not (tmp_path / "cell").exists() and not Path(cfg.data.cache_dir).exists()


def test_a_cell_started_before_its_lm_ends_waits_for_it(pretrained, cfg_for, overrides, capsys):
    """init.wait_s: the cell waits while the LM's folder has no metrics.json, trains once it
    appears, and gives up with the pretrain command after its time; waiting changes no result."""
    cfg, _ = pretrained
    lm = Path(cfg.paths.pretrain_dir)
    aside = lm.with_name("aside")
    lm.rename(aside)  # the LM "still trains": its folder is not there yet
    late = threading.Timer(2, aside.rename, [lm])
    late.start()
    waiting = cfg_for("finetune", [*overrides, "data.train_size=40", "init.wait_s=60"])
    out = Path(waiting.paths.sweep_dir) / waiting.cell
    assert out.name == "init=pretrained,n=40,seed=0"  # not a result: not in the folder's name
    m = finetune.run(waiting, out)
    late.join()
    said = capsys.readouterr().out
    assert "waiting up to 60 s for the LM" in said and "the LM finished after" in said
    assert finetune.run(cfg_for("finetune", [*overrides, "data.train_size=40"]), out) == m
    lm.rename(aside)
    short = cfg_for("finetune", [*overrides, "data.train_size=40", "seed=1", "init.wait_s=1"])
    with pytest.raises(LmftError, match=r"finished pretraining run in .* \(waited 1 s\)"):
        finetune.run(short, Path(short.paths.sweep_dir) / short.cell)
    assert not (Path(short.paths.sweep_dir) / short.cell / "metrics.json").exists()


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


ULMFIT_SWITCHES = {
    "model.num_layers": (1, 3),
    "model.embed_dropout": (0.0, 0.02),
    "model.input_dropout": (0.0, 0.25),
    "model.dropout": (0.0, 0.15),
    "model.weight_dropout": (0.0, 0.2),
    "lm.tie_weights": (False, True),
    "lm.schedule": ("constant", "slanted_triangular"),
    "classifier.lr_decay": (1.0, 2.6),
    "classifier.schedule": ("constant", "slanted_triangular"),
    "classifier.gradual_unfreeze": (False, True),
    "classifier.pooling": ("mean", "concat"),
}


def test_ulmfit_switches_are_off_in_seed_and_on_in_ulmfit(cfg_for):
    from omegaconf import OmegaConf

    seed, ulmfit = (
        cfg_for("finetune", [f"experiment={e}"], hydra=True) for e in ("seed", "ulmfit")
    )
    for key, (off, on) in ULMFIT_SWITCHES.items():
        assert (OmegaConf.select(seed, key), OmegaConf.select(ulmfit, key)) == (off, on), key
    assert ulmfit.model.output_size == ulmfit.model.embed_dim  # so the LM can tie weights
    assert ulmfit.trainer.gradient_clip_val  # (seed clips too: a bf16 guard; docs/reference.md)
    sweep = ulmfit.hydra.sweeper.params
    assert sweep["data.train_size"] == "100,300,1000,3000,all" and sweep.seed == "0,1,2,3,4"


def test_gradient_clipping_reaches_the_trainer(cfg_for, overrides, tmp_path):
    from lmft.trainer import make_trainer

    cfg = cfg_for("finetune", [*overrides, "trainer.gradient_clip_val=0.25"])
    assert make_trainer(cfg, tmp_path, 1, []).gradient_clip_val == 0.25


def test_ulmfit_options_run_end_to_end(cfg_for, overrides, ulmfit_overrides, tmp_path):
    awd, tune = ulmfit_overrides
    cfg = cfg_for("pretrain", [*overrides, *awd])
    m = pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    assert m["history"][-1]["lm/val_ppl"] < m["history"][0]["lm/val_ppl"]
    cfg = cfg_for("finetune", [*overrides, *awd, *tune, "data.train_size=60"])
    m = finetune.run(cfg, tmp_path / "cell")
    assert len(m["history"]) == 3 and 0 <= m["test/acc"] <= 1


def test_domain_lm_finetuning_starts_from_another_run(cfg_for, overrides, tmp_path, capsys):
    """general -> domain: the second LM starts from the first (other vocabulary), learns faster."""
    general = cfg_for("pretrain", [*overrides, "name=general"])
    pretrain.run(general, Path(general.paths.pretrain_dir))
    domain = [*overrides, "data.vocab_size=20", "lm.epochs=1"]  # another tokenizer
    warm = cfg_for(
        "pretrain", [*domain, "name=domain", f"lm.init_from={general.paths.pretrain_dir}"]
    )
    cold = cfg_for("pretrain", [*domain, "name=cold"])

    from tokenizers import Tokenizer

    from lmft.build import encoder_kwargs
    from lmft.data import load_corpus

    corpus = load_corpus(warm.data, warm.pretrain_data)
    state = pretrain.start_state(
        Path(warm.lm.init_from), encoder_kwargs(warm, corpus, "lm"), corpus
    )
    assert "words known there" in capsys.readouterr().out
    old_tok = Tokenizer.from_file(str(Path(general.paths.pretrain_dir) / "tokenizer.json"))
    corpus_tok = corpus.tokenizer
    old_emb = torch.load(Path(general.paths.pretrain_dir) / "encoder.pt", weights_only=True)[
        "state_dict"
    ]["embedding.weight"]
    for word, new_id in corpus_tok.get_vocab().items():  # all are known to the general run
        assert torch.equal(state["embedding.weight"][new_id], old_emb[old_tok.token_to_id(word)])
    assert state["embedding.weight"].shape[0] == corpus_tok.get_vocab_size() != old_emb.shape[0]

    w = pretrain.run(warm, Path(warm.paths.pretrain_dir))
    c = pretrain.run(cold, Path(cold.paths.pretrain_dir))
    assert w["val/ppl"] < c["val/ppl"]
    with pytest.raises(LmftError, match="no finished pretraining"):
        bad = cfg_for("pretrain", [*domain, "name=bad", f"lm.init_from={tmp_path}/nothing"])
        pretrain.run(bad, Path(bad.paths.pretrain_dir))


def test_cell_batch_grows_with_the_labeled_set_and_lr_with_its_square_root(cfg_for):
    from lmft.build import cell_batch_and_lr

    c = cfg_for("finetune", ["experiment=seed"]).classifier
    assert cell_batch_and_lr(c, 1000) == (32, 1e-3)  # the reference's, at 1,000 labels
    assert cell_batch_and_lr(c, 3000) == (94, pytest.approx(1e-3 * (94 / 32) ** 0.5))
    assert cell_batch_and_lr(c, 22500) == (256, pytest.approx(1e-3 * 8**0.5))
    assert cell_batch_and_lr(c, 100) == (32, 1e-3)  # never below batch_size
    plain = cfg_for("finetune", ["experiment=quick"]).classifier
    assert cell_batch_and_lr(plain, 22500) == (plain.batch_size, plain.lr)  # off by default


def test_tensorboard_has_one_point_per_epoch_for_every_per_epoch_metric(cfg_for, overrides):
    """Read with TensorBoard's own reader: the final metrics (HParams) must not share a tag
    with the per-epoch curves, or TensorBoard shows those curves as one dot at step 0."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(run_dir: Path) -> dict[str, list]:
        tags = {}
        for events in sorted((run_dir / "tb").rglob("events.out.tfevents.*")):
            acc = EventAccumulator(str(events))
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                tags.setdefault(tag, []).extend(acc.Scalars(tag))
        return tags

    ov = [*overrides, "lm.epochs=3", "classifier.epochs=3", "trainer.log_every_n_steps=2"]

    def run_and_close(stage, cfg, out_dir: Path) -> None:
        # every events file is closed (its writer thread joined) when the run returns, so what
        # is read below is on disk, not in a buffer a background thread flushes minutes later
        before = set(threading.enumerate())
        stage.run(cfg, out_dir)
        assert not [t for t in set(threading.enumerate()) - before if "Writer" in type(t).__name__]

    cfg = cfg_for("pretrain", ov)
    run_and_close(pretrain, cfg, Path(cfg.paths.pretrain_dir))
    lm = scalars(Path(cfg.paths.pretrain_dir))
    for tag in ("lm/val_loss", "lm/val_ppl", "lm/train_loss"):
        assert len(lm[tag]) == 3, (tag, lm[tag])
    cfg = cfg_for("finetune", ov)
    run_and_close(finetune, cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
    clf = scalars(Path(cfg.paths.sweep_dir) / cfg.cell)
    for tag in ("val/acc", "val/loss", "test/acc", "test/loss", "train/loss"):
        assert len(clf[tag]) == 3 and len({e.step for e in clf[tag]}) == 3, (tag, clf[tag])
    assert "final/acc_test_at_best_val" in clf and "final/lm_ppl_val" in clf
    assert not [t for t in lm if t.startswith("final/")]  # LM runs add no HParams row
    assert not set(lm) & set(clf)  # the LM's curves never share a chart with the cells'
    assert len(clf["train/acc"]) == 3 and "lm/train_loss_step" in lm  # LM: also per step
    assert "epoch" not in lm and "epoch" not in clf  # the x axis is the epoch itself
    # diagnostics: what the head reads per epoch and per step, each group's gradient norm
    assert len(clf["features/val_norm"]) == 3 and len(clf["features/val_spread"]) == 3
    assert all(e.value > 0 for e in clf["features/val_norm"])
    steps = {e.step for e in clf["grad_norm/head_step"]}
    assert steps and all(s % 2 == 0 for s in steps)  # at the steps written
    assert steps == {e.step for e in clf["grad_norm/embedding_step"]}
    # ... and each written value is that step's: equal to a run writing every step
    every = cfg_for("finetune", [*ov, "trainer.log_every_n_steps=1"])
    run_and_close(finetune, every, Path(every.paths.sweep_dir) / "every_step")
    each = scalars(Path(every.paths.sweep_dir) / "every_step")
    for tag in ("grad_norm/head_step", "features/train_norm_step"):
        at = {e.step: e.value for e in each[tag]}
        assert [e.value for e in clf[tag]] == pytest.approx([at[e.step] for e in clf[tag]]), tag
    assert {"lr-Adam/embedding", "lr-Adam/lstm1", "lr-Adam/head"} <= set(clf)


def test_lm_snapshots_start_fine_tuning_from_an_earlier_epoch(
    cfg_for, overrides, tmp_path, monkeypatch
):
    import math

    ov = [*overrides, "lm.snapshots=[1]"]
    pcfg = cfg_for("pretrain", ov)
    pdir = Path(pcfg.paths.pretrain_dir)
    lm = pretrain.run(pcfg, pdir)
    assert lm["snapshots"] == [1] and lm["epochs"] == 2
    snap = torch.load(pdir / "snapshots/encoder_epoch1.pt", weights_only=True)["state_dict"]
    final = torch.load(pdir / "encoder.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(snap[k], final[k]) for k in snap)  # a real earlier state
    seen = {}
    monkeypatch.setattr(
        SentimentClassifier,
        "on_fit_start",
        lambda self: seen.update({k: v.clone() for k, v in self.encoder.state_dict().items()}),
    )
    small = ["data.train_size=40", "classifier.epochs=1"]
    cfg = cfg_for("finetune", [*ov, "init.lm_epoch=1", *small])
    m = finetune.run(cfg, tmp_path / "cell")
    assert all(torch.equal(seen[k], snap[k]) for k in snap)
    assert m["lm"]["epochs"] == 1
    assert m["lm"]["val/ppl"] == pytest.approx(math.exp(lm["history"][0]["lm/val_loss"]))
    with pytest.raises(LmftError, match=r"kept the encoder after epochs \[1\] and its last, 2,"):
        finetune.run(cfg_for("finetune", [*ov, "init.lm_epoch=3", *small]), tmp_path / "c3")
    last = finetune.run(cfg_for("finetune", [*ov, "init.lm_epoch=2", *small]), tmp_path / "c2")
    assert last["lm"] == {**m["lm"], "epochs": 2, "val/ppl": lm["val/ppl"]}
    with pytest.raises(LmftError, match=r"lm.snapshots \[5\] are not among the epochs 1..2"):
        pretrain.run(cfg_for("pretrain", [*overrides, "lm.snapshots=[5]"]), tmp_path / "p2")
    with pytest.raises(LmftError, match=r"lm.checkpoint_every=0: use a whole number of epochs"):
        pretrain.run(cfg_for("pretrain", [*overrides, "lm.checkpoint_every=0"]), tmp_path / "p3")
    for bad in ("0", "-1", "2.5", "true"):  # before any data is read, naming the stage's key
        with pytest.raises(LmftError, match=r"lm.bucket_pool=.*: use a whole number of batches"):
            pretrain.run(
                cfg_for("pretrain", [*overrides, f"lm.bucket_pool={bad}"]), tmp_path / "p4"
            )
        bad_cell = cfg_for("finetune", [*ov, *small, f"classifier.bucket_pool={bad}"])
        with pytest.raises(LmftError, match=r"classifier.bucket_pool=.*: use a whole number"):
            finetune.run(bad_cell, tmp_path / "c4")


def test_patience_stops_a_cell_once_validation_stops_improving(cfg_for, overrides, tmp_path):
    """`classifier.patience=p`: a cell ends p epochs after its best validation epoch (the first
    of ties), or at `classifier.epochs`; so it is never judged while still improving."""
    for seed in range(3):
        ov = [*overrides, "init=scratch", "data.train_size=40", f"seed={seed}"]
        cfg = cfg_for("finetune", [*ov, "classifier.epochs=12", "classifier.patience=1"])
        m = finetune.run(cfg, tmp_path / f"cell{seed}")
        accs = [r["val/acc"] for r in m["history"]]
        best = accs.index(max(accs)) + 1
        assert m["best_epoch"] == best
        assert len(accs) == min(best + 1, 12)  # one epoch without a better one, then stop


def test_no_test_curve_reads_validation_alone(cfg_for, overrides, tmp_path):
    """`data.curve_test_size=0`: epochs evaluate validation only; the reported test accuracies
    still read the test set, and the report draws validation alone."""
    ov = [*overrides, "init=scratch", "data.train_size=40", "data.curve_test_size=0"]
    m = finetune.run(cfg_for("finetune", ov), tmp_path / "cell")
    assert all("test/acc" not in r and "val/acc" in r for r in m["history"])
    assert m["n_test_curve"] == 0 and m["test/acc_curve_max"] is None
    assert 0 < m["test/acc_at_best_val"] <= 1


def test_a_cell_another_process_is_training_is_skipped(cfg_for, overrides, tmp_path, capsys):
    """Two processes on one cell: the second skips it (a rerun reads the first one's result)
    instead of training it too; once the lock is free the cell trains."""
    import fcntl

    cfg = cfg_for("finetune", [*overrides, "init=scratch", "data.train_size=40"])
    out = tmp_path / "cell"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # what the first process holds while it trains
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert finetune.run(cfg, out) == {}
    assert "being trained by another process" in capsys.readouterr().out
    assert not (out / "metrics.json").exists()
    assert finetune.run(cfg, out)["train_size"] == 40 and (out / "metrics.json").exists()
