"""The reference's own language model, as its Keras code builds and trains it, timed on lmft's ids.

Keras 3 with the torch backend (`pip install keras`; bench.py --keras). What it times is
the reference's code path: `Embedding(vocab, 200, mask_zero=True)` -> `LSTM(512,
return_sequences=True, dropout=0.3)` -> `Dropout(0.3)` -> `Dense(vocab, softmax)`, Adam and
`sparse_categorical_crossentropy`, batch 32, float32, reviews padded and truncated at the
front to a fixed length (`pad_sequences` defaults), inputs `x[:-1]`, targets `x[1:]`.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch


def pad_pre(seqs: list[torch.Tensor], length: int) -> np.ndarray:
    """Keras' `pad_sequences(seqs, maxlen=length)`: pad and truncate at the front, with 0."""
    out = np.zeros((len(seqs), length), dtype="int64")
    for i, s in enumerate(seqs):
        s = s[-length:].numpy()
        out[i, length - len(s) :] = s
    return out


def reference_lm(vocab: int, embed: int, hidden: int, rate: float):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            layers.Embedding(vocab, embed, mask_zero=True),
            layers.LSTM(hidden, return_sequences=True, dropout=rate),
            layers.Dropout(rate),
            layers.Dense(vocab, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def time_keras_lm(corpus, cfg, steps: int, warmup: int) -> dict:
    """Seconds, real target tokens and steps of `steps` timed `train_on_batch` calls."""
    m, length = cfg.model, cfg.lm.max_len + 1
    model = reference_lm(corpus.tokenizer.get_vocab_size(), m.embed_dim, m.hidden_size, 0.3)
    train = corpus.splits["train"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    times, tokens = [], []
    for step in range(steps + warmup):
        x = pad_pre([train[j] for j in order[step * 32 : (step + 1) * 32]], length)
        inputs, targets = x[:, :-1], x[:, 1:]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.train_on_batch(inputs, targets)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(int((inputs != 0).sum()))  # positions the masked loss counts
    return {"s": sum(times), "tokens": sum(tokens), "steps": len(times)}
