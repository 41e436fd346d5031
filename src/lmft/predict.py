"""Classify texts with a fine-tuned run (its folder holds model.pt).

    python -m lmft.predict outputs/sweeps/quick/init=pretrained,n=1000,seed=0 "A fine film." "Dull."
    lmft-predict RUN_DIR --file reviews.txt --json      # one text per line; --file - for stdin
    echo "Great acting, weak plot." | lmft-predict RUN_DIR

Prints one line per text, in input order: label, its probability, the text (or, with --json,
one JSON object per line with every class's probability).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer

from lmft.data.datamodules import BucketBatchSampler, collate
from lmft.errors import LmftError
from lmft.models import SentimentClassifier
from lmft.models.handoff import load_model


def load_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode on `device`, tokenizer, class names, max_len) of a fine-tuned run."""
    model, blob = load_model(run_dir)
    tok = Tokenizer.from_str(blob["tokenizer"])
    return model.to(device), tok, blob["labels"], blob["max_len"]


@torch.inference_mode()
def predict(
    model: SentimentClassifier,
    tok: Tokenizer,
    labels: list[str],
    texts: list[str],
    max_len: int,
    batch_size: int = 64,
) -> list[dict]:
    """One dict per text (input order): label, probability, probabilities per class."""
    seqs = [torch.tensor(e.ids[:max_len]) for e in tok.encode_batch(texts)]
    lengths = torch.tensor([len(x) for x in seqs])
    device = next(model.parameters()).device
    probs: list[list[float] | None] = [None] * len(seqs)
    for idx in BucketBatchSampler(lengths, batch_size, shuffle=False):  # length order: less padding
        batch = collate([(seqs[i], 0) for i in idx])
        p = model.class_probs(batch["ids"].to(device), batch["lengths"].to(device)).cpu()
        for i, row in zip(idx, p.tolist(), strict=True):
            probs[i] = row
    out = []
    for text, row in zip(texts, probs, strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            {
                "text": text,
                "label": labels[best],
                "probability": row[best],
                "probabilities": dict(zip(labels, row, strict=True)),
            }
        )
    return out


def read_texts(args: argparse.Namespace) -> list[str]:
    """The texts in input order; a blank line stays (as "") so output lines match input lines."""
    texts = list(args.texts)
    if args.file:
        f = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with f:
            texts += [line.strip() for line in f]
    elif not texts:
        if sys.stdin.isatty():
            raise LmftError("No texts: give them as arguments, with --file, or on stdin.")
        texts = [line.strip() for line in sys.stdin]
    if not any(texts):
        raise LmftError("No texts to classify (the input was empty).")
    return texts


def predict_lines(model, tok, labels, texts: list[str], max_len: int, batch_size: int):
    """`predict` for the non-blank texts; a blank one gets a result with no label."""
    filled = iter(predict(model, tok, labels, [t for t in texts if t], max_len, batch_size))
    blank = {"text": "", "label": None, "probability": None, "probabilities": None}
    return [next(filled) if t else blank for t in texts]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="lmft-predict", description="Classify texts with a fine-tuned lmft run."
    )
    ap.add_argument("run_dir", help="folder of a fine-tuning run (holds model.pt)")
    ap.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    ap.add_argument("--file", help="one text per line; '-' reads stdin")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda")
    args = ap.parse_intermixed_args(argv)  # options may come before, between or after texts
    try:
        device = args.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tok, labels, max_len = load_run(args.run_dir, device)
        texts = read_texts(args)
        results = predict_lines(model, tok, labels, texts, max_len, args.batch_size)
    except (LmftError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for r in results:
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        elif r["label"] is None:
            print("\t\t")  # a blank input line
        else:
            print(f"{r['label']}\t{r['probability']:.3f}\t{r['text']}")


if __name__ == "__main__":
    main()
