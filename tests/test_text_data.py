"""Your own data: CSV / JSONL / folder datasets, plain-text pretraining corpora, prediction."""

import csv
import json
import random
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import FILLER, NEG, POS

from lmft import finetune, predict, pretrain, report
from lmft.data import LMDataModule, load_corpus
from lmft.errors import LmftError

MID = ["okay", "average", "fine", "decent", "mixed", "passable"]
WORDS = {"neg": NEG, "pos": POS, "mid": MID, "meh": MID}


def text(rng: random.Random, label: str) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 20))]
    for _ in range(3):
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[label]))
    return " ".join(words) + "."


def examples(labels, n_per_label: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"text": text(rng, y), "label": y} for y in labels for _ in range(n_per_label)]
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict], text_col="text", label_col="label") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([label_col, "id", text_col])
        w.writerows([r["label"], i, r["text"]] for i, r in enumerate(rows))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def base(tmp_path, *extra) -> list[str]:
    return [
        "experiment=smoke",
        "data=text_classification",
        f"data.cache_dir={tmp_path}/cache",
        f"paths.outputs={tmp_path}/outputs",
        "data.val_size=0.2",
        *extra,
    ]


@pytest.fixture
def binary_csv(tmp_path):
    train = write_csv(tmp_path / "train.csv", examples(["neg", "pos"], 100, 0))
    test = write_csv(tmp_path / "test.csv", examples(["neg", "pos"], 40, 1))
    return base(tmp_path, f"data.train={train}", f"data.test={test}")


def test_binary_csv_runs_both_stages_and_predict_round_trips(binary_csv, cfg_for, tmp_path):
    cfg = cfg_for("pretrain", binary_csv)
    pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    cfg = cfg_for("finetune", [*binary_csv, "classifier.epochs=3"])
    cell = Path(cfg.paths.sweep_dir) / cfg.cell
    m = finetune.run(cfg, cell)
    assert (m["n_val"], m["n_test"], m["train_size"]) == (40, 80, 160)

    model, tok, labels, max_len = predict.load_run(cell)
    assert labels == ["neg", "pos"] and model.head.out_features == 1  # binary: sigmoid
    rows = list(csv.DictReader((tmp_path / "test.csv").read_text().splitlines()))
    texts = [r["text"] for r in rows]
    out = predict.labeled(texts, predict.probabilities(model, tok, texts, max_len, 7), labels)
    acc = sum(o["label"] == r["label"] for o, r in zip(out, rows, strict=True)) / len(rows)
    # model.pt holds the best-validation epoch: the accuracy the report uses
    assert acc == pytest.approx(m["test/acc_at_best_val"])
    assert all(o["probability"] >= 0.5 for o in out)
    assert all(sum(o["probabilities"].values()) == pytest.approx(1) for o in out)

    # the documented report command names only the preset (data=imdb): no IMDB anchors for
    # cells of another dataset
    rcfg = cfg_for("report", ["experiment=smoke", f"paths.outputs={tmp_path}/outputs"])
    report.run(rcfg, Path(rcfg.report_dir))
    md = (Path(rcfg.report_dir) / "summary.md").read_text()
    assert "# lmft report: smoke" in md and "Published anchors" not in md


