"""GPU-only checks (skipped without CUDA): run by bench/gpu_check.sh on a GPU machine."""

from pathlib import Path

import pytest
import torch

from lmft import finetune, pretrain
from lmft.models import LanguageModel, LSTMEncoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
ENC = dict(vocab_size=300, embed_dim=32, hidden_size=64)


def test_cudnn_lstm_matches_cpu():
    assert torch.backends.cudnn.is_available()
    torch.manual_seed(0)
    enc = LSTMEncoder(**ENC).eval()
    ids = torch.randint(1, 300, (4, 50))
    cpu = enc(ids)
    gpu = enc.cuda()(ids.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)


def test_bf16_lm_loss_close_to_fp32_and_chunking_exact():
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


def test_smoke_stages_on_gpu(cfg_for, overrides):
    ov = [*overrides, "trainer=gpu"]
    cfg = cfg_for("pretrain", ov)
    assert pretrain.run(cfg, Path(cfg.paths.pretrain_dir))["val/ppl"] > 0
    cfg = cfg_for("finetune", ov)
    m = finetune.run(cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
    assert 0 <= m["test/acc"] <= 1
