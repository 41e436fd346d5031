"""Training throughput of lmft's two stages against a plain PyTorch loop, on one device.

    python bench/bench.py                      # preset `quick`, CPU or the GPU if there is one
    python bench/bench.py --exp seed --steps 20 --warmup 10
    python bench/bench.py --exp seed trainer.precision=bf16-mixed   # any config override

lmft rows run the real LightningModules through `Trainer.fit`, fed by lmft's DataModules
(length-bucketed batches, padding masked): at the preset's batch, head and precision; at
batch 32 with those; and at batch 32 like for like with the plain loop (float32, full
softmax or mean pooling). The plain loop is the straightforward re-implementation of the
reference code: the same architecture, batch 32, float32, every review padded to max_len,
full softmax over every position. Throughput counts real (non-padding) target tokens per
second for both, on the same reviews, so the ratio is work done per second. Epoch time =
real tokens of one epoch over the 25k training reviews (at the preset's max_len) /
throughput. Every row is timed `--repeats` times, a pass over all rows at a time; the table
gives medians, the spread, and each ratio to the plain loop within a pass.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lmft import build
from lmft.data import load_corpus
from lmft.heap import keep_freed_memory
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

    s = mb = None  # until a run has saved one

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


def dtype_name(precision) -> str:
    return "fp32" if str(precision) in ("32", "32-true") else str(precision)


def like_for_like(cfg, stage: str):
    """The preset's config at the plain loop's setting: float32, and the full softmax (LM) or
    mean pooling (classifier); the batch (32) is the row's."""
    part = {"lm": {"head": "full"}} if stage == "LM" else {"classifier": {"pooling": "mean"}}
    return OmegaConf.merge(cfg, {"trainer": {"precision": "32-true"}, **part})


def lmft_settings(cfg, stage: str) -> list[tuple[int, DictConfig]]:
    """The lmft rows of a stage, as (batch, config): the preset's batch and setting, batch 32
    at the preset's setting, and batch 32 like for like with the plain loop; rows that come
    out the same are timed once."""
    section = "lm" if stage == "LM" else "classifier"
    rows = {}
    for batch, c in (
        (cfg[section].batch_size, cfg),
        (32, cfg),
        (32, like_for_like(cfg, stage)),
    ):
        key = (batch, c.trainer.precision, c.lm.head if stage == "LM" else c.classifier.pooling)
        rows.setdefault(key, (batch, c))
    return list(rows.values())


def one_pass(args, cfg, corpus, save: SaveTimer) -> list[tuple[tuple, dict]]:
    """Every row of the table timed once, in order: lmft's, then the plain loop's (and the
    Keras code's), LM then classifier. A row is (stage, code, batch, dtype, head/pool,
    max_len) and its timing; the checkpoint is timed on the preset's LM row of the first pass."""
    rows, devices = [], set()
    for stage, kind, max_len in (
        ("LM", "lm", cfg.lm.max_len),
        ("classifier", "clf", cfg.classifier.max_len),
    ):
        for batch, c in lmft_settings(cfg, stage):
            model = bench_model(stage, c, corpus)
            if stage == "LM":
                dm = build.lm_datamodule(c, corpus, batch)
                preset_row = batch == cfg.lm.batch_size and c is cfg
                timers = [save] if preset_row and save.s is None else []
            else:
                dm, timers = build.classification_datamodule(c, corpus, batch), []
            r = time_lightning(c, model, dm, args.steps, args.warmup, timers)
            if stage == "LM":  # its softmax is chosen when the trainer sets the model up
                head = f"{c.lm.head}/{'fused' if model.fused else 'torch'}"
            else:
                head = c.classifier.pooling
            devices.add(r["device"].type)
            rows.append(((stage, "lmft", batch, dtype_name(c.trainer.precision), head, max_len), r))
        (device,) = devices  # every row of the table on one device
        plain = time_plain(
            kind, cfg, corpus, torch.device(device), args.steps, args.warmup, max_len
        )
        head = "full" if kind == "lm" else "mean"
        rows.append(((stage, "plain loop", 32, "fp32", head, max_len), plain))
        if kind == "lm" and args.keras:
            from keras_reference import time_keras_lm

            try:
                r = time_keras_lm(corpus, cfg, args.steps, args.warmup)
                rows.append(((stage, "Keras ref", 32, "fp32", "full", max_len), r))
            except ImportError as e:
                print(f"Keras row skipped ({e}); pip install keras")
    return rows


