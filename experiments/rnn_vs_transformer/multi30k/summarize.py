"""Table of study 1 (run.sh): Multi30k de→en, the RNN recipe against the Transformer, 31 minutes of CPU time each.

    python experiments/rnn_vs_transformer/multi30k/summarize.py experiments/rnn_vs_transformer/multi30k/runs

One row per group of runs (rnn, transformer, pilot_*): test_2016_flickr BLEU (cased sacreBLEU, beam 5 from the best
checkpoint by val BLEU), lowercased BLEU, chrF and perplexity as mean ± std over its seeds, with the epochs and target
tokens each run fitted into its budget. Reads each run's metrics.json, .hydra/config.yaml and the CSV logger's
validations; the target tokens of an epoch come from the run's own data settings. Draws curves.png (val BLEU and
val loss against CPU minutes; pilots dotted) next to this file.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

import rnnlab.config  # noqa: F401 -- the resolvers the run's config names (project_root)
from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model, finished_runs, logged, num_parameters


@cache
def epoch_size(data: str) -> tuple[int, int]:
    """(updates, target tokens) of one training epoch under the data settings `data` (the run's data config as YAML):
    every target token the loss reads, eos included."""
    datamodule = instantiate(yaml.safe_load(data))
    datamodule.setup("fit")
    targets = datamodule.bucket_dataset("train").target_ids
    return len(datamodule.train_dataloader()), sum(len(target) + 1 for target in targets)


def load(run: Path) -> dict:
    saved = OmegaConf.load(run / ".hydra/config.yaml")
    config = OmegaConf.to_container(saved)  # as saved; only the data settings are resolved (to build the data)
    metrics = json.loads((run / "metrics.json").read_text())
    updates_per_epoch, tokens_per_epoch = epoch_size(yaml.safe_dump(OmegaConf.to_container(saved.data, resolve=True)))
    losses = logged(run, "val/loss")
    updates = max(step for step, _ in losses)
    return {"metrics": metrics, "config": config, "updates": updates, "epochs": updates / updates_per_epoch,
            "tokens": updates / updates_per_epoch * tokens_per_epoch, "losses": losses,
            "bleu": logged(run, "val/bleu"), "parameters": num_parameters(run)}


def describe(config: dict) -> str:
    model = config["model"]
    if model.get("family") == "transformer":
        size = (f"Transformer {model['num_layers']} + {model['num_layers']} × d {model['d_model']}, "
                f"{model['nhead']} heads, ff {model['dim_feedforward']}")
    else:
        size = (f"bi{model['cell'].upper()} {model['encoder_hidden_size']} + {model['cell'].upper()} "
                f"{model['hidden_size']}, {config['attention']['type']}")
    return (f"{size}, dropout {model['dropout']}, lr {config['optimizer']['lr']}, "
            f"clip {config['trainer']['gradient_clip_val']}, {config['trainer']['max_cpu_time']} CPU")


def column(runs: list[dict], key: str, fmt: str = ".1f") -> str:
    return mean_std_of([run["metrics"][key] for run in runs], fmt)


def main(root: Path) -> None:
    groups = {name: [load(run) for run in runs] for name, runs in finished_runs(root).items()}
    print("# Multi30k de→en: the RNN recipe against a Transformer at 31 CPU minutes (issue 19, study 1)\n")
    print("Command: `bash experiments/rnn_vs_transformer/multi30k/run.sh` (rnn: `experiment=multi30k_best`, "
          "transformer: `experiment=multi30k_transformer`; pilots: `run.sh pilots`). "
          f"Machine: {cpu_model()}, one thread per run, two runs side by side. BLEU: cased sacreBLEU on "
          "test_2016_flickr (1000 sentences), beam 5, length penalty 1, best checkpoint by val BLEU; ppl "
          "teacher-forced. Tokens: target tokens trained on per CPU second of the run (validation included).\n")
    print("| runs | model and budget | seeds | parameters | epochs | target tok / CPU s | val BLEU | test BLEU | "
          "BLEU lc | chrF | ppl |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in groups.items():
        seeds = ", ".join(str(run["config"]["seed"]) for run in runs)
        rates = [run["tokens"] / run["metrics"]["fit_cpu_seconds"] for run in runs]
        print(f"| {name} | {describe(runs[0]['config'])} | {seeds} | {runs[0]['parameters']:,} | "
              f"{mean_std_of([run['epochs'] for run in runs], '.1f')} | {mean_std_of(rates, '.0f')} | "
              f"{mean_std_of([max(b for _, b in run['bleu']) for run in runs], '.1f')} | "
              f"{column(runs, 'test/bleu')} | {column(runs, 'test/bleu_lc')} | {column(runs, 'test/chrf')} | "
              f"{column(runs, 'test/ppl', '.2f')} |")
    per_seed = {name: ", ".join(f"{run['metrics']['test/bleu']:.1f}" for run in runs) for name, runs in groups.items()}
    print("\nTest BLEU per seed: " + "; ".join(f"{name} {scores}" for name, scores in per_seed.items()) + ".")
    plot(groups, Path(__file__).parent / "curves.png")
    print("\n![val BLEU and val loss against CPU minutes, pilots dotted](curves.png)")


def plot(groups: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bleu_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for colour, (name, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], groups.items()):
        for k, run in enumerate(runs):
            minutes = run["metrics"]["fit_cpu_seconds"] / 60 / run["updates"]  # per update, validation included
            for ax, curve in ((bleu_ax, run["bleu"]), (loss_ax, run["losses"])):
                steps, values = zip(*curve)
                ax.plot([step * minutes for step in steps], values, color=colour, marker=".",
                        linestyle=":" if name.startswith("pilot") else "-", label=name if k == 0 else None)
    xlabel = "CPU minutes of the run (its updates spread evenly)"
    bleu_ax.set(xlabel=xlabel, ylabel="val BLEU (beam 5)")
    loss_ax.set(xlabel=xlabel, ylabel="val loss (nats/token)")
    bleu_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
