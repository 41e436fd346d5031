"""GPU-only checks (skipped without CUDA): run by bench/gpu_check.sh on a GPU machine."""

from pathlib import Path

import pytest
import torch

from lmft import finetune, pretrain
from lmft.models import LanguageModel, LSTMEncoder, build_encoder
from lmft.models.language_model import fused_check, fused_linear_ce

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
ENC = dict(_target_=LSTMEncoder.type_name(), vocab_size=300, embed_dim=32, hidden_size=64)


@pytest.fixture
def no_tf32(monkeypatch):
    """cuDNN may use TF32 (10-bit mantissa) for float32 LSTMs: off, to compare with the CPU."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def test_cudnn_lstm_matches_cpu(no_tf32):
    assert torch.backends.cudnn.is_available()
    torch.manual_seed(0)
    enc = build_encoder(ENC).eval()
    ids = torch.randint(1, 300, (4, 50))
    cpu = enc(ids)
    gpu = enc.cuda()(ids.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-5)


def test_bf16_lm_loss_close_to_fp32_and_chunking_exact(no_tf32):
    torch.manual_seed(0)
    lm = LanguageModel(encoder=ENC, dropout=0.0).cuda()
    ids = torch.randint(4, 300, (8, 65), device="cuda")
    batch = {"ids": ids, "lengths": torch.full((8,), 65, device="cuda")}
    fp32 = lm.loss(batch)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = lm.loss(batch)
    assert torch.isfinite(bf16) and abs(bf16.item() - fp32.item()) / fp32.item() < 0.02
    lm.hparams.loss_chunk = 100
    assert torch.allclose(lm.loss(batch), fp32, atol=1e-4)


def _loss_and_grads(lm, batch, fused: bool, bf16: bool):
    lm.zero_grad()
    lm.fused = fused
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        loss = lm.loss(batch)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in lm.named_parameters()}


@pytest.mark.parametrize("bf16", [False, True])
def test_fused_softmax_gives_the_chunked_loss_and_gradients(no_tf32, bf16):
    """Liger-Kernel's fused linear + cross-entropy against the torch (chunked) path."""
    assert fused_linear_ce() is not None, "liger-kernel missing: pip install -e '.[gpu]'"
    torch.manual_seed(0)
    enc = dict(ENC, vocab_size=5000)
    lm = LanguageModel(encoder=enc, dropout=0.0, loss_chunk=300).cuda()
    ids = torch.randint(4, 5000, (16, 81), device="cuda")
    batch = {"ids": ids, "lengths": torch.randint(20, 82, (16,), device="cuda")}
    ref_loss, ref = _loss_and_grads(lm, batch, fused=False, bf16=bf16)
    loss, got = _loss_and_grads(lm, batch, fused=True, bf16=bf16)
    tol = 2e-2 if bf16 else 1e-4  # bf16: both paths round the logits, differently
    assert abs(loss.item() - ref_loss.item()) <= tol * ref_loss.item()
    for k, g in ref.items():
        err = (got[k] - g).norm() / g.norm().clamp(min=1e-12)
        assert err <= (5e-2 if bf16 else 1e-3), (k, err.item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_softmax_passes_its_check_here(dtype):
    """What lm.loss_impl=auto runs before it takes the fused softmax (the seed LM's size)."""
    assert fused_check(84640, 512, torch.device("cuda"), dtype) is None


@pytest.mark.parametrize("recipe", ["smoke", "ulmfit"])
def test_stages_learn_on_gpu(cfg_for, overrides, ulmfit_overrides, recipe):
    """Both stages in bf16 with the fused softmax: the smoke preset, and the ulmfit preset's
    switches (DropConnect through functional_call on cuDNN's LSTM, the tied softmax fused)."""
    awd, tune = ulmfit_overrides if recipe == "ulmfit" else ([], [])
    ov = [*overrides, *awd, "trainer=gpu", "lm.loss_impl=fused"]
    cfg = cfg_for("pretrain", ov)
    m = pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    assert m["history"][-1]["lm/val_ppl"] < m["history"][0]["lm/val_ppl"]
    cfg = cfg_for("finetune", [*ov, *tune])
    m = finetune.run(cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
    assert 0 <= m["test/acc"] <= 1
