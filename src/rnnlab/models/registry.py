"""`model=` → the network a task trains: the one place that knows which model families exist.

A task asks for "the network of this model config for my shape" (`build(model, shape, **inputs)`); a model
config names its family with the key `family` (absent: `rnn`, the recurrent stacks of conf/model/rnn|lstm|gru...).
Shapes are what a task needs of a network:

    lm          tokens (B, T), state → logits (B, T, V), state          task=lm
    seq2seq     src, src_lengths, tgt_in → logits, attention; decoding   task=translation
    classifier  tokens (B, T), lengths (B,) → logits (B, C)              task=classification
    tagger      tokens (B, T), lengths (B,), chars → logits (B, T, K)    task=tagging
    captioner   images, tgt_in, caption_image → logits, attention;      task=captioning
                decoding: regions(images), then seq2seq's encode/step over them

A family that is not trained by gradient steps (the counted n-gram) says so (`trains=False`) and names the
task that fits it instead (`task=`, a subclass of the shape's own task). Adding a family or a shape is one entry
below plus its network module (docs/extending.md).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class

from rnnlab.errors import ConfigError, check_options

DEFAULT_FAMILY = "rnn"


@dataclass(frozen=True)
class Network:
    target: str  # the network class, "package.module.Class"
    trains: bool = True  # False: fitted another way (counted), so nothing to optimise or compile
    task: str | None = None  # the task that trains it, when not the shape's own (a subclass of it)
    ignores: tuple[str, ...] = ()  # model.* keys of other families it accepts and ignores (one sweep, many families)


# family → shape → network
FAMILIES: dict[str, dict[str, Network]] = {
    "rnn": {
        "lm": Network("rnnlab.models.language_model.RNNLanguageModel"),
        "seq2seq": Network("rnnlab.models.seq2seq.Seq2Seq"),
        "classifier": Network("rnnlab.models.classifier.RNNClassifier"),
        "tagger": Network("rnnlab.models.tagger.RNNTagger"),
        "captioner": Network("rnnlab.models.captioner.Captioner"),
    },
    "ngram": {
        # presets size the recurrent models they compare (model.hidden_size, ...): nothing to size here
        "lm": Network("rnnlab.models.ngram.NGramLanguageModel", trains=False, task="rnnlab.tasks.ngram.NGramTask",
                      ignores=("rnn", "lm")),
    },
    "bow": {
        # the lecture's bag of words; ignores the recurrent models' sizes, so one sweep runs both
        "classifier": Network("rnnlab.models.classifier.BagOfWordsClassifier", ignores=("rnn", "classifier")),
    },
    "transformer": {
        # sized by its own keys (d_model, ...); a preset's recurrent sizes, and the encoder–decoder's keys that
        # task=translation adds (attention, input_feeding, ...), are ignored, so one sweep runs both families
        "lm": Network("rnnlab.models.transformer.TransformerLM", ignores=("rnn", "lm")),
        "seq2seq": Network("rnnlab.models.transformer.TransformerSeq2Seq", ignores=("rnn", "seq2seq")),
    },
    "hmm": {
        # the lecture's HMM tagger, counted; it reads the words themselves (rnnlab/tasks/hmm.py)
        "tagger": Network("rnnlab.models.hmm.HMMTagger", trains=False, task="rnnlab.tasks.hmm.HMMTaggingTask",
                          ignores=("rnn", "tagger")),
    },
}


def family(model: Any) -> str:
    return str(model.get("family") or DEFAULT_FAMILY)


def network(model: Any, shape: str) -> Network:
    """The registry's entry for this model config and shape, or a one-line ConfigError naming what exists."""
    name = family(model)
    if name not in FAMILIES:
        raise ConfigError(f"model.family={name} is unknown: choose one of {', '.join(FAMILIES)}")
    shapes = FAMILIES[name]
    if shape not in shapes:
        tasks = {"lm": "task=lm", "seq2seq": "task=translation", "classifier": "task=classification",
                 "tagger": "task=tagging", "captioner": "task=captioning"}
        fits = ", ".join(tasks.get(s, s) for s in shapes)
        raise ConfigError(f"model={name} has no {shape} network: it fits {fits}")
    return shapes[shape]


def trains(model: Any) -> bool:
    """Whether a model config's networks learn by gradient steps (what compile=true could speed up)."""
    return any(entry.trains for entry in FAMILIES.get(family(model), {}).values())


def task_class(shape_task: type, model: Any) -> type:
    """The task that trains `model` for the shape of `shape_task`: shape_task itself, or the family's own subclass."""
    entry = network(model, shape_task.shape)
    return get_class(entry.task) if entry.task else shape_task


def build(model: dict[str, Any], shape: str, **inputs: Any):
    """The network of `model` (the `model` group as a dict) for `shape`; `inputs` are what the data decides
    (vocabulary sizes, special ids). A key the network does not take is a one-line ConfigError."""
    entry = network(model, shape)
    network_class = get_class(entry.target)
    options = {key: value for key, value in model.items() if key != "family"}
    if entry.ignores:  # another family's keys, unless this network takes them too (dropout)
        other = _keys_of(*entry.ignores) - _keys_of(family(model), shape)
        options = {key: value for key, value in options.items() if key not in other}
    check_options(network_class, options, "model", ignore=tuple(inputs))
    return network_class(**inputs, **options)


def defaults(model: dict[str, Any], shape: str) -> dict[str, Any]:
    """The network's keyword defaults for `model`'s family and `shape`: what a model.* key absent from a config
    (one written before the key existed) builds."""
    parameters = inspect.signature(get_class(network(model, shape).target)).parameters
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def ignored_keys(model: dict[str, Any], shape: str) -> list[str]:
    """The model.* keys `build` leaves out for this family (to say so in the log)."""
    entry = network(model, shape)
    return sorted((_keys_of(*entry.ignores) - _keys_of(family(model), shape)) & set(model)) if entry.ignores else []


def _keys_of(family_name: str, shape: str) -> set[str]:
    parameters = inspect.signature(get_class(FAMILIES[family_name][shape].target)).parameters
    return {name for name in parameters if name != "self"}
