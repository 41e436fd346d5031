"""Data: archive discovery and reading, tokenizer and id cache, DataModules."""

from lmft.data.corpus import Corpus, load_corpus
from lmft.data.datamodules import ClassificationDataModule, LMDataModule

__all__ = ["ClassificationDataModule", "Corpus", "LMDataModule", "load_corpus"]
