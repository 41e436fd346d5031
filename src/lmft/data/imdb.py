"""Find, download and read the IMDB Large Movie Review Dataset (official layout).

The archive may be the official `aclImdb_v1.tar.gz` (with `train/unsup`), the
labeled-only copy (no `train/unsup`), or either one extracted.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lmft.data.reader import DatasetReader
from lmft.data.texts import Texts
from lmft.errors import LmftError
from lmft.io import atomic_path

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
ENV_VAR = "LMFT_IMDB_ARCHIVE"
# Looked for (relative to the working directory) when no path is given.
DEFAULT_CANDIDATES = (
    "data/aclImdb_v1.tar.gz",
    "data/aclImdb",
    "../shared/data/aclImdb_v1_labeled.tar.gz",
)
SPLITS = ("train", "test", "unsup")
_REVIEW = re.compile(r"^(?:.*/)?aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
# urls_<folder>.txt: line k is the film page of review k of that folder (…/title/tt0453418/…)
_URLS = re.compile(r"^(?:.*/)?aclImdb/(train|test)/urls_(pos|neg|unsup)\.txt$")
_FILM = re.compile(r"/title/(tt\d+)")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass
class Reviews(Texts):
    """IMDB reviews of one split, sorted by (label, file id), with their star ratings and (where
    the archive has its `urls_*.txt`) their films as groups."""

    ratings: list[int] = field(default_factory=list)  # 1..10, 0 for unsup


def find_archive(path: str | None = None, data_dir: str = "data", download: bool = True) -> Path:
    """Return the archive to read: explicit path > $LMFT_IMDB_ARCHIVE > known places > download."""
    explicit = path or os.environ.get(ENV_VAR)
    if explicit:
        p = Path(explicit).expanduser()
        if not p.exists():
            source = "data.archive" if path else f"${ENV_VAR}"
            raise LmftError(
                f"IMDB archive not found at {p} (from {source}). "
                "Point it at aclImdb_v1.tar.gz or its extracted aclImdb/ folder."
            )
        return p
    candidates = [Path(data_dir) / "aclImdb_v1.tar.gz", Path(data_dir) / "aclImdb"]
    candidates += [Path(c) for c in DEFAULT_CANDIDATES]
    for c in candidates:
        if c.exists():
            return c
    if not download:
        raise LmftError(
            "IMDB archive not found; looked at: " + ", ".join(map(str, candidates)) + ". "
            f"Set {ENV_VAR}=/path/to/aclImdb_v1.tar.gz, pass data.archive=..., "
            "or allow data.download=true on a machine with internet."
        )
    return download_official(Path(data_dir) / "aclImdb_v1.tar.gz")


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_official(dest: Path, url: str = OFFICIAL_URL, md5: str = OFFICIAL_MD5) -> Path:
    """Download with a progress line, verify the md5, then move into place atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {url} -> {dest}", file=sys.stderr)
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                total = int(r.headers.get("Content-Length", 0))
                done = 0
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    done += len(chunk)
                    pct = f"{100 * done / total:5.1f}%" if total else ""
                    print(f"\r  {done / 2**20:7.1f} MiB {pct}", end="", file=sys.stderr)
            print(file=sys.stderr)
        except OSError as e:
            raise LmftError(
                f"Could not download the IMDB archive from {url} ({e}). Without internet, "
                f"set {ENV_VAR}=/path/to/aclImdb_v1.tar.gz or data.archive=..."
            ) from e
        got = md5sum(tmp)
        if got != md5:
            raise LmftError(
                f"Downloaded archive fails its checksum (md5 {got}, expected {md5}); "
                "nothing was kept. Try again, or download it by hand and set "
                f"{ENV_VAR}."
            )
    return dest