def test_predict_cli_args_stdin_json_and_errors(binary_csv, cfg_for, tmp_path, capsys):
    cfg = cfg_for("finetune", [*binary_csv, "init=scratch", "classifier.epochs=1"])
    cell = Path(cfg.paths.sweep_dir) / cfg.cell
    finetune.run(cfg, cell)
    capsys.readouterr()
    predict.main([str(cell), "a great wonderful film", "boring awful mess"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in {"neg", "pos"}
    assert lines[1].endswith("\tboring awful mess")
    done = subprocess.run(
        [sys.executable, "-m", "lmft.predict", str(cell), "--json", "--batch-size", "1"],
        input="great movie\n\nawful plot\n",
        capture_output=True,
        text=True,
        check=True,
    )
    objs = [json.loads(x) for x in done.stdout.splitlines()]
    assert [o["text"] for o in objs] == ["great movie", "", "awful plot"]  # lines stay aligned
    assert objs[1]["label"] is None and set(objs[0]["probabilities"]) == {"neg", "pos"}
    capsys.readouterr()
    predict.main([str(cell), "--json", "great fun"])  # options before, between, after texts
    predict.main([str(cell), "dull", "--batch-size", "2", "awful"])
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0])["text"] == "great fun" and out[2].endswith("\tawful")
    with pytest.raises(SystemExit) as e:
        predict.main([str(tmp_path)])
    assert e.value.code == 2 and "No model.pt" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(SystemExit):
        predict.main([str(cell), "--file", str(empty)])
    assert "empty" in capsys.readouterr().err
    assert any(ep.value == "lmft.predict:main" for ep in entry_points(name="lmft-predict"))


def test_predict_edge_inputs_are_consistent_and_errors_say_what(binary_csv, cfg_for, tmp_path):
    """A text with no tokens gets no label (never a crashed batch); a whitespace-only argument
    is treated as a blank line is; bad UTF-8, a missing --file and an encoder.pt given as
    model.pt are `error:` lines that say what they are."""
    ov = [*binary_csv, "init=scratch", "classifier.epochs=1", "data.tokenizer=keras"]
    cfg = cfg_for("finetune", [*ov, "name=keras"])
    cell = Path(cfg.paths.sweep_dir) / cfg.cell
    finetune.run(cfg, cell)

    def run(*args, stdin=b""):
        return subprocess.run([sys.executable, "-m", "lmft.predict", str(cell), *args],
                              input=stdin, capture_output=True)  # fmt: skip

    r = run("--json", "great film", "!!!", "   ", "dull")
    objs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert r.returncode == 0 and [o["text"] for o in objs] == ["great film", "!!!", "", "dull"]
    assert [o["label"] is None for o in objs] == [False, True, True, False]
    r = run("--file", "-", stdin=b"good \xff film\n")
    assert r.returncode == 2 and b"error: standard input is not UTF-8" in r.stderr
    r = run("--file", str(tmp_path / "nope.txt"))
    assert r.returncode == 2 and b"nope.txt: no such file" in r.stderr
    fake = tmp_path / "fake"
    fake.mkdir()
    pcfg = cfg_for("pretrain", [*binary_csv, "name=keras", "data.tokenizer=keras"])
    pretrain.run(pcfg, Path(pcfg.paths.pretrain_dir))
    (fake / "model.pt").write_bytes((Path(pcfg.paths.pretrain_dir) / "encoder.pt").read_bytes())
    with pytest.raises(LmftError, match="a pretraining run's encoder"):
        predict.load_run(fake)


def test_three_class_jsonl_softmax_head(cfg_for, tmp_path, capsys):
    rows = examples(["neg", "mid", "pos"], 60, 0)
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = cfg_for(
        "finetune",
        base(
            tmp_path,
            f"data.train={train}",
            "init=scratch",
            "classifier.epochs=6",
            "classifier.lr=0.01",
        ),
    )
    m = finetune.run(cfg, tmp_path / "cell")
    assert m["n_test"] == 36 and m["n_val"] == 29  # 20% of each label held out, then 20% val
    model, _, labels, _ = predict.load_run(tmp_path / "cell")
    assert labels == ["mid", "neg", "pos"] and model.head.out_features == 3
    assert m["test/acc_at_best_val"] > 0.6  # chance is 1/3
    # the linear baseline on the same three classes, the same held-out splits
    base_cfg = cfg_for("finetune", base(tmp_path, f"data.train={train}", "init=baseline"))
    b = finetune.run(base_cfg, tmp_path / "baseline")
    assert (b["n_test"], b["n_val"]) == (m["n_test"], m["n_val"])
    assert b["test/acc_at_best_val"] > 0.6
    # lmft-predict serves the baseline cell too: every class's probability; "!!!" has no word
    capsys.readouterr()
    predict.main([str(tmp_path / "baseline"), "--json", "okay average fine decent", "!!!"])
    said, nothing = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert said["label"] == "mid" and list(said["probabilities"]) == ["mid", "neg", "pos"]
    assert sum(said["probabilities"].values()) == pytest.approx(1)
    assert nothing == {"text": "!!!", "label": None, "probability": None, "probabilities": None}


