"""Train a model: `python train.py model=lstm`, `python train.py -m model=rnn,lstm,gru`.

Thin by design: Hydra composes conf/train.yaml, rnnlab.training.train does the work.
"""

import sys

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab import resume
from rnnlab.cli import fail
from rnnlab.errors import ConfigError, TrainingStopped


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from rnnlab import hardware
    from rnnlab.tracking import sweep
    from rnnlab.training import train

    try:
        with hardware.job_scope():  # this job's own DDP ranks, nothing of them left for the next job
            metrics = train(cfg)
    except ConfigError as error:  # the user's mistake: one line, no stack trace
        if sweep.in_sweep():  # the sweep records this job as failed, runs the others, then exits 1
            raise sweep.JobFailed(f"error: {error}") from None
        fail(error, status=2)
    except TrainingStopped as error:  # e.g. a NaN loss: what happened, what was kept, what to do
        if sweep.in_sweep():  # one job's failure, not the sweep's (an Optuna search records the trial FAIL)
            raise sweep.JobFailed(f"error: {error}") from None
        fail(error, status=1)
    return metrics.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    try:  # resume=<run>: that run's own overrides, into its own directory (rnnlab/resume/command.py)
        sys.argv = resume.hydra_argv(sys.argv)
    except ConfigError as error:
        fail(error, status=2)
    main()
