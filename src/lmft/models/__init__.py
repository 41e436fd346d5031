"""Models: the encoders (one interface, a module each), the two LightningModules that hold one."""

from lmft.models.classifier import SentimentClassifier
from lmft.models.encoder import Encoder, build_encoder
from lmft.models.language_model import LanguageModel
from lmft.models.lstm import LSTMEncoder
from lmft.models.transformer import TransformerEncoder

__all__ = [
    "Encoder",
    "LSTMEncoder",
    "LanguageModel",
    "SentimentClassifier",
    "TransformerEncoder",
    "build_encoder",
]