def test_folder_per_label_and_stratified_holdout(cfg_for, tmp_path):
    root = tmp_path / "reviews"
    for i, r in enumerate(examples(["neg", "pos"], 30, 0)):
        (root / r["label"]).mkdir(parents=True, exist_ok=True)
        (root / r["label"] / f"{i}.txt").write_text(r["text"])
    cfg = cfg_for("finetune", base(tmp_path, f"data.train={root}", "data.test_fraction=0.25"))
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    train, test = corpus.splits["train"], corpus.splits["test"]
    assert corpus.labels == ["neg", "pos"]
    assert len(test) == 16 and test.labels.tolist().count(1) == 8  # 25% of each label
    assert len(train) == 44 and train.labels.tolist().count(0) == 22


def test_plain_text_corpus_for_the_lm(binary_csv, cfg_for, tmp_path):
    docs = tmp_path / "corpus"
    docs.mkdir()
    (docs / "a.txt").write_text("zyzzyva is a word\n\nonly the corpus has it\n")
    (docs / "b.txt").write_text("one more line\n")
    files = f"pretrain_data.files=[{docs}/*.txt]"
    only = cfg_for(
        "pretrain",
        [*binary_csv, "pretrain_data=text_files", files, "pretrain_data.include_task=false"],
    )
    corpus = load_corpus(only.data, only.pretrain_data)
    assert len(corpus.splits["extra"]) == 3  # one document per non-empty line
    assert corpus.tokenizer.token_to_id("zyzzyva") is not None
    lm = dict(batch_size=4, max_len=16, seed=0)
    dm = LMDataModule(corpus, include_task=False, **lm)
    dm.setup()
    assert sum(len(d) for d in dm.train_sets) == 3
    dm = LMDataModule(corpus, include_task=True, **lm)
    dm.setup()
    assert sum(len(d) for d in dm.train_sets) == 3 + 160
    per_file = cfg_for(
        "pretrain", [*binary_csv, "pretrain_data=text_files", files, "pretrain_data.doc_per=file"]
    )
    assert len(load_corpus(per_file.data, per_file.pretrain_data).splits["extra"]) == 2
    m = pretrain.run(only, Path(only.paths.pretrain_dir))
    assert m["history"][-1]["lm/val_ppl"] > 0  # trains on 3 lines, measured on the task's val


def test_clear_errors_for_bad_data(binary_csv, cfg_for, tmp_path):
    def corpus(*extra):
        cfg = cfg_for("finetune", [*binary_csv, *extra])
        return load_corpus(cfg.data, cfg.pretrain_data)

    with pytest.raises(LmftError, match="no column 'review'.*'label', 'id', 'text'"):
        corpus("data.text_column=review")
    bad = write_csv(tmp_path / "bad.csv", examples(["neg", "pos", "meh"], 5, 3))
    with pytest.raises(LmftError, match="label.*'meh'.*not among the classes"):
        corpus(f"data.test={bad}")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LmftError, match="holds no examples"):
        corpus(f"data.test={empty}")
    with pytest.raises(LmftError, match="does not exist"):
        corpus(f"data.train={tmp_path}/nope.csv")
    with pytest.raises(LmftError, match="matches no file"):
        corpus("pretrain_data=text_files", f"pretrain_data.files=[{tmp_path}/none/*.txt]")
    with pytest.raises(LmftError, match="include_task=false needs"):
        corpus("pretrain_data.include_task=false")
    (tmp_path / "train.csv.bak").write_text("x")
    with pytest.raises(LmftError, match="data.format"):
        corpus(f"data.train={tmp_path}/train.csv.bak")


