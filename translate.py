"""Translate with a trained model: `python translate.py ckpt=<path or MLflow run id> text="Ein Mann fährt Fahrrad."`.

Thin by design: Hydra composes conf/translate.yaml; rnnlab.checkpoints finds the checkpoint and
TranslationTask (rnnlab/tasks/translation.py) rebuilds the model and vocabulary from it and decodes.
Without text=, sentences are read one per line from input= or stdin, and written one per line to stdout.
"""

import hydra
import torch
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import load_task, one_line_errors, prediction_texts


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    from rnnlab.tasks.translation import DECODING_KEYS, TranslationTask, check_decoding

    with one_line_errors():  # the user's mistake: one line, no stack trace
        lines = prediction_texts(cfg, example="Ein Mann fährt Fahrrad.")
        settings = {key: cfg[key] for key in DECODING_KEYS if cfg[key] is not None}  # the others: the checkpoint's
        check_decoding(settings, prefix="")
        task = load_task(TranslationTask, cfg, **settings)
        if cfg.seed is not None:  # decode=sample draws from torch's global generator
            torch.manual_seed(cfg.seed)
        for translation in task.translate(lines, batch_size=cfg.batch_size):
            print(translation, flush=True)


if __name__ == "__main__":
    main()
