"""Train a model: `python train.py model=lstm`, `python train.py -m model=rnn,lstm,gru`.

Thin by design: Hydra composes conf/train.yaml, rnnlab.training.train does the work.
"""

import sys

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from rnnlab.training import train

    try:
        metrics = train(cfg)
    except ConfigError as error:  # the user's mistake: one line, no stack trace
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    main()