def summarize(passes: list[list[tuple[tuple, dict]]]) -> list[dict]:
    """Per row, over the passes: the median step time and throughput, their spread (the range
    as a share of the median), and the ratio to the plain loop of the same stage, taken within
    each pass (the two rows ran minutes apart at most) and given as median (min-max)."""
    out = []
    for i, (row, _) in enumerate(passes[0]):
        stage, code = row[0], row[1]
        tps = [p[i][1]["tokens"] / p[i][1]["s"] for p in passes]
        ms = [1000 * p[i][1]["s"] / p[i][1]["steps"] for p in passes]
        plain = [
            next(r["tokens"] / r["s"] for k, r in p if k[:2] == (stage, "plain loop"))
            for p in passes
        ]
        ratios = [t / q for t, q in zip(tps, plain, strict=True)]
        out.append(
            {
                "row": row,
                "ms": statistics.median(ms),
                "tps": statistics.median(tps),
                "spread": (max(tps) - min(tps)) / statistics.median(tps),
                "ratio": None if code == "plain loop" else statistics.median(ratios),
                "ratio_range": (min(ratios), max(ratios)),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--exp", default="quick", help="preset whose model, lengths and precision to use"
    )
    ap.add_argument("--steps", type=int, default=8, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--repeats", type=int, default=3, help="passes over every row (the table: median, spread)"
    )
    ap.add_argument(
        "--keras", action="store_true", help="add the reference's Keras code (Keras 3, torch)"
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.precision=32-true")
    args = ap.parse_args()
    # each row builds a Trainer, each Trainer says which devices it found: the table is what counts
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if args.repeats < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--repeats and --steps must be at least 1, --warmup at least 0")
    cfg = bench_config(args.exp, args.overrides)
    if cfg.trainer.keep_freed_memory:  # as the stages' trainers do; every row, the plain loop too
        keep_freed_memory()
    torch.manual_seed(0)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    n_train, batches = len(corpus.splits["train"]), args.steps + args.warmup
    if n_train < 32 * batches:  # the plain loop reads distinct batches of 32 training texts
        ap.error(
            f"preset {args.exp} has {n_train} training texts, too few for {batches} batches of "
            "32 (--steps + --warmup): use fewer steps or a larger preset"
        )
    save, passes = SaveTimer(), []
    for i in range(args.repeats):
        print(f"bench: pass {i + 1} of {args.repeats}", flush=True)
        passes.append(one_pass(args, cfg, corpus, save))
    device = passes[0][0][1]["device"].type

    # A cell evaluates validation + the test-curve subset every epoch: at 1,000 labels that is
    # several times the texts it trains on, so the evaluation batch decides much of its time.
    # Rows: the default (2 x the training batch), the preset's, and twice the preset's.
    c = cfg.classifier
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
        f"{cfg.model.embed_dim}, {args.steps} timed steps per row, {args.repeats} pass(es): "
        "median over passes; spread = (max - min) / median of tokens/s; vs plain = the ratio "
        "within each pass, median (min-max)"
    )
    head = (
        f"| {'stage':<10} | {'code':<10} | batch | {'dtype':<10} | {'head/pool':<14} | max_len"
        f" | ms/step | tokens/s | spread | epoch (s) | {'vs plain':<18} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(p)) for p in head.split("|")[1:-1]) + "|")
    for s in summarize(passes):
        stage, code, bs, dtype, hp, ml = s["row"]
        ratio = ""
        if s["ratio"] is not None:
            lo, hi = s["ratio_range"]
            ratio = f"{s['ratio']:.2f} ({lo:.2f}-{hi:.2f})"
        epoch = epoch_tokens(corpus, ml) / s["tps"]
        print(
            f"| {stage:<10} | {code:<10} | {bs:>5} | {dtype:<10} | {hp:<14} | {ml:>7} | "
            f"{s['ms']:>7.0f} | {s['tps']:>8.0f} | {100 * s['spread']:>5.0f}% | {epoch:>9.1f} | "
            f"{ratio:<18} |"
        )
    print(
        f"\nLM resume checkpoint (weights + Adam state): {save.mb:.0f} MB, {save.s:.2f} s per save "
        f"(not in 'epoch (s)'); the preset writes one every {cfg.lm.checkpoint_every} epoch(s)"
    )
    print("\n| evaluation batch | texts | s per epoch's evaluation | tokens/s |")
    print("|---:|---:|---:|---:|")
    for bs, r in evals.items():
        print(f"| {bs} | {r['texts']:,} | {r['s']:.2f} | {r['tokens'] / r['s']:.0f} |")


if __name__ == "__main__":
    main()