def test_validation_file_is_the_whole_validation_split(binary_csv, cfg_for, tmp_path):
    from lmft.data import ClassificationDataModule

    val = write_csv(tmp_path / "val.csv", examples(["neg", "pos"], 15, 2))
    cfg = cfg_for("finetune", [*binary_csv, f"data.validation={val}"])
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    dm = ClassificationDataModule(corpus, train_size="all", batch_size=8, max_len=32, seed=0)
    assert len(dm.val_idx) == 30 and dm.train_size == 200  # no examples held out of train
    dm.setup()
    assert dm.val_set.encoded is corpus.splits["val"]


def test_a_group_column_holds_out_whole_groups_for_validation_and_test(cfg_for, tmp_path):
    """With data.group_column and data.val_groups=true, test (held out of train) and validation
    take whole groups: no group on both sides of either, each near its size, labels balanced;
    without data.val_groups the same test fraction shares groups with train."""
    from lmft.data.reader import dataset_reader

    rows = examples(["neg", "pos"], 100, 0)
    for i, r in enumerate(rows):
        r["user"] = f"u{i // 4}"  # 50 users of 4 examples each, labels mixed
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    opts = [f"data.train={path}", "data.group_column=user", "data.test_fraction=0.2"]
    cfg = cfg_for("finetune", base(tmp_path, *opts, "data.val_groups=true"))
    reader = dataset_reader(cfg.data)
    texts, _ = reader.read(reader.inputs())
    train, test = texts["train"], texts["test"]
    assert not set(train.groups) & set(test.groups)
    assert 32 <= len(test) <= 48 and len(train) + len(test) == 200  # near 0.2, in whole users
    assert 0.3 <= sum(test.labels) / len(test) <= 0.7
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    val = {train.groups[i] for i in corpus.val_idx.tolist()}
    assert val and not val & {train.groups[i] for i in corpus.pool_idx.tolist()}
    assert corpus.splits["test"].labels.tolist() == test.labels
    plain = dataset_reader(cfg_for("finetune", base(tmp_path, *opts)).data)
    split = plain.read(plain.inputs())[0]
    assert set(split["train"].groups) & set(split["test"].groups)


def test_a_given_test_file_that_shares_groups_with_train_is_warned_of(cfg_for, tmp_path, capsys):
    """A given test file read with data.group_column: the groups it shares with train are
    counted in a warning; one without the column, with an empty group, or with no shared group
    reads quietly (its groups serve that check alone)."""
    from lmft.data.reader import dataset_reader

    def users(rows, first):
        return [{**r, "user": f"u{first + i // 4}"} for i, r in enumerate(rows)]

    train = write_jsonl(tmp_path / "train.jsonl", users(examples(["neg", "pos"], 20, 0), 0))
    shared = users(examples(["neg", "pos"], 6, 1), 8)  # u8-u10: u8, u9 are in train
    test = {
        "shared": [{**shared[0], "user": ""}, *shared[1:]],  # an empty group: not a group
        "apart": users(examples(["neg", "pos"], 6, 1), 100),
        "no_column": examples(["neg", "pos"], 6, 1),
    }
    for name, rows in test.items():
        path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
        opts = [f"data.train={train}", f"data.test={path}", "data.group_column=user"]
        reader = dataset_reader(cfg_for("finetune", base(tmp_path, *opts)).data)
        split = reader.read(reader.inputs())[0]
        assert len(split["train"]) == 40 and len(split["test"]) == 12
        warned = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
        if name == "shared":
            assert warned == [
                f"warning: {path}: 2 of its 3 groups (7 texts) are also in {train} (column "
                "'user'), so its accuracy is not on unseen groups. Move them to one file if it "
                "should be."
            ]
        else:
            assert not warned


