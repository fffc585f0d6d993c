"""`callbacks=samples`: generated texts after every validation, so the MLflow UI shows the model learning to write.

After each validation (not the sanity check) the language model writes `num_samples` texts of at most
`max_tokens` tokens from `prompt` (rnnlab.generation, with the task's own tokenizer), into
`<output_dir>/samples/epoch_<epoch>.txt` (epochs counted from 0, as in checkpoint names), logged to MLflow
as the artifact `samples/epoch_<epoch>.txt`. The draws use a generator seeded afresh each time, so two
epochs' samples differ by what the model learned, not by luck.

Skipped, silently, for a task that is not a language model or has no tokenizer (e.g. data without text);
without a logger the files are still written to the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as L
import torch

from rnnlab import generation
from rnnlab.errors import ConfigError
from rnnlab.tracking.artifacts import log_files

log = logging.getLogger(__name__)


class TextSamples(L.Callback):
    def __init__(self, output_dir: str | Path, num_samples: int = 3, max_tokens: int = 200, prompt: str = "",
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed: int = 0):
        try:
            generation.check_settings(max_tokens, temperature, top_k, top_p, "keep")
        except ConfigError as error:  # its message starts with the key: name it as the config does
            raise ConfigError(f"callbacks.samples.{error}") from None
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
            raise ConfigError(f"callbacks.samples.num_samples={num_samples} is invalid: must be an integer ≥ 0")
        self.output_dir, self.num_samples, self.max_tokens = Path(output_dir), num_samples, max_tokens
        self.prompt, self.temperature, self.top_k, self.top_p, self.seed = prompt, temperature, top_k, top_p, seed
        self.enabled = num_samples > 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a language model (the task's network reads tokens and carries a state) that kept its tokenizer
        state = pl_module.hparams.get("tokenizer") if getattr(pl_module, "shape", None) == "lm" else None
        if trainer.sanity_checking or not trainer.is_global_zero or not state or not self.enabled:
            return
        tokenizer = generation.load_tokenizer(state)
        try:
            generation.encode_prompt(tokenizer, self.prompt)
        except ConfigError as error:  # e.g. no line break to start from: the run goes on without samples
            log.warning("callbacks.samples: no samples in this run: %s", error)
            self.enabled = False
            return
        generator = torch.Generator().manual_seed(self.seed)
        texts = [generation.write(pl_module.model, tokenizer, self.prompt, self.max_tokens, self.temperature,
                                  self.top_k, self.top_p, generator=generator) for _ in range(self.num_samples)]
        settings = (f"epoch {trainer.current_epoch}, step {trainer.global_step}: {self.num_samples} samples of at most "
                    f"{self.max_tokens} tokens, prompt={self.prompt!r}, temperature={self.temperature}, "
                    f"top_k={self.top_k}, top_p={self.top_p}, seed={self.seed}")
        body = "\n\n".join(f"--- sample {i + 1} ---\n{text}" for i, text in enumerate(texts))
        path = self.output_dir / "samples" / f"epoch_{trainer.current_epoch:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{settings}\n\n{body}\n", encoding="utf-8")
        log_files(trainer.loggers, [path], "samples")
