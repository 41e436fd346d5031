"""lmft: what language-model pretraining buys a text classifier."""

__version__ = "0.1.0"
