"""rnnlab: recurrent sequence models, configured with Hydra, trained with Lightning, tracked in MLflow."""

__version__ = "0.1.0"
