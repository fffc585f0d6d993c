"""Translate with a trained model: `python translate.py ckpt=<path or MLflow run id> text="Ein Mann fährt Fahrrad."`.

Thin by design: Hydra composes conf/translate.yaml; rnnlab.checkpoints finds the checkpoint and
TranslationTask (rnnlab/tasks/translation.py) rebuilds the model and vocabulary from it and decodes.
Without text=, sentences are read one per line from input= or stdin, and written one per line to stdout.
"""

import os
import sys
import tempfile
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import check_device, one_line_errors
from rnnlab.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    from rnnlab.checkpoints import resolve_checkpoint
    from rnnlab.tasks.translation import DECODING_KEYS, TranslationTask, check_decoding

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars around the text
    with one_line_errors():  # the user's mistake: one line, no stack trace
        lines = _sentences(cfg)
        check_device(cfg.device)
        if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
            raise ConfigError(f"batch_size={cfg.batch_size} is invalid: must be a positive integer")
        settings = {key: cfg[key] for key in DECODING_KEYS if cfg[key] is not None}  # the others: the checkpoint's
        check_decoding(settings, prefix="")
        with tempfile.TemporaryDirectory() as download_dir:
            path = resolve_checkpoint(cfg.ckpt, cfg.tracking_uri, download_dir)
            task = TranslationTask.from_checkpoint(path, str(cfg.ckpt), cfg.device, **settings)
        if cfg.seed is not None:  # decode=sample draws from torch's global generator
            torch.manual_seed(cfg.seed)
        for translation in task.translate(lines, batch_size=cfg.batch_size):
            print(translation, flush=True)


def _sentences(cfg: DictConfig) -> list[str]:
    """text=, else the lines of input=, else of stdin."""
    if cfg.text is not None:
        if cfg.input is not None:
            raise ConfigError("text= and input= are both given; give one (or neither, to read stdin)")
        if not str(cfg.text).strip():
            raise ConfigError("text is empty: give a sentence, e.g. text=\"Ein Mann fährt Fahrrad.\"")
        return [str(cfg.text)]
    if cfg.input is not None:
        path = Path(str(cfg.input)).expanduser()
        if not path.is_file():
            raise ConfigError(f"input={cfg.input}: no such file; give a text file with one sentence per line")
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ConfigError(f"input={cfg.input} is not UTF-8 text; convert it, e.g. iconv -t utf-8") from None
    return sys.stdin.read().splitlines()


if __name__ == "__main__":
    main()
