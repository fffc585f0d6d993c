"""Networks wired from `nn` layers (the language model, the encoder–decoder), the count-based n-gram and the
Transformer.
`registry.py` decides which one `model=` builds for a task's shape."""

from rnnlab.models.language_model import RNNLanguageModel
from rnnlab.models.ngram import NGramLanguageModel, NGramLM

__all__ = ["NGramLM", "NGramLanguageModel", "RNNLanguageModel"]
