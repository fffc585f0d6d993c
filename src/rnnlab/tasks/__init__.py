"""LightningModules, one per task shape. Each owns its loss, metrics, decoding and logging."""

from rnnlab.tasks.language_modeling import LanguageModelingTask

__all__ = ["LanguageModelingTask"]
