from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lmft.errors import LmftError
from lmft.models import (
    LanguageModel,
    LSTMEncoder,
    SentimentClassifier,
    TransformerEncoder,
    build_encoder,
)
from lmft.models import language_model as lm_module
from lmft.models.classifier import POOLINGS, pool
from lmft.models.encoder import locked_dropout
from lmft.models.handoff import remap_rows

ENC = dict(_target_=LSTMEncoder.type_name(), vocab_size=50, embed_dim=8, hidden_size=16)
# The same contract, a Transformer: width 8, feed-forward 16, 2 blocks (dropout off: comparable)
TRANSFORMER = dict(
    _target_=TransformerEncoder.type_name(),
    vocab_size=50,
    embed_dim=8,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    dropout=0.0,
)
ENCODERS = pytest.mark.parametrize("enc_cfg", [ENC, TRANSFORMER], ids=["lstm", "transformer"])


def padded(seqs, extra=0):
    n = max(len(s) for s in seqs) + extra
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


@ENCODERS
def test_padding_never_changes_outputs_pooling_or_lm_loss(enc_cfg):
    torch.manual_seed(0)
    seqs = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    (a, la), (b, lb) = padded(seqs), padded(seqs, extra=7)
    enc = build_encoder(enc_cfg).eval()
    ha, hb = enc(a), enc(b)
    for i, n in enumerate(la):
        assert torch.allclose(ha[i, :n], hb[i, :n], atol=1e-6)
    for how in POOLINGS:
        assert torch.allclose(pool(ha, la, how), pool(hb, lb, how), atol=1e-6), how
    lm = LanguageModel(encoder=enc_cfg).eval()
    assert torch.allclose(lm.loss({"ids": a, "lengths": la}), lm.loss({"ids": b, "lengths": lb}))
    # ... and the loss really is over real targets only
    full = torch.cat(
        [
            F.cross_entropy(
                lm.head(lm.encoder(a[i : i + 1, : n - 1])[0]), a[i, 1:n], reduction="none"
            )
            for i, n in enumerate(la)
        ]
    ).mean()
    assert torch.allclose(lm.loss({"ids": a, "lengths": la}), full, atol=1e-5)


@ENCODERS
def test_no_position_reads_a_later_token(enc_cfg):
    """Causal: changing token t changes the outputs at t and after, never before (the LM
    predicts token t + 1 from position t)."""
    torch.manual_seed(0)
    enc = build_encoder(enc_cfg).eval()
    assert enc.causal
    ids = torch.randint(1, 50, (2, 9))
    for t in (0, 4, 8):
        changed = ids.clone()
        changed[:, t] = (ids[:, t] % 49) + 1
        before, after = enc(ids), enc(changed)
        assert torch.equal(before[:, :t], after[:, :t]), t
        assert not torch.allclose(before[:, t], after[:, t]), t


def test_transformer_layer_groups_cover_every_weight_for_discriminative_rates():
    clf = SentimentClassifier(encoder=TRANSFORMER, lr=0.01, lr_decay=2.0)
    groups = clf.layer_groups()
    assert list(groups) == ["embedding", "block1", "block2", "head"]
    grouped = [id(p) for g in groups.values() for p in g.parameters()]
    assert sorted(grouped) == sorted(id(p) for p in clf.parameters())  # each once, none missed
    rates = {g["name"]: g["lr"] for g in clf.configure_optimizers().param_groups}
    assert rates == pytest.approx(
        {"embedding": 0.01 / 8, "block1": 0.01 / 4, "block2": 0.005, "head": 0.01}
    )
    learned = build_encoder({**TRANSFORMER, "max_positions": 6})
    with pytest.raises(LmftError, match="max_positions"):
        learned(torch.ones(1, 7, dtype=torch.long))
    sinusoidal = build_encoder({**TRANSFORMER, "positions": "sinusoidal", "max_positions": 6})
    assert sinusoidal(torch.ones(1, 7, dtype=torch.long)).shape == (1, 7, 8)
    assert LanguageModel(encoder=TRANSFORMER, tie_weights=True).head.weight.shape == (50, 8)


