"""Models: the one shared encoder and the two LightningModules that hold it."""

from lmft.models.classifier import SentimentClassifier
from lmft.models.encoder import LSTMEncoder
from lmft.models.language_model import LanguageModel

__all__ = ["LSTMEncoder", "LanguageModel", "SentimentClassifier"]