def test_a_group_column_must_be_there_and_filled(tmp_path):
    from lmft.data.text_files import read_labeled

    path = tmp_path / "d.csv"
    path.write_text("text,label,user\ngood,pos,ann\nbad,neg,\n")
    with pytest.raises(LmftError, match=r"d.csv, line 3: an empty or missing group"):
        read_labeled(path, "auto", "text", "label", "user")
    with pytest.raises(LmftError, match="no column 'customer'.*data.group_column"):
        read_labeled(path, "auto", "text", "label", "customer")
    (tmp_path / "folder" / "pos").mkdir(parents=True)
    (tmp_path / "folder" / "pos" / "a.txt").write_text("good")
    with pytest.raises(LmftError, match="needs a CSV, TSV or JSONL file"):
        read_labeled(tmp_path / "folder", "auto", "text", "label", "user")


def test_tsv_with_own_column_names(tmp_path):
    from lmft.data.text_files import read_labeled

    path = tmp_path / "d.tsv"
    path.write_text("sentence\tclass\tnote\nfine, really fine\t1\tx\nawful\t0\ty\n")
    texts, labels, groups = read_labeled(path, "auto", "sentence", "class")
    assert texts == ["fine, really fine", "awful"] and labels == ["1", "0"] and groups == []
    from lmft.data.text_files import label_names

    assert label_names(["10", "2", "1", "2"], None) == ["1", "2", "10"]  # integers: numeric order
    assert label_names(["b", "a"], ["b", "a"]) == ["b", "a"]  # data.labels fixes the order


def refused(path: Path, content: str | bytes, message: str) -> None:
    """`content`, written to `path`, is refused by the reader with `message`."""
    from lmft.data.text_files import read_labeled

    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LmftError, match=message):
        read_labeled(path, "auto", "text", "label")


def test_own_data_never_changes_silently(tmp_path, capsys):
    """A missing label is an error naming the file and line; one number spelt two ways is
    refused; a TSV text starting with a quote is read as text; each file's count is printed."""
    from lmft.data.text_files import read_labeled

    jl, cs = tmp_path / "d.jsonl", tmp_path / "d.csv"
    missing = '{"text": "good", "label": "pos"}\n{"text": "bad", "label": null}\n'
    refused(jl, missing, r"d.jsonl, line 2: an empty or missing label")
    refused(cs, "text,label\ngood,pos\nbad,\n", r"d.csv, line 3: an empty or missing label")
    twice = '{"text": "good", "label": 1}\n{"text": "bad", "label": 1.0}\n'
    refused(jl, twice, "'1' and '1.0' are one number spelt two ways")
    rows = ['"quoted start\t1'] + [f"text {i}\t{i % 2}" for i in range(300)]
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    capsys.readouterr()
    texts, labels, _ = read_labeled(tsv, "auto", "text", "label")
    assert len(texts) == 301 and texts[0] == '"quoted start' and labels[:2] == ["1", "0"]
    assert f"{tsv}: 301 examples" in capsys.readouterr().err


def test_own_data_faults_are_error_lines_and_excel_csv_reads(tmp_path):
    """Invalid UTF-8 and a JSONL line that is not an object are `error:` messages with the file
    (and line); a BOM (Excel's "CSV UTF-8") and a text over csv's 128 KiB default both read."""
    from lmft.data.text_files import read_labeled

    bad_utf8 = b"text,label\ngood \xff\xfe,pos\n"
    refused(tmp_path / "bad.csv", bad_utf8, r"bad.csv is not UTF-8 text \(byte")
    array = '{"text": "good", "label": "pos"}\n["bad", "neg"]\n'
    refused(tmp_path / "arr.jsonl", array, r"arr.jsonl, line 2: a JSON list, not an object")
    excel = tmp_path / "excel.csv"
    long = "word " * 40_000  # 200 KB in one field
    excel.write_bytes("\ufefftext,label\n".encode() + f'"{long}",pos\nshort,neg\n'.encode())
    texts, labels, _ = read_labeled(excel, "auto", "text", "label")
    assert labels == ["pos", "neg"] and len(texts[0]) == len(long.strip())