def test_build_encoder_names_what_does_not_fit():
    with pytest.raises(LmftError, match="has no setting model.weight_dropout.*It takes: embed_dim"):
        build_encoder({**TRANSFORMER, "weight_dropout": 0.1})  # an LSTM preset's key
    with pytest.raises(LmftError, match="names no class"):
        build_encoder({**ENC, "_target_": "lmft.models.gru.GRUEncoder"})
    with pytest.raises(LmftError, match="not an lmft Encoder"):
        build_encoder({**ENC, "_target_": "torch.nn.LSTM"})


def test_pool_values():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    n = torch.tensor([2])
    assert pool(h, n, "mean").item() == 2.0 and pool(h, n, "max").item() == 3.0
    assert pool(h, n, "last").item() == 3.0 and pool(h, n, "concat").tolist() == [[3.0, 3.0, 2.0]]


def train(model, batches, steps, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for i in range(steps):
        loss = model.training_step(batches[i % len(batches)], i)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_lm_loss_falls_on_repetitive_corpus(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(LanguageModel, "log", lambda *a, **k: None)
    ids, lengths = padded([[4, 5, 6, 7, 8, 9] * 4, [10, 11, 12] * 5] * 4)
    for head in ("full", "adaptive"):
        lm = LanguageModel(encoder=ENC, head=head, cutoffs=(10, 30), dropout=0.0)
        losses = train(lm, [{"ids": ids, "lengths": lengths}], 150)
        assert losses[-1] < 0.2 * losses[0], (head, losses[0], losses[-1])


def test_an_adaptive_softmax_without_a_cutoff_below_the_vocabulary_is_refused():
    """torch's own error ("cutoffs should be a sequence of length larger than 0") names no
    setting: lmft's names lm.cutoffs and the vocabulary."""
    with pytest.raises(LmftError, match=r"lm.cutoffs=\[2000, 10000\].*vocabulary size \(50\)"):
        LanguageModel(encoder=ENC, head="adaptive", cutoffs=(2000, 10000))


def test_classifier_learns_separable_task(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(SentimentClassifier, "log", lambda *a, **k: None)
    g = torch.Generator().manual_seed(0)
    seqs, labels = [], []
    for i in range(64):
        y = i % 2
        s = torch.randint(10, 40, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g)
        s[torch.randint(0, len(s), (1,), generator=g)] = 5 if y else 6  # the signal word
        seqs.append(s.tolist())
        labels.append(y)
    ids, lengths = padded(seqs)
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor(labels)}
    clf = SentimentClassifier(encoder=ENC, dropout=0.0)
    train(clf, [batch], 120)
    acc = ((clf(ids, lengths) > 0).long() == batch["labels"]).float().mean()
    assert acc == 1.0


def test_both_modules_share_encoder_keys():
    lm, clf = LanguageModel(encoder=ENC), SentimentClassifier(encoder=ENC)
    lm_keys = {k for k in lm.state_dict() if k.startswith("encoder.")}
    clf_keys = {k for k in clf.state_dict() if k.startswith("encoder.")}
    assert lm_keys == clf_keys and lm_keys


def test_chunked_softmax_matches_full_loss_and_grads():
    torch.manual_seed(0)
    ids, lengths = padded([[4, 5, 6, 7, 8, 9] * 3, [10, 11, 12] * 2, [13, 14]])
    batch = {"ids": ids, "lengths": lengths}
    whole = LanguageModel(encoder=ENC, dropout=0.0)
    chunked = LanguageModel(encoder=ENC, dropout=0.0, loss_chunk=4)
    chunked.load_state_dict(whole.state_dict())
    a, b = whole.loss(batch), chunked.loss(batch)
    a.backward()
    b.backward()
    assert torch.allclose(a, b, atol=1e-6)
    for (name, p), q in zip(whole.named_parameters(), chunked.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def _torch_ce(h, w, y, bias, **kw):  # Liger's signature, torch's arithmetic
    return F.cross_entropy(F.linear(h.float(), w.float(), bias.float()), y, reduction="sum")


def _fails(*a, **kw):
    raise RuntimeError("PassManager::run failed\nmore lines")


@pytest.mark.parametrize(
    ("kernel", "why_not"),
    [
        (_torch_ce, None),
        (_fails, "the fused kernel failed (RuntimeError: PassManager::run failed)"),
        (lambda *a, **kw: 2 * _torch_ce(*a, **kw), "differs from torch's"),
        (None, "liger-kernel is not installed"),
    ],
    ids=["works", "raises", "wrong", "missing"],
)
def test_fused_check_takes_the_kernel_only_if_it_runs_and_gives_torchs_loss(
    kernel, why_not, monkeypatch
):
    monkeypatch.setattr(lm_module, "fused_linear_ce", lambda: kernel)
    got = lm_module.fused_check(300, 16, torch.device("cpu"), torch.bfloat16)
    assert got == why_not if why_not is None else why_not in got


def _set_up(impl: str, device: str, kernel, monkeypatch) -> LanguageModel:
    monkeypatch.setattr(lm_module, "fused_linear_ce", lambda: kernel)
    lm = LanguageModel(encoder=ENC, loss_impl=impl)
    strategy = SimpleNamespace(root_device=torch.device(device))
    trainer = SimpleNamespace(strategy=strategy, precision="bf16-mixed", is_global_zero=True)
    monkeypatch.setattr(LanguageModel, "trainer", trainer)
    lm.setup("fit")
    return lm


def test_auto_softmax_falls_back_to_torch_where_the_fused_one_fails(monkeypatch, capsys):
    # the check itself runs on the CPU here: a device named cuda only routes setup to it
    monkeypatch.setattr(lm_module, "fused_check", lambda v, h, device, dtype: None)
    lm = _set_up("auto", "cuda", _torch_ce, monkeypatch)
    assert lm.fused and not lm.fell_back
    assert "fused (liger-kernel)" in capsys.readouterr().out
    lm = _set_up("chunked", "cuda", _torch_ce, monkeypatch)
    assert not lm.fused and not lm.fell_back  # asked for: no fallback
    assert "chunked (torch): lm.loss_impl=chunked\n" in capsys.readouterr().out
    monkeypatch.setattr(lm_module, "fused_check", lambda v, h, device, dtype: "it failed (X)")
    lm = _set_up("auto", "cuda", _fails, monkeypatch)
    assert not lm.fused and lm.fell_back
    assert "chunked (torch): it failed (X) (SLOWER than" in capsys.readouterr().out
    with pytest.raises(LmftError, match="fused cannot run here: it failed"):
        _set_up("fused", "cuda", _fails, monkeypatch)
    lm = _set_up("auto", "cpu", _torch_ce, monkeypatch)
    assert not lm.fused and not lm.fell_back  # a CPU has no fused kernel to fall back from
    with pytest.raises(LmftError, match="fused cannot run here: no CUDA GPU"):
        _set_up("fused", "cpu", _torch_ce, monkeypatch)


AWD = dict(ENC, hidden_size=16, num_layers=2, output_size=8)


def changed_groups(monkeypatch, **kw) -> list[set[str]]:
    """Which layer groups (embedding, lstm1, lstm2, head) each of 4 epochs changes."""
    torch.manual_seed(0)
    monkeypatch.setattr(SentimentClassifier, "log", lambda *a, **k: None)
    ids, lengths = padded([[5, 6, 7], [8, 9]])
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor([1, 0])}
    clf = SentimentClassifier(encoder=AWD, **kw)
    out = []
    for epoch in range(4):
        before = {n: [p.clone() for p in g.parameters()] for n, g in clf.layer_groups().items()}
        monkeypatch.setattr(SentimentClassifier, "current_epoch", epoch)
        clf.on_train_epoch_start()
        train(clf, [batch], 2)
        out.append(
            {
                n
                for n, g in clf.layer_groups().items()
                if any(
                    not torch.equal(p, q) for p, q in zip(g.parameters(), before[n], strict=True)
                )
            }
        )
    return out


def test_gradual_unfreezing_adds_one_group_per_epoch_top_down(monkeypatch):
    assert changed_groups(monkeypatch, gradual_unfreeze=True) == [
        {"head"},
        {"head", "lstm2"},
        {"head", "lstm2", "lstm1"},
        {"head", "lstm2", "lstm1", "embedding"},
    ]
    everything = {"head", "lstm2", "lstm1", "embedding"}
    assert changed_groups(monkeypatch) == [everything] * 4
    assert changed_groups(monkeypatch, freeze_encoder=True) == [{"head"}] * 4


def test_discriminative_learning_rates_divide_per_group():
    clf = SentimentClassifier(encoder=AWD, lr=0.01, lr_decay=2.6, encoder_lr_factor=0.5)
    lrs = [g["lr"] for g in clf.configure_optimizers().param_groups]
    want = [0.01 * 0.5 / 2.6**3, 0.01 * 0.5 / 2.6**2, 0.01 * 0.5 / 2.6, 0.01]
    assert lrs == pytest.approx(want)
    assert len(lrs) == len(clf.layer_groups())  # embedding, lstm1, lstm2, head


def rates_over(module, steps: int, monkeypatch):
    """The module's optimizer after `steps` scheduled steps (a run of that many), and its top
    group's rate at each step."""
    monkeypatch.setattr(type(module), "trainer", SimpleNamespace(estimated_stepping_batches=steps))
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    top = []
    for _ in range(steps):
        top.append(opt.param_groups[-1]["lr"])
        opt.step()
        sched.step()
    return opt, top


@pytest.mark.parametrize("schedule", ["slanted_triangular", "one_cycle"])
def test_schedules_warm_up_then_decay(schedule, monkeypatch):
    clf = SentimentClassifier(encoder=AWD, lr=0.01, lr_decay=2.0, schedule=schedule)
    opt, head = rates_over(clf, 100, monkeypatch)
    peak = max(range(100), key=head.__getitem__)
    assert 8 <= peak <= 11 and head[peak] == pytest.approx(0.01)  # warmup_frac 0.1
    assert head[0] < 0.01 / 20 and head[-1] < 0.01 / 20
    # every group keeps its discriminative ratio through the schedule
    ratios = {round(g["lr"] / opt.param_groups[-1]["lr"], 6) for g in opt.param_groups}
    assert ratios == {1.0, 0.5, 0.25, 0.125}
    if schedule == "slanted_triangular":  # ULMFiT: linear, lr/32 at both ends
        assert head[0] == pytest.approx(0.01 / 32)
        assert head[5] - head[4] == pytest.approx(head[4] - head[3])


def test_the_lm_is_constant_by_default_and_follows_a_schedule_when_asked(monkeypatch):
    assert isinstance(LanguageModel(encoder=ENC, lr=0.01).configure_optimizers(), torch.optim.Adam)
    lm = LanguageModel(encoder=ENC, lr=0.01, schedule="one_cycle", warmup_frac=0.2)
    _, lrs = rates_over(lm, 50, monkeypatch)
    assert max(range(50), key=lrs.__getitem__) in (9, 10) and max(lrs) == pytest.approx(0.01)
    assert lrs[0] == pytest.approx(0.01 / 25) and lrs[-1] < 0.01 / 100
    with pytest.raises(LmftError, match="lm.schedule must be one of"):
        LanguageModel(encoder=ENC, schedule="cosine")


def test_locked_dropout_shares_one_mask_across_time():
    torch.manual_seed(0)
    x = torch.ones(4, 9, 16)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:, :1].expand_as(y))  # the same mask at every time step
    assert (y == 0).any() and set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_awd_dropouts_are_random_in_training_only_and_keep_weight_names():
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (3, 7))
    plain = build_encoder(AWD)
    for extra in (
        {"embed_dropout": 0.3},
        {"input_dropout": 0.3},
        {"dropout": 0.3},
        {"weight_dropout": 0.5},
    ):
        enc = build_encoder({**AWD, **extra})
        enc.load_state_dict(plain.state_dict())  # same weight names: hand-off unaffected
        enc.train()
        assert not torch.equal(enc(ids), enc(ids)), extra
        enc.eval()
        assert torch.equal(enc(ids), plain.eval()(ids)), extra
        plain.train()
    enc = build_encoder(
        {**AWD, "embed_dropout": 0.1, "input_dropout": 0.2, "dropout": 0.3, "weight_dropout": 0.5}
    )
    enc(ids).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_weight_dropout_masks_hidden_to_hidden_weights(monkeypatch):
    seen = []
    real = torch.func.functional_call

    def spy(module, params, args):
        seen.append(params["weight_hh_l0"])
        return real(module, params, args)

    monkeypatch.setattr("lmft.models.lstm.functional_call", spy)
    enc = build_encoder({**AWD, "weight_dropout": 0.5}).train()
    enc(torch.randint(1, 50, (2, 5)))
    assert len(seen) == 2  # one masked matrix per layer, the original left intact
    for w, lstm in zip(seen, enc.layers, strict=True):
        zero = w == 0
        assert 0.3 < zero.float().mean() < 0.7
        assert torch.allclose(w[~zero], 2 * lstm.weight_hh_l0[~zero])


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    enc = build_encoder({**ENC, "hidden_size": 8, "embed_dropout": 0.5}).train()
    seen = []
    enc.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    ids = torch.tensor([[7, 7, 7, 9, 9, 9] * 5])
    for _ in range(20):
        enc(ids)
    for x in seen:  # each word is either dropped everywhere in the batch or nowhere
        for word in (7, 9):
            rows = x[0, ids[0] == word]
            assert torch.equal(rows, rows[:1].expand_as(rows))
    dropped = [bool((x[0, 0] == 0).all()) for x in seen]
    assert any(dropped) and not all(dropped)


