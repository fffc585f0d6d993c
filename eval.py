"""Score a translation checkpoint: `python eval.py ckpt=<path or MLflow run id> data=multi30k [split=test]`.

Thin by design: Hydra composes conf/eval.yaml; rnnlab.evaluation decodes the split with the chosen
decoder through TranslationTask's own test loop and logs the scores to MLflow.
"""

import sys

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from rnnlab.evaluation import evaluate

    try:
        evaluate(cfg)
    except ConfigError as error:  # the user's mistake: one line, no stack trace
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
