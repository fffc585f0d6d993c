"""Table of study 2 (run.sh): Tiny Shakespeare characters, the GRU recipe against the Transformer, equal CPU budget.

    python experiments/rnn_vs_transformer/shakespeare/summarize.py experiments/rnn_vs_transformer/shakespeare/runs

One row per group of runs (gru, transformer, pilot_*): best validation loss (= the test split here: the last 10 %
of the plays), mean ± std over its seeds, with the updates and characters each run fitted into its budget. Reads
each run's metrics.json, .hydra/config.yaml and the CSV logger's validations; draws curves.png (validation loss
against characters read, every run) next to this file.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import yaml

from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model, finished_runs, logged, num_parameters


def load(run: Path) -> dict:
    config = yaml.safe_load((run / ".hydra/config.yaml").read_text())
    per_update = config["data"]["batch_size"] * config["data"]["bptt"]
    curve = logged(run, "val/loss")  # (update, val loss) at each validation
    return {"metrics": json.loads((run / "metrics.json").read_text()), "config": config, "curve": curve,
            "per_update": per_update, "updates": max(step for step, _ in curve), "parameters": num_parameters(run),
            "finished": (run / "metrics.json").stat().st_mtime}


def finished_dates(groups: dict[str, list[dict]]) -> str:
    days = sorted({time.strftime("%Y-%m-%d", time.gmtime(run["finished"])) for runs in groups.values() for run in runs})
    return " to ".join(dict.fromkeys([days[0], days[-1]])) if days else "—"


def describe(config: dict) -> str:
    model = config["model"]
    if model.get("family") == "transformer":
        size = f"{model['num_layers']} × d {model['d_model']}, {model['nhead']} heads, ff {model['dim_feedforward']}"
    else:
        size = f"{model['num_layers']} × {model['hidden_size']} {model['cell'].upper()}"
    return (f"{size}, dropout {model['dropout']}; {config['data']['batch_size']} × {config['data']['bptt']} chars, "
            f"lr {config['optimizer']['lr']}, wd {config['optimizer'].get('weight_decay', 0)}, "
            f"{config['trainer']['max_cpu_time']} CPU")


def main(root: Path) -> None:
    groups = {name: [load(run) for run in runs] for name, runs in finished_runs(root).items()}
    print("# Tiny Shakespeare characters: the GRU recipe against a Transformer at 30 CPU minutes (issue 19, study 2)\n")
    print("Command: `bash experiments/rnn_vs_transformer/shakespeare/run.sh` (gru: `experiment=shakespeare_char`, "
          "transformer: `experiment=shakespeare_char_transformer`; pilots: `run.sh pilots`). "
          f"Machine: {cpu_model()}, one thread per run, two or three runs side by side; runs finished "
          f"{finished_dates(groups)}. Loss in nats per character on the validation split (the last 10 % of the text; "
          "it is also the test split), best checkpoint. Wall time is the fit's (training and validation) on the "
          "shared cores; the budget is CPU time.\n")
    print("| runs | model and budget | seeds | parameters | updates | characters read | chars / CPU s | wall min | "
          "val loss | bpc |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in groups.items():
        losses = [run["metrics"]["test/loss"] for run in runs]
        rates = [run["updates"] * run["per_update"] / run["metrics"]["fit_cpu_seconds"] for run in runs]
        seeds = ", ".join(str(run["config"]["seed"]) for run in runs)
        print(f"| {name} | {describe(runs[0]['config'])} | {seeds} | {runs[0]['parameters']:,} | "
              f"{mean_std_of([run['updates'] for run in runs], '.0f')} | "
              f"{mean_std_of([run['updates'] * run['per_update'] / 1e6 for run in runs], '.1f')} M | "
              f"{mean_std_of(rates, '.0f')} | "
              f"{mean_std_of([run['metrics']['fit_seconds'] / 60 for run in runs], '.0f')} | "
              f"{mean_std_of(losses, '.3f')} | "
              f"{mean_std_of([loss / math.log(2) for loss in losses], '.3f')} |")
    plot(groups, Path(__file__).parent / "curves.png")
    print("\n![validation loss against characters read](curves.png)")


def plot(groups: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for colour, (name, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], groups.items()):
        for k, run in enumerate(runs):
            steps, losses = zip(*run["curve"])
            ax.plot([s * run["per_update"] / 1e6 for s in steps], losses, color=colour, marker=".",
                    label=name if k == 0 else None)
    ax.set(xlabel="characters read (millions)", ylabel="validation loss (nats/char)", ylim=(1.3, 2.2))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