def test_tied_lm_shares_embedding_and_needs_matching_sizes():
    lm = LanguageModel(encoder=AWD, tie_weights=True)
    assert lm.head.weight is lm.encoder.embedding.weight
    assert sum(p.numel() for p in lm.parameters()) < sum(
        p.numel() for p in LanguageModel(encoder=AWD).parameters()
    )
    with pytest.raises(LmftError, match="output_size"):
        LanguageModel(encoder=ENC, tie_weights=True)  # output 16 != embedding 8
    with pytest.raises(LmftError, match="lm.head=full"):
        LanguageModel(encoder=AWD, tie_weights=True, head="adaptive")


def test_multilayer_encoder_shapes():
    enc = build_encoder(AWD)
    assert len(enc.layers) == 2 and enc(torch.randint(1, 50, (3, 7))).shape == (3, 7, 8)
    assert SentimentClassifier(encoder=AWD, pooling="concat").head.in_features == 24


def test_remap_rows_moves_known_words_and_averages_unknown():
    w = torch.arange(12.0).reshape(4, 3)  # ids 0..3: <pad>, a, b, c
    old = {"<pad>": 0, "a": 1, "b": 2, "c": 3}
    new = {"<pad>": 0, "c": 1, "zz": 2, "a": 3}
    out = remap_rows(w, old, new)
    assert out[1].tolist() == w[3].tolist() and out[3].tolist() == w[1].tolist()
    assert out[2].tolist() == w[1:].mean(0).tolist() and out[0].abs().sum() == 0


