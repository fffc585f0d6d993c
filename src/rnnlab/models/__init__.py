"""Networks wired from `nn` layers. A task chooses which one to build from the `model` config."""

from rnnlab.models.language_model import RNNLanguageModel

__all__ = ["RNNLanguageModel"]
