"""Score each Transformer run of run.sh on the test split once more, reading every window ALONE: the model as
trained (positions 0..bptt-1, nothing before a window's start), instead of the task's evaluation, where each
window is read after the previous ones from the sliding key/value cache (every token sees ≥ bptt/2 tokens before
it). The difference is what the window costs a Transformer that is used on text cut into windows.

    python experiments/rnn_vs_transformer/agreement/window.py experiments/rnn_vs_transformer/agreement/runs/transformer

Writes window.json (the test metrics) next to each run's metrics.json; a run that has one is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as L
from hydra.utils import get_class
from omegaconf import OmegaConf

from rnnlab import tasks
from rnnlab.checkpoints import resolve_checkpoint


def score_alone(run: Path) -> dict[str, float]:
    best = resolve_checkpoint(str(run), None, run)  # the run directory's best checkpoint
    task = tasks.load(best, str(best), "cpu")
    task.carry_state = False  # each window alone (the task's switch; eval.py does not expose it)
    options = OmegaConf.to_container(OmegaConf.load(run / ".hydra/config.yaml").data, resolve=True)
    datamodule = get_class(options.pop("_target_"))(**options)
    datamodule.prepare_data()
    datamodule.setup("test")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(run))
    (metrics,) = trainer.test(task, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in metrics.items()}


def main(runs: Path) -> None:
    for run in sorted(p for p in runs.iterdir() if (p / "metrics.json").exists()):
        if not (run / "window.json").exists():
            (run / "window.json").write_text(json.dumps(score_alone(run), indent=1, sort_keys=True) + "\n")
            print(f"scored alone: {run}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
