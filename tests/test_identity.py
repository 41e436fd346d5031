"""The one declaration of what changes a result, and everything derived from it."""

import subprocess

import pytest
from conftest import ROOT
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from lmft.data.corpus import cache_key
from lmft.errors import LmftError
from lmft.identity import (
    AFTER_TOKENS,
    NOT_RESULTS,
    READER_ADDED,
    STAGE_SECTIONS,
    UNREAD,
    cache_settings,
    read_finished,
    run_identity,
    stored_identity,
)
from lmft.pretrained import pretrain_command
from lmft.resolvers import cell_name, register
from lmft.results import provenance

PRESETS = sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))


def keys(d: dict, prefix: str = "") -> set[str]:
    """Every dotted key of a nested dict, whether it holds a value or more keys."""
    out = set()
    for k, v in d.items():
        out |= {f"{prefix}{k}"} | (keys(v, f"{prefix}{k}.") if isinstance(v, dict) else set())
    return out


def test_the_declaration_names_only_real_keys(cfg_for):
    """A stale name (a key renamed in conf/) would silently become part of results again."""
    every = set().union(
        *(keys(OmegaConf.to_container(cfg_for("finetune", [f"experiment={e}"]))) for e in PRESETS)
    )
    assert (NOT_RESULTS | AFTER_TOKENS) - every == set()


@pytest.mark.parametrize("exp", PRESETS)
def test_identities_keep_every_key_but_the_declared_ones(cfg_for, exp):
    cfg = cfg_for("finetune", [f"experiment={exp}"])
    every = keys(OmegaConf.to_container(cfg))
    for stage in STAGE_SECTIONS:
        kept = keys(run_identity(cfg, stage))
        in_sections = {k for k in every if k.split(".")[0] in STAGE_SECTIONS[stage]}
        assert kept & NOT_RESULTS == set()
        left_out = {k for k in in_sections - kept if not k.startswith("data.anchors.")}
        assert left_out <= NOT_RESULTS | UNREAD.get(stage, set())


@pytest.fixture
def with_overrides(cfg_for, overrides):
    """A composed finetune config whose Hydra state holds `extra` as command-line overrides."""
    register()

    def make(*extra):
        cfg = cfg_for("finetune", [*overrides, *extra], hydra=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):  # as a task function gets it
            del cfg["hydra"]
        return cfg

    yield make
    HydraConfig.instance().cfg = None


def test_one_key_is_treated_alike_by_every_consumer(with_overrides, fake_archive):
    """A result-changing key names the cell and goes into the pretrain command (when the LM
    reads it); a speed key does neither; data keys used after tokenization stay out of the id
    cache's key."""
    cfg = with_overrides(
        "lm.lr=0.01", "classifier.pooling=max", "data.num_workers=1", "trainer.log_every_n_steps=5"
    )
    assert (
        cell_name("pretrained", "all", 0)
        == "init=pretrained,n=all,seed=0,classifier.pooling=max,lm.lr=0.01"
    )
    # a scratch cell never reads the LM: neither its folder nor its identity names the LM's keys
    assert cell_name("scratch", "all", 0) == "init=scratch,n=all,seed=0,classifier.pooling=max"
    assert "lm" not in run_identity(cfg, "scratch") and "lm" in run_identity(cfg, "finetune")
    cmd = pretrain_command(cfg)
    assert "lm.lr=0.01" in cmd and "pooling" not in cmd and "data.train_size" not in cmd
    other = with_overrides("lm_name=big", "lm.lr=0.01")
    assert "lm_name=big" in pretrain_command(other)  # it writes where finetune reads
    renamed = pretrain_command(other, "NEW")
    assert "lm_name" not in renamed and renamed.endswith("name=NEW")
    data = cfg.data
    key = cache_key([fake_archive], data, cfg.pretrain_data)
    for same in ({"num_workers": 3}, {"truncating": "pre"}, {"train_size": 50}, {"cache_dir": "x"}):
        assert cache_key([fake_archive], OmegaConf.merge(data, same), cfg.pretrain_data) == key, (
            same
        )
    for other in ({"vocab_size": 99}, {"tokenizer": "keras"}, {"val_size": 10}):
        assert cache_key([fake_archive], OmegaConf.merge(data, other), cfg.pretrain_data) != key, (
            other
        )
    lm_only = run_identity(cfg, "pretrain")
    assert "train_size" not in lm_only["data"] and "classifier" not in lm_only
    assert run_identity(cfg, "finetune")["data"]["train_size"] == cfg.data.train_size


def test_a_setting_one_reader_gained_is_read_into_that_readers_stored_runs_only(cfg_for, tmp_path):
    """A text_classification cell stored before data.group_column existed stays finished (the
    key read in as null, and its id cache key is the one before); another group column is
    refused; an IMDB run never gains the key."""
    import json

    own = cfg_for("finetune", ["data=text_classification", "data.train=x.csv", "init=scratch"])
    identity = run_identity(own, "scratch")
    old = json.loads(json.dumps(identity))
    del old["data"]["group_column"]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"identity": old}))
    assert read_finished(path, identity, "cell") == {"identity": old}
    assert cache_settings(identity["data"]) == cache_settings(old["data"])
    grouped = run_identity(OmegaConf.merge(own, {"data": {"group_column": "user"}}), "scratch")
    assert cache_settings(grouped["data"]) != cache_settings(old["data"])
    with pytest.raises(LmftError, match="data.group_column: None != 'user'"):
        read_finished(path, grouped, "cell")
    imdb = run_identity(cfg_for("finetune", ["init=scratch"]), "scratch")
    assert "group_column" not in stored_identity({"identity": imdb}, imdb)["data"]
    # each reader's added setting is declared with its config's default
    readers = map(OmegaConf.load, (ROOT / "conf/data").glob("*.yaml"))
    confs = {c._target_: c for c in readers if "_target_" in c}
    for target, settings in READER_ADDED.items():
        for key, value in settings.items():
            assert confs[target][key.split(".", 1)[1]] == value, key


def test_the_printed_pretrain_command_replaces_what_it_adds(with_overrides):
    cfg = with_overrides("lm.snapshots=[1]", "lm.lr=0.01")
    cmd = pretrain_command(cfg, "NEW", ["lm.snapshots=[2]"])
    assert cmd.count("lm.snapshots") == 1 and cmd.endswith("name=NEW lm.snapshots=[2]")
    assert "lm.lr=0.01" in cmd


def test_provenance_marks_a_commit_whose_tracked_files_changed(tmp_path, monkeypatch):
    """A number made from edited code must not carry the clean commit's name; its tree names
    the code that ran, edited or not, and taking it leaves the checkout's index alone."""

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    monkeypatch.chdir(tmp_path)
    assert provenance()["git_commit"] is None  # not a checkout
    (tmp_path / "f.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", "f.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")

    def rev(name):
        return subprocess.run(["git", "rev-parse", "--short", name], cwd=tmp_path,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    sha = rev("HEAD")
    (tmp_path / "new.txt").write_text("untracked files do not count\n")
    assert provenance()["git_commit"] == sha
    assert provenance()["git_tree"] == rev("HEAD^{tree}")
    (tmp_path / "f.py").write_text("a = 2\n")
    edited = provenance()
    assert edited["git_commit"] == f"{sha}-dirty"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path, capture_output=True,
                            text=True).stdout  # fmt: skip
    assert status == " M f.py\n?? new.txt\n"  # the edit is not staged
    # the tree names the edited code: the tree of the commit that records the edit
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "edit")
    assert edited["git_tree"] == rev("HEAD^{tree}") != rev("HEAD~1^{tree}")
