"""The hand-off files: encoder.pt and model.pt record their format and encoder type, and loading
checks both with a message that says what to run."""

import pytest
import torch

from lmft.errors import LmftError
from lmft.models import LSTMEncoder, SentimentClassifier, TransformerEncoder, build_encoder
from lmft.models.handoff import load_encoder_state, load_model, save_encoder, save_model

LSTM = dict(_target_=LSTMEncoder.type_name(), vocab_size=30, embed_dim=8, hidden_size=8)
TRANSFORMER = dict(
    _target_=TransformerEncoder.type_name(), vocab_size=30, embed_dim=8, hidden_size=8,
    num_layers=1, num_heads=2,
)  # fmt: skip


def test_encoder_pt_records_its_type_and_refuses_another(tmp_path):
    path = tmp_path / "encoder.pt"
    save_encoder(path, build_encoder(LSTM), "tok1")
    state = load_encoder_state(path, {**LSTM, "input_dropout": 0.5}, "tok1", "REMEDY")
    assert set(state) == set(build_encoder(LSTM).state_dict())  # dropout rates may differ
    with pytest.raises(
        LmftError, match="holds a lmft.models.lstm.LSTMEncoder; .*Transformer.*REMEDY"
    ):
        load_encoder_state(path, TRANSFORMER, "tok1", "REMEDY")
    with pytest.raises(LmftError, match="hidden_size: file has 8, config wants 16.*REMEDY"):
        load_encoder_state(path, {**LSTM, "hidden_size": 16}, "tok1", "REMEDY")
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, "format": 2}, path)
    with pytest.raises(LmftError, match="older lmft \\(format 2\\). REMEDY"):
        load_encoder_state(path, LSTM, "tok1", "REMEDY")


@pytest.mark.parametrize("encoder", [LSTM, TRANSFORMER], ids=["lstm", "transformer"])
def test_model_pt_round_trips_and_checks_its_format(tmp_path, encoder):
    torch.manual_seed(0)
    model = SentimentClassifier(encoder=encoder).eval()
    save_model(tmp_path / "model.pt", model, model.state_dict(), "{}", ["neg", "pos"], 64)
    loaded, blob = load_model(tmp_path)
    ids, lengths = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    assert torch.equal(loaded(ids, lengths), model(ids, lengths))
    assert blob["labels"] == ["neg", "pos"] and blob["max_len"] == 64
    assert blob["encoder"] == encoder["_target_"]
    torch.save({**blob, "format": 1}, tmp_path / "model.pt")
    with pytest.raises(LmftError, match="older lmft \\(format 1\\).*rerun that cell"):
        load_model(tmp_path)
    with pytest.raises(LmftError, match="No model.pt"):
        load_model(tmp_path / "elsewhere")


THIRD = """
from torch import nn

from lmft.models.encoder import Encoder, arguments


class GRUEncoder(Encoder):
    def __init__(self, vocab_size, embed_dim=8):
        super().__init__(arguments(locals(), GRUEncoder), ())
        self.output_size = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, embed_dim, batch_first=True)

    def layer_groups(self):
        return {"embedding": self.embedding, "gru": self.gru}

    def forward(self, ids):
        return self.gru(self.embedding(ids))[0]
"""


def test_a_third_encoder_is_one_module(tmp_path, monkeypatch):
    """What docs/own-data.md's "Adding an encoder" promises: a subclass of Encoder in a module
    of its own (plus conf/model/<name>.yaml naming it) goes through both stages' modules and
    model.pt."""
    from lmft.models import LanguageModel

    (tmp_path / "third_encoder.py").write_text(THIRD)
    monkeypatch.syspath_prepend(str(tmp_path))
    gru = {"_target_": "third_encoder.GRUEncoder", "vocab_size": 30, "embed_dim": 8}
    ids, lengths = torch.tensor([[3, 4, 5, 0]]), torch.tensor([3])
    assert LanguageModel(encoder=gru, tie_weights=True).loss({"ids": ids, "lengths": lengths}) > 0
    clf = SentimentClassifier(encoder=gru, lr_decay=2.0).eval()
    assert [g["name"] for g in clf.configure_optimizers().param_groups] == [
        "embedding",
        "gru",
        "head",
    ]
    save_model(tmp_path / "model.pt", clf, clf.state_dict(), "{}", ["neg", "pos"], 16)
    loaded, blob = load_model(tmp_path)
    assert blob["encoder"] == "third_encoder.GRUEncoder"
    assert torch.equal(loaded(ids, lengths), clf(ids, lengths))
