import tarfile

import pytest
import torch
from conftest import REAL_ARCHIVE, make_archive
from omegaconf import OmegaConf

from lmft.data import ClassificationDataModule, LMDataModule, load_corpus
from lmft.data.corpus import build_tokenizer, cache_key
from lmft.data.datamodules import BucketBatchSampler
from lmft.data.imdb import ENV_VAR, find_archive, read_imdb
from lmft.data.splits import balanced_subset, validation_indices
from lmft.errors import LmftError
from lmft.train_size import parse_train_size

TASK = OmegaConf.load("conf/pretrain_data/task.yaml")  # the LM reads the task's own texts


def data_group(name: str):
    """conf/data/<name>.yaml on top of the keys every dataset shares (its defaults list)."""
    own = OmegaConf.load(f"conf/data/{name}.yaml")
    own.pop("defaults")
    return OmegaConf.merge(OmegaConf.load("conf/data/_shared.yaml"), own)


def data_cfg(archive, tmp_path, **kw):
    base = data_group("imdb")
    base.update({"archive": str(archive), "cache_dir": str(tmp_path / "cache"), "val_size": 40})
    base.update(kw)
    return base


def test_reads_layout_labels_ratings_and_br(fake_archive):
    r = read_imdb(fake_archive)
    assert len(r["train"]) == len(r["test"]) == 240 and len(r["unsup"]) == 0
    assert sum(r["train"].labels) == 120
    pairs = list(zip(r["train"].ratings, r["train"].labels, strict=True))
    assert all(7 <= x <= 10 if y else 1 <= x <= 4 for x, y in pairs)
    assert not any("<br" in t for t in r["train"].texts)


def test_extracted_folder_and_unsup_read_like_the_archive_and_only_when_asked(tmp_path):
    arc = make_archive(tmp_path / "a.tar.gz", per_class=5, unsup=7)
    with tarfile.open(arc) as t:
        t.extractall(tmp_path / "x", filter="data")
    a, b = read_imdb(arc), read_imdb(tmp_path / "x" / "aclImdb")
    assert len(a["unsup"]) == 7 and all(y == -1 for y in a["unsup"].labels)
    for split in ("train", "test", "unsup"):
        assert a[split].texts == b[split].texts and a[split].labels == b[split].labels
        assert a[split].groups == b[split].groups
    for labeled in (read_imdb(arc, unsup=False), read_imdb(tmp_path / "x" / "aclImdb", False)):
        assert len(labeled["unsup"]) == 0
        assert (
            labeled["train"].texts == a["train"].texts and labeled["test"].texts == a["test"].texts
        )


def test_each_review_has_its_film_as_group_where_the_archive_has_urls(tmp_path, fake_archive):
    r = read_imdb(fake_archive)
    # train: neg ids 0..119, then pos ids 0..119; review i of either label is of film i // 3
    expected = [f"tt{1_000_000 + i // 3}" for i in range(120)]
    assert r["train"].groups == expected * 2
    assert r["test"].groups[:3] == ["tt2000000"] * 3
    assert not set(r["train"].groups) & set(r["test"].groups)
    assert (
        read_imdb(make_archive(tmp_path / "a.tar.gz", per_class=5, urls=False))["train"].groups
        == []
    )


def test_val_groups_holds_out_whole_films_and_keys_the_cache(tmp_path, fake_archive):
    plain = load_corpus(data_cfg(fake_archive, tmp_path), TASK)
    cfg = data_cfg(fake_archive, tmp_path, val_groups=True)
    grouped = load_corpus(cfg, TASK)
    films = read_imdb(fake_archive)["train"].groups
    val = {films[i] for i in grouped.val_idx.tolist()}
    pool = {films[i] for i in grouped.pool_idx.tolist()}
    assert val and not val & pool  # the plain split shares films; this one does not
    assert {films[i] for i in plain.val_idx.tolist()} & {films[i] for i in plain.pool_idx.tolist()}
    assert len(grouped.val_idx) + len(grouped.pool_idx) == 240
    assert 30 <= len(grouped.val_idx) <= 50  # near val_size=40, in whole films of 6
    assert 0.3 <= grouped.splits["train"].labels[grouped.val_idx].float().mean() <= 0.7
    again = load_corpus(OmegaConf.merge(cfg, {"cache_dir": str(tmp_path / "other")}), TASK)
    assert torch.equal(grouped.val_idx, again.val_idx)
    # the default leaves the cache key as it was before the setting existed
    default = data_cfg(fake_archive, tmp_path)
    before = OmegaConf.masked_copy(default, [k for k in default if k != "val_groups"])
    assert cache_key([fake_archive], default, TASK) == cache_key([fake_archive], before, TASK)
    assert cache_key([fake_archive], cfg, TASK) != cache_key([fake_archive], default, TASK)


