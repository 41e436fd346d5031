"""The real entry points in subprocesses: smoke pretrain -> sweep -> report, resume, errors."""

import csv
import json
import subprocess
import sys
from pathlib import Path


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_smoke_pipeline_sweep_resume_and_report(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    r = cli("lmft.finetune", "experiment=smoke", "init=pretrained", *ov, cwd=tmp_path)
    assert r.returncode == 2 and "python -m lmft.pretrain experiment=smoke" in r.stderr
    assert "make pretrain EXP=smoke ARGS='data.archive=" in r.stderr  # for a make user too
    assert "Traceback" not in r.stderr

    r = cli("lmft.pretrain", "experiment=smoke", *ov, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pdir = tmp_path / "outputs/pretrain/smoke"
    assert {"encoder.pt", "tokenizer.json", "metrics.json"} <= {p.name for p in pdir.iterdir()}

    r = cli("lmft.finetune", "-m", "experiment=smoke", *ov, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sweep = tmp_path / "outputs/sweeps/smoke"
    cells = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert cells == [
        f"init={i},n={n},seed=0" for i in ("baseline", "pretrained", "scratch") for n in (50, "all")
    ]

    # interrupted sweep: one cell lost its metrics -> only that one reruns
    (sweep / "init=scratch,n=50,seed=0/metrics.json").unlink()
    r = cli("lmft.finetune", "-m", "experiment=smoke", *ov, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.count("already finished") == 5
        and r.stdout.count("[finetune] init=scratch,n=50") == 1
    )

    anchor = "+data.anchors.Mine=99.5"  # a user's own published number
    r = cli("lmft.report", "experiment=smoke", anchor, f"paths.outputs={tmp_path}/outputs",
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = tmp_path / "outputs/reports/smoke"
    assert not (report / "report.log").exists()  # (it was always empty)
    # what the report rests on: the LM's corpus, the data file, the splits, the commit; the
    # size that is all of the labeled pool said so; the model to use
    md = (report / "summary.md").read_text()
    lm = json.loads((pdir / "metrics.json").read_text())["corpus"]
    assert f"read {lm['texts']:,} texts ({lm['tokens']:,} tokens)" in md and lm["texts"] == 190
    assert "perplexity" in md and "on the task's validation texts" in md
    assert "softmax chunked (torch): no CUDA GPU" in md  # how the LM's loss was computed
    archive = next(o for o in ov if o.startswith("data.archive=")).split("=", 1)[1]
    assert f"- data files: `{Path(archive).resolve()}`" in md
    assert "- validation: 50 texts, every cell" in md and "- test: 240 texts, every cell" in md
    assert "- code: lmft commit `" in md and "`: 6 cells" in md
    assert "| scratch | 190 (all) |" in md and "| scratch | 50 |" in md
    best = md.split("Best neural model by validation accuracy: `")[1].split("`")[0]
    assert (Path(best) / "model.pt").exists() and f'lmft-predict "{best}"' in md
    assert "| Mine | 99.5 |" in md
    rows = list(csv.DictReader((report / "summary.csv").read_text().splitlines()))
    assert {(x["init"], x["train_size"]) for x in rows} == {
        (i, n)
        for i in ("pretrained", "scratch", "baseline")
        for n in ("50", "190")  # all = 240 - 50 (val)
    }
    assert {"n_seeds", "test_acc_mean", "test_acc_std"} <= set(rows[0])
    for f in (
        "learning_curve.png",
        "epochs.png",
        "summary.md",
        "gaps.csv",
        "baseline_gaps.csv",
        "histories.csv",
    ):
        assert (report / f).stat().st_size > 0, f
    assert "Gap = pretrained" in r.stdout and "Against the linear baseline" in r.stdout
    recorded = json.loads((report / "cells.json").read_text())
    assert len(recorded) == 6 and all(
        c["provenance"]["torch"] and c["identity"]["data"] for c in recorded
    )


def test_bad_input_is_one_clear_line(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    r = cli(
        "lmft.finetune", "experiment=smoke", "init=scratch", "data.train_size=-3", *ov, cwd=tmp_path
    )
    assert r.returncode == 2 and "data.train_size=-3" in r.stderr and "Traceback" not in r.stderr
    r = cli("lmft.pretrain", "experiment=smoke", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert r.returncode == 2 and "IMDB archive not found" in r.stderr
    r = cli("lmft.report", "experiment=smoke", f"paths.outputs={tmp_path}/none", cwd=tmp_path)
    assert r.returncode == 2 and "No sweep" in r.stderr


def test_joblib_launcher_gives_the_same_cells(overrides, tmp_path):
    """Two cells at a time through hydra-joblib-launcher: same cells, same metrics."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    assert cli("lmft.pretrain", "experiment=smoke", *ov, cwd=tmp_path).returncode == 0
    results = {}
    for name, extra in (
        ("basic", []),
        ("joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
    ):
        sweep = tmp_path / name
        r = cli(
            "lmft.finetune",
            "-m",
            "experiment=smoke",
            *ov,
            f"paths.sweep_dir={sweep}",
            "trainer.num_threads=1",
            *extra,
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        results[name] = {
            p.parent.name: json.loads(p.read_text())["test/acc"]
            for p in sweep.glob("*/metrics.json")
        }
    assert len(results["basic"]) == 6 and results["joblib"] == results["basic"]


def test_refused_sizes_leave_no_cell_folder(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    for size in ("-5", "lots"):
        r = cli("lmft.finetune", "experiment=smoke", "init=scratch", f"data.train_size={size}",
                *ov, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 2 and "data.train_size" in r.stderr, r.stderr
        assert "Reading" not in r.stdout + r.stderr  # refused before the data is read
    r = cli("lmft.finetune", "-m", "experiment=smoke", "init=scratch", "data.train_size=50,lots",
            *ov, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "data.train_size='lots'" in r.stderr, r.stderr
    assert "Reading" not in r.stdout + r.stderr
    sweep = tmp_path / "outputs/sweeps/smoke"
    assert not sweep.exists()  # a sweep refused at its first cell leaves no folder
    r = cli("lmft.finetune", "-m", "experiment=smoke", "init=pretrained", *ov, cwd=tmp_path)
    assert r.returncode == 2 and "python -m lmft.pretrain" in r.stderr
    assert not sweep.exists()  # nor does one whose LM is missing


def test_every_cell_of_a_sweep_is_checked_before_the_first_trains(overrides, tmp_path):
    """A size beyond the pool, or a missing LM, in a later cell refuses the sweep before its
    first cell trains (Hydra composes each cell only as it starts)."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    sweep = tmp_path / "outputs/sweeps/smoke"
    for grid in (["init=scratch", "data.train_size=30,100000"], ["init=scratch,pretrained"]):
        r = cli("lmft.finetune", "-m", "experiment=smoke", *grid, *ov, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "data.train_size=100000 is outside" in r.stderr or "lmft.pretrain" in r.stderr
        assert "[finetune]" not in r.stdout and not sweep.exists()  # no cell trained


def test_other_lm_settings_remedy_works_as_printed(overrides, tmp_path):
    """A finished pretraining with other LM settings: the printed remedy (a new name for
    both stages) runs, and fine-tuning then finds its LM."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    assert cli("lmft.pretrain", "experiment=smoke", *ov, cwd=tmp_path).returncode == 0
    cell = ["experiment=smoke", "init=pretrained", "lm.max_len=32", *ov]
    r = cli("lmft.finetune", *cell, cwd=tmp_path)
    assert r.returncode == 2 and "lm.max_len" in r.stderr
    printed = r.stderr.split("new name (`")[1].split("`")[0].split()
    assert printed[:3] == ["python", "-m", "lmft.pretrain"] and "name=NEW" in printed
    assert "lm.max_len=32" in printed
    assert cli(*printed[2:], cwd=tmp_path).returncode == 0
    r = cli("lmft.finetune", *cell, "name=NEW", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_test_size_beyond_the_test_set_is_announced(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    r = cli("lmft.finetune", "experiment=smoke", "init=scratch", "data.test_size=100000", *ov,
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "a test size of 100000 asked for, but the test set has 240 texts" in r.stderr


def test_any_key_is_a_sweep_axis_with_a_folder_per_combination(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    assert cli("lmft.pretrain", "experiment=smoke", *ov, cwd=tmp_path).returncode == 0
    sweep = ["-m", "experiment=smoke", "data.train_size=50", "classifier.pooling=mean,max", *ov]
    r = cli("lmft.finetune", *sweep, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cells = tmp_path / "outputs/sweeps/smoke"
    # the baseline reads no classifier setting: one folder, trained once, for both recipes
    assert sorted(p.name for p in cells.glob("*/metrics.json") for p in [p.parent]) == [
        "init=baseline,n=50,seed=0",
        *(f"init={i},n=50,seed=0,classifier.pooling={p}"
          for i in ("pretrained", "scratch") for p in ("max", "mean")),
    ]  # fmt: skip
    assert r.stdout.count("already finished") == 1
    r = cli("lmft.finetune", *sweep, cwd=tmp_path)  # a rerun skips all six jobs
    assert r.returncode == 0 and r.stdout.count("already finished") == 6
    r = cli("lmft.report", "experiment=smoke", f"paths.outputs={tmp_path}/outputs", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| classifier.pooling=max | pretrained | 50 |" in r.stdout
    assert "Best recipe against best recipe" in r.stdout
    assert (tmp_path / "outputs/reports/smoke/best_recipes.csv").exists()


def test_exit_codes_are_as_the_readme_says(overrides, tmp_path):
    """lmft's own errors: one `error:` line, exit 2. Hydra's (unknown preset or key): exit 1,
    with Hydra's message listing what is valid."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    r = cli("lmft.finetune", "experiment=smok", *ov, cwd=tmp_path)
    assert r.returncode == 1 and "smoke" in r.stderr and "error: " not in r.stderr
    r = cli("lmft.finetune", "experiment=smoke", "classifier.lrr=0.1", *ov, cwd=tmp_path)
    assert r.returncode == 1 and "lrr" in r.stderr
    r = cli("lmft.finetune", "experiment=smoke", "init=pretrained", *ov, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_transformer_goes_through_every_stage(overrides, tmp_path):
    """model=transformer: pretrain, a sweep of both arms, the report and predict, as the LSTM."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    ov += ["experiment=smoke", "model=transformer", "name=smoke_tf", "model.num_layers=2"]
    assert cli("lmft.pretrain", *ov, cwd=tmp_path).returncode == 0
    r = cli(
        "lmft.finetune", "-m", *ov, "data.train_size=50", "init=pretrained,scratch", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    sweep = tmp_path / "outputs/sweeps/smoke_tf"
    cells = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    suffix = "model.num_layers=2,model=transformer"  # the result-changing overrides, sorted
    assert cells == [f"init={i},n=50,seed=0,{suffix}" for i in ("pretrained", "scratch")]
    r = cli(
        "lmft.report",
        "experiment=smoke",
        "name=smoke_tf",
        f"paths.outputs={tmp_path}/outputs",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "TransformerEncoder" in (tmp_path / "outputs/reports/smoke_tf/summary.md").read_text()
    r = cli(
        "lmft.predict", str(sweep / cells[0]), "great superb film", "awful dull mess", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


def test_the_report_starts_without_torch_or_lightning(tmp_path):
    code = "import sys, lmft.report; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_a_finished_cell_is_skipped_without_torch_or_lightning(tmp_path):
    # A resumed sweep's finished cells cost a job slot only briefly.
    conf = str(Path(__file__).parents[1] / "conf")
    code = f"""
import json, sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from lmft import finetune
from lmft.identity import run_identity
with initialize_config_dir(config_dir={conf!r}, version_base="1.3"):
    cfg = compose("finetune", overrides=["experiment=smoke", "init=scratch"])
cell = Path("cell")
cell.mkdir()
done = {{"identity": run_identity(cfg, "finetune"), "test/acc": 0.5}}
(cell / "metrics.json").write_text(json.dumps(done))
assert finetune.run(cfg, cell) == done
print(sorted({{"torch", "lightning"}} & set(sys.modules)))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already finished" in r.stdout and r.stdout.splitlines()[-1] == "[]", r.stdout


def test_names_that_leave_the_outputs_folder_are_refused_before_anything_is_written(
    overrides, tmp_path
):
    ov = [o for o in overrides if not o.startswith(("experiment=", "paths.outputs="))]
    ov += ["experiment=smoke", f"paths.outputs={tmp_path}/out/outputs"]
    for stage, args in (
        ("lmft.pretrain", ["name=../../escape"]),
        ("lmft.finetune", ["-m", "name=../../escape"]),
        ("lmft.finetune", ["lm_name=a/b", "init=pretrained"]),
        ("lmft.report", ["name=.."]),
    ):
        r = cli(stage, *args, *ov, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, stage
        assert r.stderr.startswith("error: ") and "one folder name under paths.outputs" in r.stderr
    assert not (tmp_path / "out/escape").exists() and not (tmp_path / "escape").exists()
    made = tmp_path / "out/outputs"
    assert not [p for p in made.rglob("*") if p.is_file()]  # nothing written, no cell folder


def test_the_token_cache_follows_paths_outputs(cfg_for, tmp_path):
    cfg = cfg_for("finetune", ["experiment=smoke", f"paths.outputs={tmp_path}/elsewhere"])
    assert cfg.data.cache_dir == f"{tmp_path}/elsewhere/cache"
