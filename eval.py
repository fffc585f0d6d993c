"""Score a checkpoint of any task: `python eval.py ckpt=<path or MLflow run id> [data=...] [split=test]`.

Thin by design: Hydra composes conf/eval.yaml; rnnlab.evaluation rebuilds the checkpoint's task, scores the split
through the task's own test loop and logs the scores to MLflow.
"""

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import one_line_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from rnnlab.evaluation import evaluate

    with one_line_errors():  # the user's mistake: one line, no stack trace
        evaluate(cfg)


if __name__ == "__main__":
    main()