def test_val_groups_needs_groups_and_no_validation_split_of_its_own(tmp_path):
    bare = make_archive(tmp_path / "a.tar.gz", per_class=20, urls=False)
    with pytest.raises(LmftError, match="gives none"):
        load_corpus(data_cfg(bare, tmp_path, val_groups=True, val_size=10), TASK)
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\ngood,1\nbad,0\nfine,1\npoor,0\n")
    cfg = data_group("text_classification")
    cfg.update(val_groups=True, cache_dir=str(tmp_path / "c"), train=str(tmp_path / "train.csv"))
    cfg.update(validation=str(tmp_path / "val.csv"), test=str(tmp_path / "test.csv"))
    with pytest.raises(LmftError, match="validation split of its own"):
        load_corpus(cfg, TASK)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("ids.pt"))


def lm_texts(corpus) -> int:
    dm = LMDataModule(corpus, batch_size=4, max_len=10, seed=0)
    dm.setup()
    return sum(len(d) for d in dm.train_sets)


def test_unlabeled_reviews_are_read_only_when_asked(tmp_path):
    """By default a run's texts do not depend on which copy of the archive is found: the
    official one (with train/unsup) gives the labeled-only copy's tokenizer and LM texts."""
    labeled = make_archive(tmp_path / "labeled.tar.gz", per_class=30)
    official = make_archive(tmp_path / "official.tar.gz", per_class=30, unsup=50)
    a = load_corpus(data_cfg(labeled, tmp_path), TASK)
    b = load_corpus(data_cfg(official, tmp_path), TASK)
    assert a.tokenizer.get_vocab() == b.tokenizer.get_vocab()
    assert lm_texts(a) == lm_texts(b) == len(a.pool_idx)
    with_unsup = load_corpus(data_cfg(official, tmp_path, use_unsup=True), TASK)
    assert lm_texts(with_unsup) == len(a.pool_idx) + 50
    with pytest.raises(LmftError, match=r"no unlabeled reviews.*official"):
        load_corpus(data_cfg(labeled, tmp_path, use_unsup=True), TASK)


def test_find_archive_order_and_errors(tmp_path, monkeypatch, fake_archive):
    monkeypatch.setenv(ENV_VAR, str(fake_archive))
    assert find_archive(None) == fake_archive
    assert find_archive(str(fake_archive)) == fake_archive
    with pytest.raises(LmftError, match="not found"):
        find_archive(str(tmp_path / "nope.tar.gz"))
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.chdir(tmp_path)  # no candidates here, and no download allowed
    with pytest.raises(LmftError, match="LMFT_IMDB_ARCHIVE"):
        find_archive(None, data_dir=str(tmp_path / "data"), download=False)


def test_bad_archives_are_clear_errors(tmp_path):
    good = make_archive(tmp_path / "good.tar.gz", per_class=30)
    truncated = tmp_path / "trunc.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LmftError, match="truncated or corrupted"):
        read_imdb(truncated)
    wrong = tmp_path / "wrong.tar.gz"
    with tarfile.open(wrong, "w:gz") as t:
        t.add(good, arcname="something/else.tar.gz")
    with pytest.raises(LmftError, match="not an IMDB archive"):
        read_imdb(wrong)


def test_tokenizer_fitted_without_test_text(tmp_path):
    arc = make_archive(tmp_path / "a.tar.gz", per_class=20, test_word="zzzonlyintest")
    corpus = load_corpus(data_cfg(arc, tmp_path, vocab_size=None, val_size=10), TASK)
    assert corpus.tokenizer.token_to_id("zzzonlyintest") is None
    assert corpus.tokenizer.token_to_id("great") is not None
    assert corpus.tokenizer.token_to_id("<pad>") == 0
    # unknown in test text maps to <unk>, so the test split still encodes
    assert (corpus.splits["test"].ids == corpus.tokenizer.token_to_id("<unk>")).any()


