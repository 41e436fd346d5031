"""Training throughput of lmft's two stages against a plain PyTorch loop, on one device.

    python bench/bench.py                      # preset `quick`, CPU or the GPU if there is one
    python bench/bench.py --exp seed_fast --steps 30
    python bench/bench.py --exp seed trainer.precision=bf16-mixed   # any config override

lmft rows run the real LightningModules through `Trainer.fit`, fed by lmft's DataModules
(length-bucketed batches, padding masked, the preset's head and precision). The baseline
is the straightforward re-implementation of the reference code: the same architecture,
batch 32, float32, every review padded to max_len, full softmax over every position.
Throughput counts real (non-padding) target tokens per second for both, on the same
reviews, so the ratio is work done per second. Epoch time = real tokens of one epoch
over the 25k training reviews (at the preset's max_len) / throughput.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn

from lmft import build
from lmft.data import load_corpus
from lmft.models import LanguageModel

CONF = str(Path(__file__).resolve().parents[1] / "conf")


class StepTimer(L.Callback):
    """Wall time of training steps after `warmup` steps (device synchronised), and the device
    they ran on (read during training: `Trainer.fit` moves the model back to the CPU after)."""

    def __init__(self, warmup: int, shifted: bool):
        self.warmup, self.shifted, self.times, self.tokens = warmup, shifted, [], []

    def _sync(self, module):
        if module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.device = module.device
        self._sync(module)
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._sync(module)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self.t0)
            # LM targets are tokens 1..n of each item; the classifier reads all n
            self.tokens.append(int(batch["lengths"].sum()) - self.shifted * len(batch["lengths"]))


class SaveTimer(L.Callback):
    """Wall time and size of one resume checkpoint (weights + optimizer state, as pretraining's
    `last.ckpt`), saved from the device after the timed steps, under outputs/."""

    def on_train_end(self, trainer, module):
        Path("outputs").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir="outputs") as d:
            path, t0 = Path(d) / "last.ckpt", time.perf_counter()
            trainer.save_checkpoint(path)
            self.s, self.mb = time.perf_counter() - t0, path.stat().st_size / 1e6


def time_lightning(cfg, model, dm, steps: int, warmup: int, callbacks=()) -> dict:
    timer = StepTimer(warmup, shifted=isinstance(model, LanguageModel))
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_epochs=1,
        limit_train_batches=steps + warmup,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer, *callbacks],
    )
    trainer.fit(model, dm)
    return {
        "s": sum(timer.times),
        "tokens": sum(timer.tokens),
        "steps": len(timer.times),
        "device": timer.device,
    }


class PlainLM(nn.Module):
    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.emb, self.lstm = nn.Embedding(vocab, emb), nn.LSTM(emb, hidden, batch_first=True)
        self.drop, self.out = nn.Dropout(0.3), nn.Linear(hidden, vocab)

    def forward(self, x):
        return self.out(self.drop(self.lstm(self.emb(x))[0]))


class PlainClassifier(nn.Module):
    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.emb, self.lstm = nn.Embedding(vocab, emb), nn.LSTM(emb, hidden, batch_first=True)
        self.drop, self.out = nn.Dropout(0.5), nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.lstm(self.emb(x))[0]
        m = (x != 0).unsqueeze(-1).float()
        return self.out(self.drop((h * m).sum(1) / m.sum(1).clamp(min=1))).squeeze(-1)


def time_plain(kind: str, cfg, corpus, device, steps: int, warmup: int, max_len: int) -> dict:
    """Reference-style loop: batch 32, fp32, padded to max_len, no length bucketing."""
    torch.manual_seed(0)
    m = cfg.model
    vocab = corpus.tokenizer.get_vocab_size()
    net = (PlainLM if kind == "lm" else PlainClassifier)(vocab, m.embed_dim, m.hidden_size)
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    train = corpus.splits["train"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    width = max_len + 1 if kind == "lm" else max_len
    times, tokens = [], []
    for step in range(steps + warmup):
        idx = order[step * 32 : (step + 1) * 32]
        x = torch.zeros(len(idx), width, dtype=torch.long)
        for r, j in enumerate(idx.tolist()):
            s = train[j][:width]
            x[r, : len(s)] = s
        y = train.labels[idx].float()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        x, y = x.to(device), y.to(device)
        if kind == "lm":
            logits = net(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab), x[:, 1:].reshape(-1), ignore_index=0)
            n = int((x[:, 1:] != 0).sum())
        else:
            loss = F.binary_cross_entropy_with_logits(net(x), y)
            n = int((x != 0).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(n)
    return {"s": sum(times), "tokens": sum(tokens), "steps": len(times)}


def time_eval(cfg, corpus, eval_batch: int) -> dict:
    """Wall time of the evaluation every fine-tuning epoch runs (validation + the test-curve
    subset, `trainer.validate`) at `eval_batch` texts per batch, after one untimed pass."""
    c = cfg.classifier
    model = build.classifier(cfg, corpus, c.lr)
    dm = build.classification_datamodule(cfg, corpus, c.batch_size, eval_batch)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(model, dm, verbose=False)
    cuda = trainer.strategy.root_device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.validate(model, dm, verbose=False)
    if cuda:
        torch.cuda.synchronize()
    texts = [(dm.val_split, dm.val_idx), (corpus.splits["test"], dm.curve_idx)]
    tokens = sum(int(enc.lengths[idx].clamp(max=c.max_len).sum()) for enc, idx in texts)
    return {"s": time.perf_counter() - t0, "texts": len(dm.val_idx) + len(dm.curve_idx),
            "tokens": tokens, "device": trainer.strategy.root_device}  # fmt: skip


def bench_model(stage: str, cfg, corpus) -> L.LightningModule:
    """The model a row times: the preset's LM or classifier, built as its stage builds it (the
    classifier at `classifier.lr`; a cell's rate only scales its updates, not its time)."""
    if stage == "LM":
        return build.language_model(cfg, corpus)
    return build.classifier(cfg, corpus, cfg.classifier.lr)