def test_multiclass_head_and_loss(monkeypatch):
    monkeypatch.setattr(SentimentClassifier, "log", lambda *a, **k: None)
    clf = SentimentClassifier(encoder=ENC, num_classes=3)
    ids, lengths = padded([[5, 6, 7], [8, 9], [4]])
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor([0, 2, 1])}
    loss, probs = clf.loss_and_probs(batch)
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(-1), torch.ones(3))
    assert loss.item() == pytest.approx(float(torch.log(torch.tensor(3.0))), abs=0.3)
    assert SentimentClassifier(encoder=ENC).head.out_features == 1  # binary stays sigmoid
    with pytest.raises(LmftError, match="at least 2"):
        SentimentClassifier(encoder=ENC, num_classes=1)


def test_keras_init_matches_keras_defaults():
    torch.manual_seed(0)
    kw = dict(ENC, vocab_size=500, embed_dim=40, hidden_size=24, init="keras")
    enc = build_encoder(kw)
    emb, lstm = enc.embedding.weight, enc.layers[0]
    assert emb[1:].abs().max() <= 0.05 and emb[1:].std() > 0.02 and not emb[0].any()
    h = 24
    bias = lstm.bias_ih_l0 + lstm.bias_hh_l0  # torch adds its two biases
    assert torch.equal(bias[h : 2 * h], torch.ones(h))  # forget gate (gate order i, f, g, o)
    assert not bias[:h].any() and not bias[2 * h :].any()
    w = lstm.weight_hh_l0  # [4H, H]: orthonormal columns, as Keras' orthogonal (H, 4H) kernel
    assert torch.allclose(w.T @ w, torch.eye(h), atol=1e-5)
    limit = (6 / (40 + 4 * h)) ** 0.5  # Glorot-uniform, fans of Keras' (in, 4H) kernel
    assert lstm.weight_ih_l0.abs().max() <= limit and lstm.weight_ih_l0.abs().max() > 0.9 * limit
    for head in (SentimentClassifier(encoder=kw).head, LanguageModel(encoder=kw).head):
        out, inp = head.weight.shape
        assert head.weight.abs().max() <= (6 / (inp + out)) ** 0.5 and not head.bias.any()
    torch_enc = build_encoder({**kw, "init": "torch"})
    assert torch_enc.embedding.weight.std() > 0.5  # torch's N(0, 1)
    with pytest.raises(LmftError, match="model.init"):
        build_encoder({**kw, "init": "xavier"})


