"""Real faults: processes killed with SIGKILL mid-run, then the same command again."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run_until(args: list[str], cwd: Path, marker: str) -> str:
    """Start `python -m ...args`, SIGKILL it when a stdout line contains `marker`."""
    p = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    for line in p.stdout:
        seen.append(line)
        if marker in line:
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def test_pretrain_killed_resumes_to_the_same_epoch_count(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    args = ["lmft.pretrain", "experiment=smoke", "lm.epochs=6", *ov]
    run_until(args, tmp_path, "epoch 3/6")
    pdir = tmp_path / "outputs/pretrain/smoke"
    assert (pdir / "checkpoints/last.ckpt").exists() and not (pdir / "metrics.json").exists()
    r = subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout and "epoch 1/6" not in r.stdout  # resumed, not restarted
    m = json.loads((pdir / "metrics.json").read_text())
    assert m["epochs"] == 6 and [h["epoch"] for h in m["history"]] == [1, 2, 3, 4, 5, 6]


def test_sweep_killed_reruns_only_unfinished_cells(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    assert (
        subprocess.run(
            [sys.executable, "-m", "lmft.pretrain", "experiment=smoke", *ov],
            cwd=tmp_path,
            capture_output=True,
            timeout=600,
        ).returncode
        == 0
    )
    sweep = ["lmft.finetune", "-m", "experiment=smoke", *ov]
    run_until(sweep, tmp_path, "[finetune] init=pretrained,n=all")  # 2 of 4 cells done
    cells = tmp_path / "outputs/sweeps/smoke"
    done = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/metrics.json")}
    assert set(done) == {"init=pretrained,n=50,seed=0", "init=pretrained,n=all,seed=0"}
    r = subprocess.run(
        [sys.executable, "-m", *sweep], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("already finished") == 2
    after = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/metrics.json")}
    assert len(after) == 4 and all(after[k] == v for k, v in done.items())  # untouched
