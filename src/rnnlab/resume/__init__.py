"""`python train.py resume=<run dir | MLflow run id | last>`: continue a run where it stopped, in its own
directory and its own MLflow run.

What `resume=` names
- a run directory (`logs/runs/<date>/<time>`, or a sweep job's `logs/multiruns/<date>/<time>/<n>`): the run
  continues from its `checkpoints/last.ckpt`;
- an MLflow run id, as train.py printed it: the run directory recorded in the run's tag `rnnlab.run_dir`;
- `last`: among the run directories under `paths.log_dir` (`runs/` and `multiruns/`) that have a
  `checkpoints/last.ckpt` and a `run.json` saying the run neither finished nor still runs, the one whose
  last.ckpt was written most recently: the run that was interrupted last.

Every run writes `run.json` into its directory (its MLflow run id and tracking URI, whether it finished, the
settings of the groups below that it trains with, and while it runs its host and process id); that and the
`rnnlab.run_dir` tag are how the three forms find each other. A run whose process is still alive on this
machine is never resumed.

Config. train.py replays the overrides the run was started with (its `.hydra/overrides.yaml`) into its own
directory (`hydra.run.dir`), followed by the overrides given now, which may change how the run goes on
(`trainer.max_epochs`, `trainer.gradient_clip_val`, `callbacks.*`, `logger.*`, `test`, ...) but not what
is trained: overrides of model, data, task, attention, optimizer, scheduler, seed, debug or experiment
are refused, since the checkpoint's weights, optimizer state and data position belong to them. Config files
may have changed since the run started, so the checkpoint's model is compared with the one built now, and
those groups' settings with the ones run.json recorded then; the first difference is refused.

What continues. Lightning restores weights, optimizer, scheduler, loop counters and callback states;
rnnlab adds the random generators (callbacks/random_state.py), the position in the epoch
(data/resumable.py), what the task sums over the epoch, task=lm's carried hidden state included
(tasks/train_epoch.py), and the ReduceLROnPlateau step Lightning skips after an epoch-end checkpoint
(callbacks/last_checkpoint.py). On CPU with trainer.deterministic=true the resumed run ends with the same metrics
as one never interrupted (tests/test_resume.py).

MLflow. The run continues under its id. The steps the interrupted process logged after its last checkpoint
are not logged again, those MLflow did not get are (each metric's history stays one series, one value per
step; each checkpoint waits for the metrics logged before it, tracking/queued_writes.py); params are not logged
again (MLflow params cannot change; the tag `hydra_overrides` shows the command line of the latest resume),
and the tag `resumed_from_step` says where the last resume started.

Three parts: records.py (run.json, the tag and the checkpoint a run leaves), command.py (before Hydra: which run,
with which command line) and run.py (in train(): check the checkpoint and continue the MLflow run).
"""

from rnnlab.resume.command import hydra_argv, locate
from rnnlab.resume.records import (
                                   CHECKPOINT,
                                   FROZEN,
                                   RUN_DIR_TAG,
                                   RUN_RECORD,
                                   Resume,
                                   read_record,
                                   record,
                                   still_running,
                                   trained_config,
)
from rnnlab.resume.run import continue_run, logger_kwargs, prepare

__all__ = ["CHECKPOINT", "FROZEN", "RUN_DIR_TAG", "RUN_RECORD", "Resume", "continue_run", "hydra_argv", "locate",
           "logger_kwargs", "prepare", "read_record", "record", "still_running", "trained_config"]