def test_truncating_pre_keeps_the_end_post_the_start():
    from lmft.data.corpus import Encoded
    from lmft.data.datamodules import TokenDataset

    enc = Encoded(torch.arange(1, 11, dtype=torch.int32), torch.tensor([0, 10]), torch.tensor([1]))
    idx = torch.tensor([0])
    assert TokenDataset(enc, idx, 4, "pre")[0][0].tolist() == [7, 8, 9, 10]
    assert TokenDataset(enc, idx, 4, "post")[0][0].tolist() == [1, 2, 3, 4]
    with pytest.raises(LmftError, match="data.truncating"):
        TokenDataset(enc, idx, 4, "middle")


def test_cpu_bf16_autocast_runs_the_lstm_in_float32():
    """oneDNN's bf16 LSTM exists only on CPUs with AVX-512 BF16 / AMX (elsewhere it raises):
    under CPU autocast the encoder runs its LSTM in float32, so bf16 presets run anywhere."""
    torch.manual_seed(0)
    enc = build_encoder({**ENC, "weight_dropout": 0.2}).train()
    ids, _ = padded([[5, 6, 7, 8], [9, 10]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(ids)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    lm = LanguageModel(encoder=ENC, dropout=0.0)
    batch = {"ids": ids, "lengths": torch.tensor([4, 2])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(lm.loss(batch))
