"""Shared fixtures: a synthetic IMDB-layout archive, composed configs that point at it, and
bench scripts run as a user runs them or imported."""

from __future__ import annotations

import importlib.util
import io
import random
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
REAL_ARCHIVE = ROOT / "../shared/data/aclImdb_v1_labeled.tar.gz"

POS = ["great", "wonderful", "superb", "loved", "brilliant", "moving"]
NEG = ["awful", "boring", "terrible", "hated", "dull", "mess"]
FILLER = ["the", "movie", "film", "plot", "actor", "scene", "story", "was", "a", "and", "it", "of"]


def review(rng: random.Random, label: int) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(8, 30))]
    for _ in range(3):
        words.insert(rng.randrange(len(words) + 1), rng.choice(POS if label else NEG))
    return " ".join(words) + ".<br /><br />" + rng.choice(FILLER) + "!"


def make_archive(
    path: Path,
    per_class: int = 120,
    unsup: int = 0,
    seed: int = 0,
    test_word: str | None = None,
    urls: bool = True,
) -> Path:
    """A .tar.gz in the official aclImdb layout with a separable sentiment signal; with `urls`,
    each folder's urls file: review i of either label is of film i // 3 (test's films apart)."""
    rng = random.Random(seed)
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, text: str) -> None:
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("README", "synthetic")
        for split in ("train", "test"):
            for label, folder in ((1, "pos"), (0, "neg")):
                for i in range(per_class):
                    text = review(rng, label)
                    if split == "test" and test_word:
                        text += f" {test_word}"
                    rating = rng.randint(7, 10) if label else rng.randint(1, 4)
                    add(f"{split}/{folder}/{i}_{rating}.txt", text)
                if urls:
                    first = 1_000_000 if split == "train" else 2_000_000
                    films = [f"http://www.imdb.com/title/tt{first + i // 3}/usercomments\n"
                             for i in range(per_class)]  # fmt: skip
                    add(f"{split}/urls_{folder}.txt", "".join(films))
        for i in range(unsup):
            add(f"train/unsup/{i}_0.txt", review(rng, rng.randint(0, 1)))
    return path


@pytest.fixture(scope="session")
def fake_archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("data") / "aclImdb_v1.tar.gz")


@pytest.fixture
def overrides(fake_archive, tmp_path) -> list[str]:
    """Smoke preset on the synthetic archive, every output under tmp_path."""
    return [
        "experiment=smoke",
        f"data.archive={fake_archive}",
        f"data.cache_dir={tmp_path}/cache",
        f"paths.outputs={tmp_path}/outputs",
    ]


@pytest.fixture
def ulmfit_overrides() -> tuple[list[str], list[str]]:
    """The ulmfit preset's switches at smoke size: the LM's (a 2-layer AWD-LSTM, tied
    softmax, slanted triangular schedule), and what fine-tuning adds (ULMFiT's rates,
    schedule, unfreezing and pooling; 3 epochs, so that unfreezing reaches every layer
    group)."""
    awd = [
        "model.num_layers=2",
        "model.output_size=32",
        "model.embed_dim=32",
        "model.embed_dropout=0.05",
        "model.input_dropout=0.1",
        "model.dropout=0.1",
        "model.weight_dropout=0.2",
        "lm.tie_weights=true",
        "lm.schedule=slanted_triangular",
    ]
    tune = [
        "classifier.lr_decay=2.6",
        "classifier.schedule=slanted_triangular",
        "classifier.gradual_unfreeze=true",
        "classifier.pooling=concat",
        "classifier.epochs=3",
    ]
    return awd, tune


@pytest.fixture
def cfg_for():
    from lmft.resolvers import register

    register()  # the configs' ${lmft....} resolvers, as each entry point registers them

    def make(stage: str, overrides: list[str], hydra: bool = False):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose(stage, overrides=overrides, return_hydra_config=hydra)

    return make


@pytest.fixture(scope="session")
def bench_module():
    """bench/<name>.py imported as a module (bench/ is not a package), to test its functions."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"lmft_{name}", ROOT / f"bench/{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def bench_cli():
    """`python bench/<name>.py ARGS` from the repository root, as the docs give it: the finished
    process, its output captured."""

    def run(name: str, *args) -> subprocess.CompletedProcess:
        cmd = [sys.executable, f"bench/{name}.py", *map(str, args)]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)

    return run
