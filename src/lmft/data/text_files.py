"""A user's labeled dataset (CSV / TSV / JSONL, or a folder per label) and plain-text corpora.

    data=text_classification data.train=reviews.csv [data.test=...] [data.validation=...]
    pretrain_data=text_files pretrain_data.files=[corpus/*.txt]

Labels are read as strings and numbered in the order of `data.labels` (or sorted, numerically
when they all are integers); every file is checked, so a typo in a label is an error that
names the file, the label and the classes that exist. A column of each training example's group
(`data.group_column`: a user, a product) lets `data.val_groups=true` hold out whole groups.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
from pathlib import Path

import torch

from lmft.data.reader import DatasetReader
from lmft.data.splits import whole_groups
from lmft.data.texts import Texts
from lmft.errors import LmftError

csv.field_size_limit(2**31 - 1)  # a CSV text of any length (the module's default is 128 KiB)
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in FORMATS:
        return FORMATS[path.suffix.lower()]
    raise LmftError(
        f"Cannot tell the format of {path} from its extension; set data.format to one of "
        "csv, tsv, jsonl, folder."
    )


def _rows(path: Path, fmt: str) -> list[tuple[int, dict]]:
    """(line number, row) of every example in a CSV, TSV or JSONL file (UTF-8, `utf8`); TSV is
    read without quote handling (a `"` is text); a text of any length."""
    text = utf8(path.read_bytes(), str(path))
    if fmt == "jsonl":
        rows = []
        for i, line in enumerate(io.StringIO(text, newline=None), 1):  # as a file's lines
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise LmftError(f"{path}, line {i}: not valid JSON ({e}).") from e
                if not isinstance(row, dict):
                    raise LmftError(
                        f"{path}, line {i}: a JSON {type(row).__name__}, not an object "
                        'with the text and label columns ({"text": ..., "label": ...}).'
                    )
                rows.append((i, row))
        return rows
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(
        io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",", quoting=quoting
    )
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise LmftError(f"{path}: not readable as {fmt.upper()} ({e}).") from e


def _value(value) -> str:
    """A label or group as text: JSON numbers as written (1 and 1.0 are compared later), None
    as ''."""
    return "" if value is None else str(value).strip()


def read_labeled(
    path: str | Path,
    fmt: str,
    text_column: str,
    label_column: str,
    group_column: str | None = None,
    group_needed: bool = True,
) -> tuple[list[str], list[str], list[str]]:
    """(texts, label strings, group strings) of one file, or of a folder with one subfolder of
    .txt per label; the groups are read from `group_column` (none without one). Where
    `group_needed` is false, a file may lack that column (no groups) or leave a group empty."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LmftError(f"Dataset file {path} does not exist.")
    fmt = _format(path, fmt)
    groups: list[str] = []
    if fmt == "folder":
        if group_column and group_needed:
            raise LmftError(
                f"{path} is a folder of .txt files, which has no column {group_column!r}: "
                "data.group_column needs a CSV, TSV or JSONL file."
            )
        files = sorted(p for p in path.glob("*/*") if p.is_file())
        texts = [utf8(p.read_bytes(), str(p)).strip() for p in files]
        labels = [p.parent.name for p in files]
        where = [str(p) for p in files]
    else:
        rows = _rows(path, fmt)
        columns = rows[0][1] if rows else {}
        if not group_needed and group_column not in columns:
            group_column = None  # an optional column this file lacks: no groups
        if rows:
            wanted = (text_column, label_column, group_column)
            missing = [c for c in wanted if c and c not in columns]
            if missing:
                raise LmftError(
                    f"{path} has no column {', '.join(map(repr, missing))}; its columns are "
                    f"{', '.join(map(repr, columns))}. Set data.text_column / "
                    "data.label_column" + (" / data.group_column." if group_column else ".")
                )
        texts = [_value(r.get(text_column)) for _, r in rows]
        labels = [_value(r.get(label_column)) for _, r in rows]
        if group_column:
            groups = [_value(r.get(group_column)) for _, r in rows]
        where = [f"{path}, line {i}" for i, _ in rows]
    if not texts:
        raise LmftError(f"{path} holds no examples.")
    fields = {"text": texts, "label": labels, "group": groups if group_needed else []}
    empty = [i for i in range(len(texts)) if not all(v[i] for v in fields.values() if v)]
    if empty:
        what = next(k for k, v in fields.items() if v and not v[empty[0]])
        raise LmftError(
            f"{where[empty[0]]}: an empty or missing {what} ({len(empty)} example(s) in all "
            f"with an empty {' or '.join(k for k, v in fields.items() if v)}). Remove them or "
            "fill them in."
        )
    _same_number(labels, path)
    print(f"{path}: {len(texts):,} examples", file=sys.stderr)
    return texts, labels, groups


def _same_number(labels: list[str], path: Path) -> None:
    """Two spellings of one number (1 and 1.0) would be two classes: refused."""
    by_value: dict[float, str] = {}
    for y in dict.fromkeys(labels):
        try:
            v = float(y)
        except ValueError:
            continue
        if v in by_value:
            raise LmftError(
                f"{path}: the labels {by_value[v]!r} and {y!r} are one number spelt two ways, "
                "which would make two classes. Spell every label of a class the same way."
            )
        by_value[v] = y


