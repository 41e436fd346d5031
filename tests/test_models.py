import torch
import torch.nn.functional as F

from lmft.models import LanguageModel, LSTMEncoder, SentimentClassifier
from lmft.models.classifier import POOLINGS, pool

ENC = dict(vocab_size=50, embed_dim=8, hidden_size=16)


def padded(seqs, extra=0):
    n = max(len(s) for s in seqs) + extra
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, torch.tensor([len(s) for s in seqs])


def test_padding_never_changes_outputs_pooling_or_lm_loss():
    torch.manual_seed(0)
    seqs = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    (a, la), (b, lb) = padded(seqs), padded(seqs, extra=7)
    enc = LSTMEncoder(**ENC).eval()
    ha, hb = enc(a), enc(b)
    for i, n in enumerate(la):
        assert torch.allclose(ha[i, :n], hb[i, :n], atol=1e-6)
    for how in POOLINGS:
        assert torch.allclose(pool(ha, la, how), pool(hb, lb, how), atol=1e-6), how
    lm = LanguageModel(encoder=ENC).eval()
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
        labels.append(float(y))
    ids, lengths = padded(seqs)
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor(labels)}
    clf = SentimentClassifier(encoder=ENC, dropout=0.0)
    train(clf, [batch], 120)
    acc = ((clf(ids, lengths) > 0).float() == batch["labels"]).float().mean()
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


def test_gradual_unfreezing_trains_top_groups_first(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(SentimentClassifier, "log", lambda *a, **k: None)
    ids, lengths = padded([[5, 6, 7], [8, 9]])
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor([1.0, 0.0])}
    clf = SentimentClassifier(encoder=ENC, gradual_unfreeze=True)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    changed = []
    for epoch in range(3):
        monkeypatch.setattr(SentimentClassifier, "current_epoch", epoch)
        clf.on_train_epoch_start()
        train(clf, [batch], 2)
        changed.append(
            {
                k.split(".")[-2] if k.startswith("encoder") else "head"
                for k, v in clf.state_dict().items()
                if not torch.equal(v, before[k])
            }
        )
    assert changed == [{"head"}, {"head", "lstm"}, {"head", "lstm", "embedding"}]
