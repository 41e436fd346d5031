"""The GPU harness (bench/gpu_check.sh) run as a dry run on the CPU (TRAINER=cpu, preset smoke,
the synthetic archive): its scheduling, its deadline and what it brings back are the GPU run's."""

import csv
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("pgrep")), reason="needs bash and pgrep"
)


def gpu_check(
    tmp_path: Path, archive: Path, failing: bool | None = False, **env: str
) -> tuple[str, Path]:
    """Run the harness with FAST=1 into tmp_path; its log and its runs.tar.gz. Its exit status
    must be 1 if `failing`, 0 if not, either if None."""
    out = tmp_path / "out"
    run_env = {
        **os.environ,
        "PYTHON": sys.executable,
        "TRAINER": "cpu",
        "EXP": "smoke",
        "FAST": "1",
        "JOBS": "2",
        "OUT": str(out),
        "WORK": str(tmp_path / "work"),
        "SITE": str(tmp_path / "site"),
        "LMFT_IMDB_ARCHIVE": str(archive),
        **env,
    }
    r = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=ROOT, env=run_env, capture_output=True, timeout=600
    )
    log = (out / "log.txt").read_text()
    assert r.returncode in ((0, 1) if failing is None else (int(failing),)), log[-3000:]
    return log, out / "runs.tar.gz"


def survivors(tmp_path: Path) -> list[str]:
    """Processes still running with this test's folder on their command line."""
    r = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True)
    return r.stdout.splitlines()


def test_the_fast_protocol_runs_every_arm_and_brings_back_cells_histories_and_report(
    fake_archive, tmp_path
):
    log, runs = gpu_check(
        tmp_path,
        fake_archive,
        B32_EPOCHS="1",
        B32_SIZE="50",
        ABLATION="1",
        ABLATION_SIZE="50",
        SNAPSHOTS="[1]",
        BUDGET_S="3000",  # every extra stage runs, however slow the machine
    )
    assert not [line for line in log.splitlines() if "[gpu-check" in line and "failed" in line], (
        log[-3000:]
    )
    assert "protocol smoke: pretrain" in log and "total" in log
    with tarfile.open(runs) as tar:
        names = tar.getnames()

        def rows(report):
            return list(csv.DictReader(io.TextIOWrapper(tar.extractfile(f"runs/reports/{report}"))))

        cells, b32_gaps = rows("smoke/cells.csv"), rows("smoke_b32/gaps.csv")
        ablation_gaps = rows("smoke_ablation/gaps.csv")
        histories = tar.extractfile("runs/reports/smoke/histories.csv").read().decode()
    finished = {
        n.split("/")[3] for n in names if n.endswith("/metrics.json") and "/sweeps/smoke/" in n
    }
    grid = {
        f"init={i},n={n},seed=0" for i in ("pretrained", "scratch", "baseline") for n in (50, "all")
    }
    assert finished == grid
    assert {c["init"] for c in cells} == {"pretrained", "scratch", "baseline"} and len(cells) == 6
    assert "epoch" in histories.splitlines()[0] and len(histories.splitlines()) > 4
    assert not [n for n in names if n.endswith((".pt", ".ckpt"))], "weights are not packed"
    # B32_SIZE: the batch-32 LM's pretrained cells, paired with the protocol's scratch cells
    assert [(g["labels"], g["n_pairs"]) for g in b32_gaps] == [("50", "1")]
    # ABLATION: the LM budgets (the 1-epoch snapshot, the 2-epoch LM) x pooling at 50 labels,
    # pooling with all labels; 3 seeds each. The protocol's seed-0 cells are its mean-pooling
    # ones, copied, not trained again
    all_ = next(g["labels"] for g in ablation_gaps if g["labels"].endswith("(all)"))
    measured = sorted(
        (g["labels"], g["lm_epochs"], g["recipe"], g["n_pairs"]) for g in ablation_gaps
    )
    assert measured == sorted(
        (n, e, f"classifier.pooling={p}", "3")
        for n, e in (("50", "1"), ("50", "2"), (all_, "2"))
        for p in ("concat", "mean")
    )
    for arm in ("pretrained", "scratch"):
        copied = f"smoke_ablation/init={arm},n=50,seed=0,classifier.pooling=mean"
        assert f"{copied} already finished" in log
    # bench/timeline.py's table: one line per cell
    assert sum(f"{cell} " in log for cell in grid) == len(grid)
    assert not survivors(tmp_path)


def test_a_deadline_stops_the_sweeps_says_so_and_still_packs(fake_archive, tmp_path):
    """A deadline is no failure. At 1 s most often no cell has finished, so there is no report:
    that, and only that, may fail."""
    log, runs = gpu_check(tmp_path, fake_archive, failing=None, DEADLINE_S="1")
    assert "DEADLINE_S=1: the sweeps stop here" in log
    assert "arm's sweep stopped at DEADLINE_S" in log
    last = log.splitlines()[-1]
    assert "[gpu-check" in last and last.endswith(("] done", "] done; failed: report")), last
    if "report failed" in log:  # nothing to read, by how far the sweeps got
        assert "No sweep at" in log or "No finished cells" in log
    with tarfile.open(runs) as tar:
        assert "runs/pretrain/smoke/metrics.json" in tar.getnames()
    assert not survivors(tmp_path), "the deadline left sweep processes running"


def test_a_failed_stage_is_said_and_named_at_the_end_and_the_exit_status_is_1(
    fake_archive, tmp_path
):
    """Every sweep fails (an override of a key that does not exist) while the LM trains: each
    failure is said, the log's last line names them all, and the harness exits with 1."""
    log, _ = gpu_check(tmp_path, fake_archive, failing=True, GRID="classifier.no_such_key=1")
    for stage in ("pretrained arm's sweep", "scratch arm's sweep", "baseline arm's sweep"):
        assert f"{stage} failed" in log
    assert "no_such_key" in log  # Hydra's error reaches the log
    last = log.splitlines()[-1]
    assert "[gpu-check" in last and "done; failed: " in last and "baseline arm's sweep" in last
    assert not survivors(tmp_path)
