"""`trainer.keep_freed_memory`: LSTM training steps reuse the memory the last step freed instead
of faulting in fresh pages from the OS, as glibc's default makes them do."""

import platform
import subprocess
import sys

import pytest

from lmft.heap import keep_freed_memory

STEPS = """
import resource, sys, torch
from lmft.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
torch.set_num_threads(1)
lstm, x = torch.nn.LSTM(128, 256, batch_first=True), torch.randn(32, 256, 128)
lstm(x)[0].sum().backward()  # the first step allocates what every step needs
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    lstm(x)[0].sum().backward()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> tuple[str, int]:
    """Whether `keep_freed_memory` applied ("None": not called), and the page faults of three
    LSTM training steps after the first, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True
    )
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_training_steps_reuse_freed_memory():
    applied, kept = page_faults("keep")
    _, default = page_faults("default")
    assert applied == "True"
    assert kept * 4 < default, (kept, default)  # measured: about 10,600 against 114,000


@pytest.mark.skipif(platform.libc_ver()[0] == "glibc", reason="other C libraries only")
def test_other_c_libraries_are_left_alone():
    assert keep_freed_memory() is False


@pytest.mark.parametrize("keep", [True, False])
def test_the_trainer_setting_decides(cfg_for, overrides, tmp_path, monkeypatch, keep):
    import lmft.trainer

    calls = []
    monkeypatch.setattr(lmft.trainer, "keep_freed_memory", lambda: calls.append(1))
    cfg = cfg_for("finetune", [*overrides, f"trainer.keep_freed_memory={keep}"])
    lmft.trainer.make_trainer(cfg, tmp_path, 1, [])
    assert calls == ([1] if keep else [])
