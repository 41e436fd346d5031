"""Scale-out through existing engines: Lightning DDP (2 CPU processes, gloo) and Hydra launchers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, read_write

# dropout off: one process and two then differ only by floating-point reduction order
EXACT = ["lm.dropout=0", "classifier.dropout=0", "trainer.num_threads=1"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture
def ov(overrides):
    return [o for o in overrides if not o.startswith(("experiment=", "paths.outputs="))] + EXACT


def metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def cell_dir(sweep: Path, prefix: str) -> Path:
    """The one cell folder whose name starts with `prefix` (overrides follow in the name)."""
    (found,) = sweep.glob(f"{prefix},*")
    return found


def test_ddp_two_cpu_processes_match_one_and_write_once(ov, tmp_path):
    runs = {}
    for name, extra in (("one", []), ("ddp", DDP)):
        out = tmp_path / name
        args = ["experiment=smoke", *ov, f"paths.outputs={out}", *extra]
        cli("lmft.pretrain", *args, cwd=tmp_path)
        cli("lmft.finetune", *args, "data.train_size=all", cwd=tmp_path)
        runs[name] = out
    one, ddp = runs["one"], runs["ddp"]
    lm = [metrics(r / "pretrain/smoke/metrics.json") for r in (one, ddp)]
    assert lm[1]["val/loss"] == pytest.approx(lm[0]["val/loss"], rel=0.01)
    cells = [cell_dir(r / "sweeps/smoke", "init=pretrained,n=all,seed=0") for r in (one, ddp)]
    a, b = (metrics(c / "metrics.json") for c in cells)
    for k in ("n_val", "n_test", "train_size"):  # every example, not one shard
        assert a[k] == b[k], k
    for k in ("test/acc", "val/acc", "test/acc_at_best_val"):
        assert b[k] == pytest.approx(a[k], abs=0.02), k
    # rank 0 alone writes: one metrics file, one encoder, no rank-1 results anywhere
    assert len(list(ddp.rglob("metrics.json"))) == len(list(one.rglob("metrics.json"))) == 2
    assert (cells[1] / "train_ddp_process_1.log").exists()  # the second process did run


def test_ddp_inside_a_multirun_runs_each_job_once(ov, tmp_path):
    args = ["experiment=smoke", *ov, f"paths.outputs={tmp_path}/out"]
    cli("lmft.pretrain", *args, cwd=tmp_path)
    r = cli("lmft.finetune", "-m", *args, *DDP, "init=scratch", cwd=tmp_path)
    sweep = tmp_path / "out/sweeps/smoke"
    cells = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # trainer=ddp is not in the name; nor is lm.dropout: a scratch cell never reads the LM
    extra = "classifier.dropout=0,trainer.precision=32-true"
    assert cells == [f"init=scratch,n={n},seed=0,{extra}" for n in (50, "all")]
    for c in cells:
        assert (sweep / c / "metrics.json").exists()
    assert r.stdout.count("[finetune] init=scratch") == 2  # each job trained once
    # nothing else was written: no stray sweep from a re-launched child
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]


@pytest.mark.parametrize("launcher", ["joblib", "local"])
def test_launchers_give_the_basic_launchers_cells_and_report(ov, tmp_path, launcher):
    args = ["experiment=smoke", *ov, f"paths.outputs={tmp_path}/out"]
    cli("lmft.pretrain", *args, cwd=tmp_path)
    reports = {}
    for name, extra in (("basic", []), (launcher, [f"hydra/launcher={launcher}"])):
        sweep = tmp_path / name
        cli("lmft.finetune", "-m", *args, f"paths.sweep_dir={sweep}", *extra, cwd=tmp_path)
        cli(
            "lmft.report",
            *args,
            f"sweep_dir={sweep}",
            f"report_dir={tmp_path}/r{name}",
            cwd=tmp_path,
        )
        reports[name] = (tmp_path / f"r{name}/summary.csv").read_text()
        assert len(list(sweep.glob("*/metrics.json"))) == 6  # 2 arms + the baseline x 2 sizes
    assert reports[launcher] == reports["basic"]
    if launcher == "local":  # submitit's submission files, as a cluster would get them
        assert list((tmp_path / "local/.submitit").glob("*/*_submitted.pkl"))


def test_ddp_under_joblib_is_a_clear_error(ov, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmft.finetune",
            "-m",
            "experiment=smoke",
            *ov,
            f"paths.outputs={tmp_path}/out",
            *DDP,
            "hydra/launcher=joblib",
            "init=scratch",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode != 0 and "needs the basic launcher" in r.stderr


def test_slurm_launcher_config(cfg_for):
    cfg = cfg_for(
        "finetune",
        [
            "experiment=seed",
            "trainer=ddp",
            "trainer.devices=4",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
        ],
        hydra=True,
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 4  # one task per GPU
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] > 0
    assert launcher["array_parallelism"] >= 1


def test_job_gpu_resolver_spreads_jobs_over_gpus(cfg_for):
    from hydra.core.hydra_config import HydraConfig

    from lmft.resolvers import register

    register()  # as every entry point does

    cfg = cfg_for("finetune", ["experiment=smoke", "trainer.devices=${lmft.job_gpu:4}"], hydra=True)
    seen = []
    for num in range(6):
        with read_write(cfg.hydra.job):
            cfg.hydra.job.num = num
        HydraConfig.instance().set_config(cfg)
        seen.append(OmegaConf.to_container(cfg.trainer, resolve=True)["devices"])
    assert seen == [[0], [1], [2], [3], [0], [1]]
