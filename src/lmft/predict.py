"""Classify texts with a fine-tuning cell: a neural one (its folder holds model.pt) or a linear
baseline one (model.joblib).

    python -m lmft.predict outputs/sweeps/quick/init=pretrained,n=1000,seed=0 "A fine film." "Dull."
    lmft-predict RUN_DIR --file reviews.txt --json      # one text per line; --file - for stdin
    echo "Great acting, weak plot." | lmft-predict RUN_DIR

Prints one line per text, in input order: label, its probability, the text (or, with --json,
one JSON object per line with every class's probability). Texts are stripped of surrounding
whitespace; one with no tokens (a blank line or argument, or only characters the tokenizer
drops; for a baseline cell, no word its n-grams read) gets an empty label and probability, so
output lines always match input lines.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from functools import partial
from pathlib import Path

import torch
from tokenizers import Tokenizer

from lmft import baseline
from lmft.data.datamodules import BucketBatchSampler, collate
from lmft.data.text_files import utf8
from lmft.errors import LmftError
from lmft.models import SentimentClassifier
from lmft.models.handoff import load_model


def load_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode on `device`, tokenizer, class names, max_len) of a fine-tuned run."""
    model, blob = load_model(run_dir)
    tok = Tokenizer.from_str(blob["tokenizer"])
    return model.to(device), tok, blob["labels"], blob["max_len"]


@torch.inference_mode()
def probabilities(
    model: SentimentClassifier, tok: Tokenizer, texts: list[str], max_len: int, batch_size: int
) -> list[list[float] | None]:
    """Each text's probability of each class, in batches of like lengths; None for a text with
    no tokens (blank, or only what the tokenizer drops, such as "!!!" under
    `data.tokenizer=keras`): there is nothing to classify."""
    seqs = [torch.tensor(e.ids[:max_len], dtype=torch.long) for e in tok.encode_batch(texts)]
    some = [i for i, (t, x) in enumerate(zip(texts, seqs, strict=True)) if t.strip() and len(x)]
    lengths = torch.tensor([len(seqs[i]) for i in some], dtype=torch.long)
    device = next(model.parameters()).device
    probs: list[list[float] | None] = [None] * len(seqs)
    for idx in BucketBatchSampler(lengths, batch_size, shuffle=False):  # length order: less padding
        batch = collate([(seqs[some[i]], 0) for i in idx])
        p = model.class_probs(batch["ids"].to(device), batch["lengths"].to(device)).cpu()
        for i, row in zip(idx, p.tolist(), strict=True):
            probs[some[i]] = row
    return probs


def labeled(texts: list[str], probs: list[list[float] | None], labels: list[str]) -> list[dict]:
    """One dict per text (input order): the most probable label, its probability, every
    class's (all None where `probs` has none)."""
    out = []
    for text, row in zip(texts, probs, strict=True):
        if row is None:
            out.append({"text": text, "label": None, "probability": None, "probabilities": None})
            continue
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


def _lines(raw: bytes, name: str) -> list[str]:
    """The stripped lines of UTF-8 bytes."""
    return [line.strip() for line in io.StringIO(utf8(raw, name), newline=None)]


def read_texts(args: argparse.Namespace) -> list[str]:
    """The texts in input order, each stripped of surrounding whitespace; a blank one stays (as
    "") so that output lines match input lines, from arguments and files alike."""
    texts = [t.strip() for t in args.texts]
    if args.file == "-":
        texts += _lines(sys.stdin.buffer.read(), "standard input")
    elif args.file:
        if not Path(args.file).is_file():
            raise LmftError(f"--file {args.file}: no such file.")
        texts += _lines(Path(args.file).read_bytes(), args.file)
    elif not texts:
        if sys.stdin.isatty():
            raise LmftError("No texts: give them as arguments, with --file, or on stdin.")
        texts = _lines(sys.stdin.buffer.read(), "standard input")
    if not any(texts):
        raise LmftError("No texts to classify (the input was empty).")
    return texts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="lmft-predict", description="Classify texts with a fine-tuned lmft run."
    )
    ap.add_argument("run_dir", help="folder of a fine-tuning cell (model.pt or model.joblib)")
    ap.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    ap.add_argument("--file", help="one text per line; '-' reads stdin")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    neural = "a neural cell's; a baseline cell reads every text at once, on the CPU"
    ap.add_argument("--batch-size", type=int, default=64, help=f"texts per batch ({neural})")
    ap.add_argument("--device", default="auto", help=f"auto (GPU if any), cpu, cuda ({neural})")
    args = ap.parse_intermixed_args(argv)  # options may come before, between or after texts
    try:
        device = args.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # the model first, so that a wrong folder is said before stdin is read
        if (Path(args.run_dir) / baseline.MODEL_FILE).exists():  # a linear baseline cell
            pipeline, labels = baseline.load_model(args.run_dir)
            probs = partial(baseline.probabilities, pipeline, labels)
        else:
            model, tok, labels, max_len = load_run(args.run_dir, device)
            probs = partial(probabilities, model, tok, max_len=max_len, batch_size=args.batch_size)
        texts = read_texts(args)
        results = labeled(texts, probs(texts), labels)
    except (LmftError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for r in results:
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        elif r["label"] is None:
            print(f"\t\t{r['text']}")  # nothing to classify: a blank line, or no tokens
        else:
            print(f"{r['label']}\t{r['probability']:.3f}\t{r['text']}")


if __name__ == "__main__":
    main()