def bench_config(exp: str, overrides: list[str]):
    """The preset's config, as its cells train, with every labeled example (`train_size=all`):
    the bench's epochs are whole passes over the training split."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("finetune", [f"experiment={exp}", "data.train_size=all", *overrides])


def epoch_tokens(corpus, max_len: int) -> int:
    return int(corpus.splits["train"].lengths.clamp(max=max_len).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--exp", default="quick", help="preset whose model, lengths and precision to use"
    )
    ap.add_argument("--steps", type=int, default=8, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--keras", action="store_true", help="add the reference's Keras code (Keras 3, torch)"
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.precision=32-true")
    args = ap.parse_args()
    cfg = bench_config(args.exp, args.overrides)
    torch.manual_seed(0)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    n_train, batches = len(corpus.splits["train"]), args.steps + args.warmup
    if n_train < 32 * batches:  # the plain loop reads distinct batches of 32 training texts
        ap.error(
            f"preset {args.exp} has {n_train} training texts, too few for {batches} batches of "
            "32 (--steps + --warmup): use fewer steps or a larger preset"
        )
    lm, c = cfg.lm, cfg.classifier
    prec, rows, devices, save = cfg.trainer.precision, [], set(), SaveTimer()

    def lmft_row(stage: str, batch_size: int) -> None:
        model = bench_model(stage, cfg, corpus)
        if stage == "LM":
            max_len, dm = lm.max_len, build.lm_datamodule(cfg, corpus, batch_size)
        else:
            max_len, dm = c.max_len, build.classification_datamodule(cfg, corpus, batch_size)
        timers = [save] if stage == "LM" and batch_size == lm.batch_size else []
        r = time_lightning(cfg, model, dm, args.steps, args.warmup, timers)
        devices.add(r["device"].type)
        extra = f"{lm.head}/{'fused' if model.fused else 'torch'}" if stage == "LM" else c.pooling
        rows.append((stage, "lmft", batch_size, prec, extra, max_len, r))

    for stage, kind, preset_batch, max_len in (
        ("LM", "lm", lm.batch_size, lm.max_len),
        ("classifier", "clf", c.batch_size, c.max_len),
    ):
        lmft_row(stage, preset_batch)
        if preset_batch != 32:
            lmft_row(stage, 32)  # the baseline's batch, for a like-for-like ratio
        (device,) = devices  # every row of the table on one device
        plain = time_plain(
            kind, cfg, corpus, torch.device(device), args.steps, args.warmup, max_len
        )
        rows.append(
            (stage, "plain loop", 32, "fp32", "full" if kind == "lm" else "mean", max_len, plain)
        )
        if kind == "lm" and args.keras:
            from keras_reference import time_keras_lm

            try:
                r = time_keras_lm(corpus, cfg, args.steps, args.warmup)
                rows.append((stage, "Keras ref", 32, "fp32", "full", lm.max_len, r))
            except ImportError as e:
                print(f"Keras row skipped ({e}); pip install keras")

    # A cell evaluates validation + the test-curve subset every epoch: at 1,000 labels that is
    # several times the texts it trains on, so the evaluation batch decides much of its time.
    # Rows: the default (2 x the training batch), the preset's, and twice the preset's.
    eval_batch = c.eval_batch_size or 2 * c.batch_size
    evals = {
        bs: time_eval(cfg, corpus, bs)
        for bs in sorted({2 * c.batch_size, eval_batch, 2 * eval_batch})
    }
    assert all(r["device"].type == device for r in evals.values()), "every row on one device"

    name = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"\nlmft bench: preset {args.exp}, device {name}, vocabulary "
        f"{corpus.tokenizer.get_vocab_size()}, hidden {cfg.model.hidden_size}, embed "
        f"{cfg.model.embed_dim}, {args.steps} timed steps per row"
    )
    head = (
        f"| {'stage':<10} | {'code':<10} | batch | {'dtype':<10} | {'head/pool':<14} | max_len"
        " | ms/step | tokens/s | epoch (s) | vs plain |"
    )
    print(head)
    print("|" + "|".join("-" * (len(p)) for p in head.split("|")[1:-1]) + "|")
    plain_tps = {st: r["tokens"] / r["s"] for st, code, *_, r in rows if code == "plain loop"}
    for stage, code, bs, dtype, hp, ml, r in rows:
        tps = r["tokens"] / r["s"]
        ratio = f"{tps / plain_tps[stage]:.2f}" if code != "plain loop" else ""
        epoch = epoch_tokens(corpus, ml) / tps
        print(
            f"| {stage:<10} | {code:<10} | {bs:>5} | {dtype:<10} | {hp:<14} | {ml:>7} | "
            f"{1000 * r['s'] / r['steps']:>7.0f} | {tps:>8.0f} | {epoch:>9.1f} | {ratio:>8} |"
        )
    print(
        f"\nLM resume checkpoint (weights + Adam state): {save.mb:.0f} MB, {save.s:.2f} s per save "
        f"(not in 'epoch (s)'); the preset writes one every {lm.checkpoint_every} epoch(s)"
    )
    print("\n| evaluation batch | texts | s per epoch's evaluation | tokens/s |")
    print("|---:|---:|---:|---:|")
    for bs, r in evals.items():
        print(f"| {bs} | {r['texts']:,} | {r['s']:.2f} | {r['tokens'] / r['s']:.0f} |")


if __name__ == "__main__":
    main()