def test_tokenizer_never_sees_validation_text_and_the_hold_out_keys_the_cache(tmp_path):
    labels = torch.tensor([i % 2 for i in range(40)])
    held_out = set(validation_indices(labels, 10, 0).tolist())
    rows = ["text,label"] + [
        f"{'good' if y else 'bad'} film {'zzzonlyinval' if i in held_out else 'plain'},{y}"
        for i, y in enumerate(labels.tolist())
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("text,label\ngood,1\nbad,0\n")
    cfg = data_group("text_classification")
    cfg.update(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"), val_size=10)
    cfg.cache_dir = str(tmp_path / "c")
    corpus = load_corpus(cfg, TASK)
    assert corpus.tokenizer.token_to_id("zzzonlyinval") is None
    assert corpus.tokenizer.token_to_id("plain") is not None
    key = cache_key([tmp_path / "train.csv"], cfg, TASK)
    assert key != cache_key([tmp_path / "train.csv"], OmegaConf.merge(cfg, {"val_size": 12}), TASK)
    assert key != cache_key([tmp_path / "train.csv"], OmegaConf.merge(cfg, {"split_seed": 1}), TASK)


def test_keras_tokenizer_follows_keras_rules():
    tok = build_tokenizer(["Didn't like it... Great-movie!\tso\xa0so"], None, 1, kind="keras")
    assert tok.encode("DIDN'T like it... great-movie!").tokens == [
        "didn't", "like", "it", "great", "movie"
    ]  # fmt: skip
    # Keras splits on spaces only (after its filters, tab and newline included)
    assert tok.encode("so\xa0so\tgreat").tokens == ["so\xa0so", "great"]
    with pytest.raises(LmftError, match="data.tokenizer"):
        build_tokenizer(["x"], None, 1, kind="bpe")


def test_tokenizer_splits_punctuation_and_lowercases():
    tok = build_tokenizer(["Great movie, GREAT fun!"], vocab_size=None, min_frequency=1)
    assert tok.encode("GREAT, movie!").tokens == ["<bos>", "great", ",", "movie", "!", "<eos>"]
    capped = build_tokenizer(["a a a b b c"], vocab_size=6, min_frequency=1)
    assert capped.get_vocab_size() == 6 and capped.token_to_id("c") is None


def test_cache_is_reused_and_a_damaged_one_rebuilt(tmp_path, fake_archive, capsys):
    cfg = data_cfg(fake_archive, tmp_path)
    first = load_corpus(cfg, TASK)
    capsys.readouterr()
    again = load_corpus(cfg, TASK)
    assert "Reading" not in capsys.readouterr().err
    assert torch.equal(first.splits["train"].ids, again.splits["train"].ids)
    (ids,) = (tmp_path / "cache").glob("*/ids.pt")
    ids.write_bytes(ids.read_bytes()[:100])
    rebuilt = load_corpus(cfg, TASK)
    assert "damaged" in capsys.readouterr().err
    assert torch.equal(first.splits["train"].ids, rebuilt.splits["train"].ids)


def test_balanced_nested_subsets():
    labels = torch.tensor([0, 1] * 50)
    pool = torch.arange(100)
    small, big = balanced_subset(labels, pool, 10, 3), balanced_subset(labels, pool, 30, 3)
    assert labels[small].sum() == 5 and labels[big].sum() == 15
    assert set(small.tolist()) <= set(big.tolist())
    assert not torch.equal(small, balanced_subset(labels, pool, 10, 4))
    with pytest.raises(LmftError, match="only 50 of label"):
        balanced_subset(labels, pool, 120, 0)


@pytest.mark.parametrize("bad", [0, -5, 1, 10**6, "abc", 2.5, "1e3"])
def test_bad_train_sizes(bad):
    with pytest.raises(LmftError, match="train_size"):
        parse_train_size(bad, 500)


def test_train_size_values():
    assert parse_train_size("all", 500) == 500 and parse_train_size("100", 500) == 100


def test_bucket_sampler_covers_all_and_groups_lengths():
    lengths = torch.randint(1, 500, (1000,))
    s = BucketBatchSampler(lengths, 10, shuffle=True, seed=0, pool_batches=10)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches) / len(batches)
    assert spread < 60  # random batches of 10 would spread ~400
    s.set_epoch(1)
    assert list(s) != batches and list(BucketBatchSampler(lengths, 10, True, 0, 10)) == batches


def test_bucket_pool_one_gives_random_batches(tmp_path, fake_archive):
    """`bucket_pool=1` (the reference's Keras batches) mixes lengths in a batch; the default groups
    them; both cover the labeled set once per epoch (bad values: test_stages, where they are read).
    """
    corpus = load_corpus(data_cfg(fake_archive, tmp_path), TASK)
    kw = dict(train_size=160, batch_size=8, max_len=400, seed=0)

    def spread_and_items(pool):
        dm = ClassificationDataModule(corpus, bucket_pool=pool, **kw)
        dm.setup()
        idx = list(dm.train_dataloader().batch_sampler)
        lengths = dm.train_set.lengths
        spread = sum(int(lengths[b].max() - lengths[b].min()) for b in idx) / len(idx)
        return spread, sorted(i for b in idx for i in b)

    (bucketed, a), (random, b) = spread_and_items(50), spread_and_items(1)
    assert a == b == list(range(160))
    assert random > 3 * bucketed


def test_both_arms_same_data_for_a_seed(tmp_path, fake_archive):
    corpus = load_corpus(data_cfg(fake_archive, tmp_path), TASK)
    kw = dict(batch_size=8, max_len=32)

    def batches(seed):
        dm = ClassificationDataModule(corpus, train_size=60, seed=seed, **kw)
        dm.setup()
        return dm, [b["ids"] for b in dm.train_dataloader()]

    (a, ba), (b, bb) = batches(1), batches(1)
    assert torch.equal(a.train_idx, b.train_idx) and torch.equal(a.val_idx, b.val_idx)
    assert all(torch.equal(x, y) for x, y in zip(ba, bb, strict=True))
    c, _ = batches(2)
    assert torch.equal(a.val_idx, c.val_idx) and not torch.equal(a.train_idx, c.train_idx)
    assert not set(a.train_idx.tolist()) & set(a.val_idx.tolist())


def test_lm_batches_shift_and_pad(tmp_path, fake_archive):
    corpus = load_corpus(data_cfg(fake_archive, tmp_path), TASK)
    dm = LMDataModule(corpus, batch_size=4, max_len=10, seed=0)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["ids"].shape[1] <= 11 and (b["lengths"] <= 11).all()
    for row, n in zip(b["ids"], b["lengths"], strict=True):
        assert (row[n:] == 0).all() and (row[:n] != 0).all()


@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason="real IMDB archive not beside the checkout")
def test_real_archive_counts():
    r = read_imdb(REAL_ARCHIVE)
    for split in ("train", "test"):
        assert len(r[split]) == 25_000 and sum(r[split].labels) == 12_500
    assert len(r["unsup"]) == 0
    pos_train = [x for x, y in zip(r["train"].ratings, r["train"].labels, strict=True) if y == 1]
    assert [pos_train.count(k) for k in (10, 9, 8, 7)] == [4732, 2263, 3009, 2496]


def test_download_verifies_checksum_and_keeps_nothing_bad(tmp_path, fake_archive):
    from lmft.data.imdb import download_official, md5sum

    url = fake_archive.as_uri()  # file:// stands in for the network
    dest = tmp_path / "dl" / "aclImdb_v1.tar.gz"
    with pytest.raises(LmftError, match="fails its checksum"):
        download_official(dest, url=url, md5="0" * 32)
    assert not dest.exists() and not list(dest.parent.iterdir())
    assert download_official(dest, url=url, md5=md5sum(fake_archive)) == dest
    assert dest.read_bytes() == fake_archive.read_bytes()


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"caf\xe9", "not UTF-8")])
def test_damaged_review_files(tmp_path, content, message):
    import io

    arc = make_archive(tmp_path / "a.tar.gz", per_class=3)
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(arc) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src:
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name.endswith("train/pos/0_" + m.name.rsplit("_", 1)[-1]) and data is not None:
                data, m.size = content, len(content)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(LmftError, match=message):
        read_imdb(bad)
