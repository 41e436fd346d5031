"""Faults: processes killed with SIGKILL mid-run (or the state such a kill leaves), then the same
command again."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    run_until(sweep, tmp_path, "[finetune] init=pretrained,n=all")  # 2 of 6 cells done
    cells = tmp_path / "outputs/sweeps/smoke"
    done = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/metrics.json")}
    assert set(done) == {"init=pretrained,n=50,seed=0", "init=pretrained,n=all,seed=0"}
    r = subprocess.run(
        [sys.executable, "-m", *sweep], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("already finished") == 2
    after = {p.parent.name: p.stat().st_mtime_ns for p in cells.glob("*/metrics.json")}
    assert len(after) == 6 and all(after[k] == v for k, v in done.items())  # untouched


def test_pretrain_stopped_after_its_last_checkpoint_finishes_on_rerun(overrides, tmp_path):
    """Stopped between the last epoch's last.ckpt and the hand-off files: the rerun trains nothing
    more (and so logs no metric) yet must write them from the restored history. The state is made
    by deleting what a finished run writes after its last checkpoint (every write is atomic, so a
    kill leaves each file whole or absent): killing a process inside that few-millisecond window
    was a race the kill could lose on a loaded machine."""
    ov = [o for o in overrides if not o.startswith("experiment=")]
    args = ["lmft.pretrain", "experiment=smoke", "lm.epochs=2", *ov]
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run().returncode == 0
    pdir = tmp_path / "outputs/pretrain/smoke"
    for name in ("metrics.json", "history.csv", "encoder.pt", "tokenizer.json"):
        (pdir / name).unlink()
    r = run()
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout
    assert "epoch 1/2" not in r.stdout and "epoch 2/2" not in r.stdout  # nothing retrained
    m = json.loads((pdir / "metrics.json").read_text())
    assert m["epochs"] == 2 and m["val/loss"] == m["history"][-1]["lm/val_loss"]
    assert (pdir / "encoder.pt").exists() and (pdir / "tokenizer.json").exists()


@pytest.mark.parametrize("every", [[], ["lm.epochs=3", "lm.checkpoint_every=2"]])
def test_a_damaged_encoder_is_rewritten_by_the_remedy_the_error_prints(overrides, tmp_path, every):
    """With a checkpoint every 2 epochs of 3, last.ckpt is epoch 2's: the remedy trains epoch 3
    again, exactly (with one every epoch it trains nothing)."""
    ov = [o for o in overrides if not o.startswith("experiment=")] + every
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", *a], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run("lmft.pretrain", "experiment=smoke", *ov).returncode == 0
    enc = tmp_path / "outputs/pretrain/smoke/encoder.pt"
    good = torch.load(enc, weights_only=True)["state_dict"]
    enc.write_bytes(enc.read_bytes()[: enc.stat().st_size // 2])
    cell = ["lmft.finetune", "experiment=smoke", "init=pretrained", *ov]
    r = run(*cell)
    assert r.returncode == 2 and "unreadable or truncated" in r.stderr
    remedy = r.stderr.split("Run `")[1].split("`")[0].split()  # as printed
    assert remedy[:3] == ["python", "-m", "lmft.pretrain"]
    r = run(*remedy[2:])
    assert r.returncode == 0 and "writing them again" in r.stdout, r.stderr
    retrained = [f"epoch {e}/" in r.stdout for e in (1, 2, 3)]
    assert retrained == ([False, False, True] if every else [False, False, False]), r.stdout
    again = torch.load(enc, weights_only=True)["state_dict"]
    assert all(torch.equal(good[k], again[k]) for k in good)  # the same weights, from last.ckpt
    assert run(*cell).returncode == 0


def test_a_resumed_pretraining_equals_an_uninterrupted_one_with_dropout_and_a_schedule(
    overrides, tmp_path
):
    """The checkpoint carries the random-number generators' states (dropout masks) and the
    learning-rate schedule's position, and the sampler depends on seed and epoch only:
    resuming changes no number."""
    ov = [o for o in overrides if not o.startswith(("experiment=", "paths.outputs="))]
    base = ["lmft.pretrain", "experiment=smoke", "lm.epochs=3", "lm.dropout=0.3", *ov]
    base.append("lm.schedule=one_cycle")
    once = [*base, f"paths.outputs={tmp_path}/once"]
    twice = [*base, f"paths.outputs={tmp_path}/twice"]
    run = lambda a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", *a], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run(once).returncode == 0
    run_until(twice, tmp_path, "epoch 2/3")  # last.ckpt of epoch 1 (at least) is written
    r = run(twice)
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stderr
    a, b = (
        torch.load(tmp_path / d / "pretrain/smoke/encoder.pt", weights_only=True)["state_dict"]
        for d in ("once", "twice")
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (
        json.loads((tmp_path / d / "pretrain/smoke/metrics.json").read_text())
        for d in ("once", "twice")
    )
    assert ma["val/loss"] == mb["val/loss"]


def test_checkpoints_are_written_beside_their_destination(cfg_for, overrides, monkeypatch):
    """Every temporary file a pretraining writes lies in the folder of the file it becomes:
    the final rename is atomic even where $TMPDIR is another filesystem."""
    import tempfile

    from lmft import pretrain

    dirs, mkstemp = [], tempfile.mkstemp
    monkeypatch.setattr(
        tempfile, "mkstemp", lambda *a, **k: dirs.append(k.get("dir")) or mkstemp(*a, **k)
    )  # noqa: E501
    cfg = cfg_for("pretrain", [*overrides, "lm.epochs=1"])
    pdir = Path(cfg.paths.pretrain_dir)
    pretrain.run(cfg, pdir)
    assert (pdir / "checkpoints/last.ckpt").exists()
    assert None not in dirs and pdir / "checkpoints" in map(Path, dirs), dirs


def test_an_unreadable_last_checkpoint_is_set_aside_and_the_run_goes_on(overrides, tmp_path):
    ov = [o for o in overrides if not o.startswith("experiment=")]
    args = [sys.executable, "-m", "lmft.pretrain", "experiment=smoke", "lm.epochs=2", *ov]

    def run():
        return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert run().returncode == 0
    pdir = tmp_path / "outputs/pretrain/smoke"
    last = pdir / "checkpoints/last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a truncated write
    (pdir / "metrics.json").unlink()
    r = run()
    assert r.returncode == 0, r.stderr
    assert "unreadable" in r.stderr and (pdir / "checkpoints/last.ckpt.unreadable").exists()
    assert json.loads((pdir / "metrics.json").read_text())["epochs"] == 2


def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    from lmft.errors import LmftError
    from lmft.io import torch_save

    def short_write(obj, f):
        Path(f).write_bytes(b"PK\x03\x04partial")
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 1408 vs 1302")

    monkeypatch.setattr(torch, "save", short_write)
    dest = tmp_path / "run/encoder.pt"
    with pytest.raises(LmftError, match=f"no space left on device writing {dest}"):
        torch_save({"x": 1}, dest)
    assert list(dest.parent.iterdir()) == []


def test_a_failed_sweep_cell_says_its_error_when_it_happens(cfg_for, tmp_path, capsys):
    """Hydra raises a sweep cell's error only after the cells that follow it; one of those
    failing in Hydra's own code (a full disk) would hide it. lmft says it as it happens."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from lmft.cli import entry

    cfg = cfg_for("finetune", ["experiment=smoke"], hydra=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(tmp_path / "cell")
        cfg.hydra.overrides.task = ["experiment=smoke"]

    def full_disk(cfg, out_dir):
        raise OSError(28, "No space left on device", str(out_dir / "tb"))

    HydraConfig.instance().set_config(cfg)
    try:
        with pytest.raises(OSError):
            entry(full_disk, cfg)
    finally:
        HydraConfig.instance().cfg = None  # as before: no Hydra run in this process
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'cell'} failed: OSError: [Errno 28] No space left" in err
