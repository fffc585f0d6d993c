"""Language models: networks wired from `nn` layers, and the count-based n-gram. A task chooses which one to
build from the `model` config."""

from rnnlab.models.language_model import RNNLanguageModel
from rnnlab.models.ngram import NGramLanguageModel, NGramLM

__all__ = ["NGramLM", "NGramLanguageModel", "RNNLanguageModel"]
