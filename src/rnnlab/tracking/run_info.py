"""What a run records beside its metrics: flat params, tags, the config, curves, metrics.json."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"cell": "lstm"}} → {"model.cell": "lstm"}: MLflow params with dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def cpu_model() -> str:
    """The CPU's model name, for the machine line of benchmark and study results."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_budget(params: dict[str, str], metrics: dict[str, float]) -> str:
    """How long a run trained and on which budget, for the machine line of study results: "31.4 min wall, 30.0 min
    CPU (budget `trainer.max_cpu_time` 00:00:30:00 of CPU time)", from its MLflow params and final metrics."""
    spent = f"{metrics['fit_seconds'] / 60:.1f} min wall"
    if "fit_cpu_seconds" in metrics:
        spent += f", {metrics['fit_cpu_seconds'] / 60:.1f} min CPU"
    budget = next((f"budget `{key}` {params[key]} of {clock}" for key, clock in
                   (("trainer.max_cpu_time", "CPU time"), ("trainer.max_time", "wall time"))
                   if params.get(key) not in (None, "None")), "no time budget")
    return f"{spent} ({budget})"


def machine_tags(model: torch.nn.Module) -> dict[str, str]:
    """What a number depends on besides the config: the machine, torch's threads and version, the model's size."""
    return {"machine.cpu": cpu_model(), "machine.cores": str(os.cpu_count()),
            "machine.torch_threads": str(torch.get_num_threads()), "machine.torch": torch.__version__,
            "machine.gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
            "num_parameters": str(sum(p.numel() for p in model.parameters()))}


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_tags(choices: dict[str, Any], overrides: list[str], root: Path) -> dict[str, str]:
    """choices: Hydra's selected option per config group; each becomes a tag of the group's name
    (task, model, data, attention, optimizer, ...), which report.py can group runs by."""
    tags = {group: str(choices.get(group, "")) for group in ("task", "model", "data")}
    tags.update({group: str(option) for group, option in choices.items() if "/" not in group and option is not None})
    tags["hydra_overrides"] = " ".join(overrides) or "(defaults)"
    commit = git_commit(root)
    if commit:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
    return tags


class CurveRecorder(Callback):
    """Keeps train/val loss as logged, to draw the run's loss curve whatever the logger."""

    def __init__(self):
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.optimal: float | None = None  # Bayes-optimal val loss, when the data knows it

    # the points before a resume stay on the curve (in the checkpoint itself, not as Lightning callback state,
    # which allows one instance per class and a test may add a second)
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["loss_curve"] = {"train": self.train, "val": self.val, "optimal": self.optimal}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "loss_curve" in checkpoint and trainer.state.fn == "fit":  # not test's best checkpoint, of an earlier step
            curve = checkpoint["loss_curve"]
            self.train, self.val = [tuple(p) for p in curve["train"]], [tuple(p) for p in curve["val"]]
            self.optimal = curve["optimal"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # x = optimizer steps completed, as for the validation points below
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            self.train.append((trainer.global_step, float(loss)))

    def on_validation_end(self, trainer, pl_module):
        # not on_validation_epoch_end: callbacks run that hook before the task logs val/loss
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and not trainer.sanity_checking:
            self.val.append((trainer.global_step, float(loss)))
            optimal_ppl = trainer.callback_metrics.get("val/ppl_optimal")
            self.optimal = float(optimal_ppl.log()) if optimal_ppl is not None else None

    def plot(self, path: Path, title: str) -> Path | None:
        if not self.train and not self.val:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for points, label, style in ((self.train, "train/loss (per step)", "-"), (self.val, "val/loss", "o-")):
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label=label)
        if self.optimal is not None:
            ax.axhline(self.optimal, color="gray", linestyle="--", label="Bayes-optimal val/loss")
        ax.set(xlabel="step", ylabel="loss (nats/token)", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def write_metrics(path: Path, metrics: dict[str, float]) -> None:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of each time the run in `run_dir` logged `key`, read back from its CSV logger (`logger=csv`,
    csv/version_*/metrics.csv): the studies' curves, without MLflow."""
    import csv

    found = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"))
    if len(found) != 1:
        raise FileNotFoundError(f"{run_dir} holds {len(found)} CSV logs (csv/version_*/metrics.csv), not one: train it "
                                "with logger=csv into an empty hydra.run.dir")
    with found[0].open() as f:
        return [(int(row["step"]), float(row[key])) for row in csv.DictReader(f) if row.get(key)]


def finished_runs(root: Path) -> dict[str, list[Path]]:
    """A study's runs folder laid out as root/<group>/seed<k>/ (hydra.run.dir): {group: its finished runs (those with
    metrics.json), by seed}, groups by name; a group with none finished is left out."""
    groups = {}
    for group in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        runs = [run for run in group.glob("seed*") if (run / "metrics.json").exists()]
        if runs:
            groups[group.name] = sorted(runs, key=lambda run: int(run.name.removeprefix("seed")))
    return groups


def num_parameters(run_dir: Path) -> int:
    """Of the network in the best checkpoint of the run in `run_dir`, counted as the num_parameters tag counts them."""
    from rnnlab import tasks
    from rnnlab.checkpoints import resolve_checkpoint

    best = resolve_checkpoint(str(run_dir), None, Path(run_dir))
    return sum(p.numel() for p in tasks.load(best, str(best)).model.parameters())


def resolved_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def task_metrics(run: Any, kind: str) -> tuple[str, ...]:
    """The default metrics (`report_metrics` or `summary_metrics`) of the task a run trained, asked of the task class
    it logged as its param task._target_; none for a run without one (a job that failed before training)."""
    from hydra.utils import get_class

    target = run.data.params.get("task._target_")
    try:
        return tuple(getattr(get_class(target), kind, ())) if target else ()
    except (ImportError, AttributeError, ValueError):  # a task class that no longer exists
        return ()