def utf8(raw: bytes, name: str) -> str:
    """`raw` as UTF-8 text, a byte-order mark (Excel's "CSV UTF-8") dropped; anything else is
    an error that names the input (`name`) and the byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LmftError(
            f"{name} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8."
        ) from e


def label_names(train_labels: list[str], given: list | None) -> list[str]:
    if given:
        return [str(x) for x in given]
    found = sorted(set(train_labels))
    if all(x.lstrip("-").isdigit() for x in found):
        found.sort(key=int)
    return found


def to_texts(
    texts: list[str], labels: list[str], groups: list[str], names: list[str], where: str
) -> Texts:
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise LmftError(
            f"{where} has label(s) {', '.join(map(repr, unknown[:5]))} that are not among the "
            f"classes {names}. Fix the data, or list every class in data.labels."
        )
    return Texts(texts, [index[y] for y in labels], groups)


def warn_shared_groups(train: list[str], other: list[str], path: str, cfg) -> None:
    """A warning on stderr where a given validation or test file shares groups with train: its
    accuracy then is not on unseen groups (as `data.val_groups` means for held-out splits)."""
    theirs = set(other) - {""}  # an empty group in such a file is no group
    shared = theirs & set(train)
    if shared:
        texts = sum(g in shared for g in other)
        print(
            f"warning: {path}: {len(shared):,} of its {len(theirs):,} groups ({texts:,} "
            f"texts) are also in {cfg.train} (column {cfg.group_column!r}), so its accuracy "
            "is not on unseen groups. Move them to one file if it should be.",
            file=sys.stderr,
        )


def holdout(data: Texts, fraction: float, seed: int, by_group: bool) -> tuple[Texts, Texts]:
    """(rest, held out): `fraction` of each label's examples, drawn with `seed`; with
    `by_group`, whole groups of about that many texts (`whole_groups`)."""
    if not 0 < fraction < 1:
        raise LmftError(f"data.test_fraction={fraction} must be between 0 and 1.")
    if by_group:
        size = max(1, round(fraction * len(data)))
        labels = torch.tensor(data.labels)
        held = set(whole_groups(labels, size, seed, data.groups, "data.test_fraction").tolist())
    else:
        held = set(data.per_label(lambda n: max(1, round(fraction * n)), seed))
    rest = [i for i in range(len(data)) if i not in held]
    return data.subset(rest), data.subset(sorted(held))


class TextClassification(DatasetReader):
    """`data=text_classification`: train / test (/ val when a validation file is given)."""

    def inputs(self) -> list[Path]:
        c = self.cfg
        return [Path(p).expanduser() for p in (c.train, c.validation, c.test) if p]

    def read(self, inputs: list[Path]) -> tuple[dict[str, Texts], list[str]]:
        cfg = self.cfg
        cols = (cfg.format, cfg.text_column, cfg.label_column)
        raw = {"train": read_labeled(cfg.train, *cols, cfg.group_column)}
        for split, path in (("val", cfg.validation), ("test", cfg.test)):
            if path:  # its groups, where it has the column, only to check for shared groups
                raw[split] = read_labeled(path, *cols, cfg.group_column, group_needed=False)
                warn_shared_groups(raw["train"][2], raw[split][2], path, cfg)
        names = label_names(raw["train"][1], cfg.labels)
        if len(names) < 2:
            raise LmftError(
                f"{cfg.train} has only the label {names}; a classifier needs two or more."
            )
        splits = {
            s: to_texts(*raw[s], names, path)
            for s, path in (("train", cfg.train), ("val", cfg.validation), ("test", cfg.test))
            if s in raw
        }
        if "test" not in splits:
            by_group = cfg.val_groups and bool(splits["train"].groups)
            splits["train"], splits["test"] = holdout(
                splits["train"], cfg.test_fraction, cfg.split_seed, by_group
            )
        return splits, names


def text_file_paths(patterns: list[str]) -> list[Path]:
    """Files matching the globs, sorted; an error names any pattern that matched nothing."""
    paths: list[Path] = []
    for pat in patterns:
        found = sorted(Path(p) for p in glob.glob(str(Path(pat).expanduser()), recursive=True))
        found = [p for p in found if p.is_file()]
        if not found:
            raise LmftError(f"pretrain_data.files: {pat!r} matches no file.")
        paths += found
    return paths


def read_plain_texts(paths: list[Path], doc_per: str) -> list[str]:
    """Documents: one per non-empty line (doc_per=line) or one per file (doc_per=file)."""
    if doc_per not in ("line", "file"):
        raise LmftError(f"pretrain_data.doc_per must be 'line' or 'file', not {doc_per!r}.")
    docs = []
    for p in paths:
        text = utf8(p.read_bytes(), str(p))
        docs += [t.strip() for t in text.splitlines()] if doc_per == "line" else [text.strip()]
    docs = [d for d in docs if d]
    if not docs:
        raise LmftError(f"pretrain_data.files ({len(paths)} file(s)) hold no text.")
    return docs