def test_long_overrides_give_folder_names_that_fit_and_stay_stable(tmp_path):
    """Three data files in a deep folder and more overrides: a cell name of over 255 bytes
    becomes its start and a hash, the same on a rerun (which then skips the finished cells)."""
    deep = tmp_path / ("a_rather_long_folder_name_for_data_" * 3) / "and_one_more_level_of_it"
    deep.mkdir(parents=True)
    sizes = (("train", 60), ("validation", 15), ("test", 20))
    paths = [write_csv(deep / f"{s}_split_file.csv", examples(["neg", "pos"], n, i))
             for i, (s, n) in enumerate(sizes)]  # fmt: skip
    args = [
        sys.executable, "-m", "lmft.finetune", "-m", "init=scratch,baseline",
        *base(tmp_path, f"data.train={paths[0]}", f"data.validation={paths[1]}",
              f"data.test={paths[2]}", "classifier.epochs=1", "classifier.lr=0.002"),
    ]  # fmt: skip
    for _ in ("first run", "rerun"):
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        cells = sorted(p for p in (tmp_path / "outputs/sweeps/smoke").iterdir() if p.is_dir())
        assert len(cells) == 4 and all(len(c.name.encode()) <= 255 for c in cells)
        assert any(",hash=" in c.name for c in cells)
    assert r.stdout.count("already finished") == 4


THIRD_READER = """
from pathlib import Path

from lmft.data.reader import DatasetReader
from lmft.data.texts import Texts


class LabelTabText(DatasetReader):
    '''<folder>/train.txt and test.txt, a "label<TAB>text" per line; unlabeled.txt for the LM.'''

    def inputs(self):
        return [Path(self.cfg.folder)]

    def read(self, inputs):
        splits = {}
        for split in ("train", "test"):
            rows = [line.split("\\t", 1) for line in (inputs[0] / f"{split}.txt").open()]
            splits[split] = Texts([t.strip() for _, t in rows], [int(y) for y, _ in rows])
        splits["unsup"] = Texts.unlabeled((inputs[0] / "unlabeled.txt").read_text().splitlines())
        return splits, ["bad", "good"]
"""


def test_a_dataset_reader_written_outside_lmft_is_picked_by_target(cfg_for, tmp_path, monkeypatch):
    """What docs/own-data.md's "Adding a dataset reader" promises: a DatasetReader subclass in a
    module of its own, named by data._target_, feeds the tokenizer, both stages and the
    baseline; a target that is no reader is refused with a hint."""
    (tmp_path / "third_reader.py").write_text(THIRD_READER)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "mydata"
    folder.mkdir()
    for split, n, seed in (("train", 100, 0), ("test", 40, 1)):
        rows = examples(["neg", "pos"], n, seed)
        lines = [f"{int(r['label'] == 'pos')}\t{r['text']}\n" for r in rows]
        (folder / f"{split}.txt").write_text("".join(lines))
    (folder / "unlabeled.txt").write_text("zyzzyva is a word only the lm reads\n" * 5)
    ov = [*base(tmp_path), "data._target_=third_reader.LabelTabText", f"+data.folder={folder}"]
    cfg = cfg_for("pretrain", ov)
    corpus = load_corpus(cfg.data, cfg.pretrain_data)
    assert corpus.labels == ["bad", "good"] and len(corpus.splits["unsup"]) == 5
    assert corpus.tokenizer.token_to_id("zyzzyva") is not None
    pretrain.run(cfg, Path(cfg.paths.pretrain_dir))
    for init in ("pretrained", "baseline"):
        cfg = cfg_for("finetune", [*ov, f"init={init}", "classifier.epochs=1"])
        m = finetune.run(cfg, Path(cfg.paths.sweep_dir) / cfg.cell)
        assert (m["n_val"], m["n_test"], m["train_size"]) == (40, 80, 160)
    bad = cfg_for("pretrain", [*ov, "data._target_=lmft.data.texts.Texts"])
    with pytest.raises(LmftError, match="'lmft.data.texts.Texts' is not an lmft DatasetReader"):
        load_corpus(bad.data, bad.pretrain_data)