def _clean(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LmftError(f"Review {name} is not UTF-8 ({e}); the archive is damaged.") from e
    text = _BR.sub(" ", text).strip()
    if not text:
        raise LmftError(f"Review {name} is empty; the archive is damaged.")
    return text


def _member(name: str, unsup: bool) -> re.Match | None:
    """The layout match of a member or file to read: a review (labeled ones always, unlabeled
    ones if `unsup`) or a folder's urls file; None for anything else."""
    m = _REVIEW.match(name) or _URLS.match(name)
    return m if m and (unsup or m[2] != "unsup") else None


def _iter_files(archive: Path, unsup: bool):
    """Yield (layout match, bytes) for every file `_member` keeps, in a .tar.gz or an
    extracted folder; the match's string is the member name."""
    if archive.is_dir():
        root = archive if archive.name == "aclImdb" else archive / "aclImdb"
        for p in sorted(root.glob("*/*.txt")) + sorted(root.glob("*/*/*.txt")):
            if m := _member(f"aclImdb/{p.relative_to(root).as_posix()}", unsup):
                yield m, p.read_bytes()
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and (m := _member(member.name, unsup)):
                    yield m, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LmftError(
            f"Cannot read {archive} as a tar archive ({type(e).__name__}: {e}). "
            "The file is truncated or corrupted: download it again."
        ) from e


def _films(raw: bytes) -> list[str]:
    """The film of each line of a urls file (the page itself where it names no film)."""
    lines = raw.decode("utf-8", errors="replace").split()
    return [m[1] if (m := _FILM.search(u)) else u for u in lines]


def read_imdb(archive: Path, unsup: bool = True) -> dict[str, Reviews]:
    """Read train/test reviews, and the unlabeled ones (when present) if `unsup`; `<br />`
    becomes whitespace. Each review's film is its group, in a split whose folders all have
    their urls file (the official archive's do); a split without has no groups."""
    rows: dict[str, list[tuple[int, int, int, str, tuple[str, str]]]] = {s: [] for s in SPLITS}
    urls: dict[tuple[str, str], list[str]] = {}
    for m, raw in _iter_files(archive, unsup):
        if m.re is _URLS:
            urls[m[1], m[2]] = _films(raw)
            continue
        split, folder, file_id, rating = m.groups()
        label = {"pos": 1, "neg": 0, "unsup": -1}[folder]
        rating = int(rating) if folder != "unsup" else 0
        rows["unsup" if folder == "unsup" else split].append(
            (label, int(file_id), rating, _clean(raw, m.string), (split, folder))
        )
    for split in ("train", "test"):
        counts = {lab: sum(r[0] == lab for r in rows[split]) for lab in (0, 1)}
        if min(counts.values()) == 0:
            raise LmftError(
                f"{archive} is not an IMDB archive in the official layout: "
                f"found {counts[1]} pos / {counts[0]} neg reviews under aclImdb/{split}/. "
                "Expected aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt."
            )
    out = {}
    for split, r in rows.items():
        r.sort(key=lambda t: (t[0], t[1]))
        known = all(t[4] in urls and t[1] < len(urls[t[4]]) for t in r)
        films = [urls[t[4]][t[1]] for t in r] if known else []
        texts, labels, ratings = [t[3] for t in r], [t[0] for t in r], [t[2] for t in r]
        out[split] = Reviews(texts=texts, labels=labels, groups=films, ratings=ratings)
    return out


class IMDB(DatasetReader):
    """`data=imdb`: the archive `find_archive` finds; its unlabeled reviews only with
    `data.use_unsup` (an error where the archive has none: a run's texts never depend on which
    copy of the archive was found)."""

    def inputs(self) -> list[Path]:
        return [find_archive(self.cfg.archive, self.cfg.data_dir, self.cfg.download)]

    def read(self, inputs: list[Path]) -> tuple[dict[str, Texts], list[str]]:
        splits = read_imdb(inputs[0], unsup=self.cfg.use_unsup)
        if self.cfg.use_unsup and not splits["unsup"]:
            raise LmftError(
                f"data.use_unsup=true, but {inputs[0]} has no unlabeled reviews "
                "(aclImdb/train/unsup/): point data.archive at the official "
                f"aclImdb_v1.tar.gz ({OFFICIAL_URL}), or drop data.use_unsup=true."
            )
        return splits, ["neg", "pos"]
