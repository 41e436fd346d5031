"""What TensorBoard shows of a sweep, read through TensorBoard's own HParams backend."""

from pathlib import Path

from lmft import finetune, pretrain


def served_experiment(logdir: Path):
    """The HParams experiment (columns) TensorBoard serves for `logdir`, as its plugin builds it,
    and each row's hparams by run."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, metadata

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    hp = backend_context.Context(
        base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=mux)
    )
    ctx = context.RequestContext()
    found = hp.hparams_metadata(ctx, "")
    experiment = hp.experiment_from_metadata(
        ctx, "", True, found, hp.hparams_from_data_provider(ctx, "", None)
    )
    rows = {
        run: metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        for run, tags in found.items()
        if metadata.SESSION_START_INFO_TAG in tags
    }
    return experiment, rows


def test_hparams_columns_are_every_cells_and_the_varying_ones_lead(cfg_for, overrides):
    ov = [*overrides, "lm.epochs=1", "classifier.epochs=2"]
    cfg = cfg_for("pretrain", ov)
    pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    for init in ("scratch", "baseline", "pretrained"):  # the LM's row last: no row decides
        cfg = cfg_for("finetune", [*ov, f"init={init}", "data.train_size=50"])
        finetune.run(cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
    sweep = Path(cfg.paths.outputs)  # as `make tensorboard` serves it: the LM's run too
    experiment, rows = served_experiment(sweep)

    assert len(rows) == 3  # one row per cell; the LM adds none
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics == [
        "final/acc_test_at_best_val",  # the headline first
        "final/acc_test_last",
        "final/acc_val_best",
        "final/lm_ppl_val",  # though only the pretrained cell has one
    ]
    columns = [(h.name, h.differs) for h in experiment.hparam_infos]
    varying = [name for name, differs in columns if differs]
    assert varying[0] == "_init" and columns[: len(varying)] == [(v, True) for v in varying]
    assert "classifier.adam_eps" in dict(columns) and "classifier.adam_eps" not in varying
    assert "model.hidden_size" in dict(columns)  # a neural setting, though the baseline lacks it
    best = {
        r.hparams["_init"].string_value: r.hparams.get("result.best_epoch") for r in rows.values()
    }
    assert best["baseline"] is None and best["scratch"].string_value in ("1", "2")
