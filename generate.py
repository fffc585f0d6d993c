"""Write text with a trained language model: `python generate.py ckpt=<path or MLflow run id> prompt="ROMEO:"`.

Thin by design: Hydra composes conf/generate.yaml; rnnlab.generation loads the checkpoint and samples.
"""

import os
import sys

import hydra
import torch
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import check_device, one_line_errors
from rnnlab.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    from rnnlab import allocator, generation

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars around the text
    with one_line_errors():  # the user's mistake: one line, no stack trace
        generation.check_settings(cfg.max_tokens, cfg.temperature, cfg.top_k, cfg.top_p, cfg.unk)
        if not isinstance(cfg.num_samples, int) or cfg.num_samples < 1:
            raise ConfigError(f"num_samples={cfg.num_samples} is invalid: must be a positive integer")
        check_device(cfg.device)
        allocator.configure_from(cfg)
        model, tokenizer = generation.load_checkpoint(cfg.ckpt, cfg.tracking_uri, cfg.device)
        _, _, unknown = generation.encode_prompt(tokenizer, cfg.prompt)
        if unknown:
            print(f"warning: read as <unk>, not in the model's vocabulary: {', '.join(map(repr, unknown))}",
                  file=sys.stderr)
        generator = torch.Generator()
        if cfg.seed is None:
            generator.seed()
        else:
            generator.manual_seed(cfg.seed)
        for i in range(cfg.num_samples):
            text = generation.write(model, tokenizer, cfg.prompt, cfg.max_tokens, cfg.temperature, cfg.top_k,
                                    cfg.top_p, cfg.greedy, cfg.unk, generator)
            print(text if cfg.num_samples == 1 else f"--- sample {i + 1} ---\n{text}\n", flush=True)


if __name__ == "__main__":
    main()
