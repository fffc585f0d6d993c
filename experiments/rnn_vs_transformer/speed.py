"""Study 4 of issue 19: training and decoding speed of rnn, lstm, gru and transformer at equal parameter count.

    python experiments/rnn_vs_transformer/speed.py [--repeats 3] [--steps 60] [--warmup 10] > speed.jsonl
    python experiments/rnn_vs_transformer/speed.py --table speed.jsonl [later.jsonl ...] [--memory m.jsonl] \
        [--plot speed.png] > speed.md

Sizes. The reference is make train's LSTM (2 × 256, embedding 128); every other model gets the width whose
parameter count is nearest to it (`sized`): the GRU and the tanh RNN their hidden size (2 layers, embedding 128),
the Transformer its d_model (2 layers, 4 heads, feed-forward 4·d_model, multiples of 8). Translation likewise
against the recurrent encoder–decoder that task=translation builds from model=gru (attention=bahdanau).

Workloads, each model measured in a fresh process (so that its peak memory is its own), the models alternating
within each repeat, one thread (OMP_NUM_THREADS=1):
    lm-train     tokens/s training through rnnlab's train() on data=synthetic_lm (32 streams × 64 tokens, Adam,
                 clipping): the steps after --warmup, wall and CPU clock; peak resident memory of the process
    lm-sample    tokens/s writing 512 tokens from an empty prompt (batch 1): the RNN's carried state against the
                 Transformer's key/value cache (which slides past its 64 positions)
    mt-train     target tokens/s training task=translation on data=synthetic_translation (64 pairs per batch)
    mt-beam      sentences/s decoding 256 test sentences with beam 5 (untrained weights: no hypothesis ends
                 early, so every model writes the same lengths, up to 1.5·S + 10; the per-token cost is compared)
Memory: the process's peak resident size (mostly the interpreter, torch and the data) and the most the resident
size rose during the workload (`ResidentGrowth`: the workload's own memory; added after the 2026-12-06 runs, whose
speed.jsonl lacks it: speed_memory.jsonl measured it, and `--table ... --memory` takes it from there).
Prints one JSON line per measurement; --table turns them into a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

MODELS = ("rnn", "lstm", "gru", "transformer")
WORKLOADS = ("lm-train", "lm-sample", "mt-train", "mt-beam")
LM = ["data=synthetic_lm"]
MT = ["task=translation", "data=synthetic_translation", "attention=bahdanau"]
QUIET = ["logger=none", "callbacks=none", "test=false", "+trainer.limit_val_batches=0",
         "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def compose(overrides: list[str], tmp: str):
    from conftest import compose_train  # the composition tests use: the real conf/, temporary directories

    return compose_train(overrides, Path(tmp))


def parameters(overrides: list[str], data: dict) -> int:
    """Trainable parameters of the network these overrides build (shared tensors counted once). data caches one
    data module per data option: the network's inputs (vocabulary sizes) are all it is needed for."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from rnnlab.training import make_task

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        cfg = compose(overrides + QUIET, tmp)
        key = OmegaConf.to_yaml(cfg.data)
        if key not in data:
            data[key] = instantiate(cfg.data)
            data[key].prepare_data()
            data[key].setup("fit")
        task = make_task(cfg, data[key])
    return sum(p.numel() for p in task.model.parameters())  # a tied weight once, as torch lists it


def sized(workload: str, model: str, data: dict) -> list[str]:
    """The overrides that give `model` about the parameters of the reference (see the module docstring)."""
    base = LM if workload.startswith("lm") else MT
    reference = ["model=lstm"] if workload.startswith("lm") else ["model=gru"]
    if [f"model={model}"] == reference:
        return base + reference
    target = parameters(base + reference, data)
    widths = range(64, 769, 8)  # the Transformer: d_model a multiple of its 4 heads

    def overrides(width: int) -> list[str]:
        if model == "transformer":  # 2 layers, 4 heads, feed-forward 4·d_model
            return base + [f"model={model}", f"model.d_model={width}", f"model.dim_feedforward={4 * width}"]
        return base + [f"model={model}", f"model.hidden_size={width}"]

    best = min(widths, key=lambda width: abs(parameters(overrides(width), data) - target))
    return overrides(best)


class StepTimer(L.Callback):
    """Wall and CPU time, and target tokens (those not padding), of training steps warmup+1 .. end."""

    def __init__(self, warmup: int, pad_id: int | None):
        self.warmup, self.pad_id, self.tokens, self.start = warmup, pad_id, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = clocks()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            targets = batch["targets"] if "targets" in batch else batch["tgt_out"]
            self.tokens += int(targets.numel() if self.pad_id is None else (targets != self.pad_id).sum())
            self.stop = clocks()


class ResidentGrowth:
    """The most the process's resident memory rose above its level at entry, sampled every `every` seconds in a
    thread (the workload's own memory: activations, optimizer state, caches; not the interpreter, torch and data
    that were resident before). Linux only (/proc/self/statm); reading it costs microseconds per sample."""

    def __init__(self, every: float = 0.005):
        self.every, self.page = every, os.sysconf("SC_PAGE_SIZE")

    def _resident(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, self._resident())

    def __enter__(self):
        import threading

        self.start = self.peak = self._resident()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self._resident())
        self.growth_mib = (self.peak - self.start) / 2**20


def measure(workload: str, overrides: list[str], args) -> dict:
    """One measurement in this process: see the module docstring."""
    import torch

    from rnnlab import decoding, generation
    from rnnlab.training import build

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        cfg = compose(overrides + QUIET + [f"trainer.max_steps={args.warmup + args.steps}",
                                           "trainer.max_epochs=1000"], tmp)
        timer = StepTimer(args.warmup, pad_id=None)
        datamodule, task, trainer = build(cfg, extra_callbacks=[timer])
        result = {"parameters": sum(p.numel() for p in task.model.parameters())}
        with ResidentGrowth() as growth:
            if workload.endswith("train"):
                timer.pad_id = datamodule.task_inputs.get("pad_id") if workload == "mt-train" else None
                trainer.fit(task, datamodule=datamodule)
                (wall0, cpu0), (wall1, cpu1) = timer.start, timer.stop
                result |= {"tokens": timer.tokens, "per_s": timer.tokens / (wall1 - wall0),
                           "per_cpu_s": timer.tokens / (cpu1 - cpu0)}
            elif workload == "lm-sample":
                model = task.model.eval()
                generation.sample(model, [0], 16, generator=torch.Generator().manual_seed(0))  # warm-up
                (wall0, cpu0) = clocks()
                drawn = generation.sample(model, [0], 512, generator=torch.Generator().manual_seed(0))
                (wall1, cpu1) = clocks()
                result |= {"tokens": len(drawn), "per_s": len(drawn) / (wall1 - wall0),
                           "per_cpu_s": len(drawn) / (cpu1 - cpu0)}
            else:  # mt-beam
                model = task.model.eval()
                datamodule.setup("test")
                batches = iter(datamodule.test_dataloader())
                sentences, written, spent = 0, 0, [0.0, 0.0]
                with torch.no_grad():
                    while sentences < 256:
                        batch = next(batches)
                        (wall0, cpu0) = clocks()
                        hypotheses = decoding.beam_search(model, batch["src"], batch["src_lengths"], beam_size=5)
                        (wall1, cpu1) = clocks()
                        spent[0] += wall1 - wall0
                        spent[1] += cpu1 - cpu0
                        sentences += batch["src"].size(0)
                        written += sum(len(tokens) for tokens in hypotheses.tokens)
                result |= {"sentences": sentences, "tokens_written": written, "per_s": sentences / spent[0],
                           "per_cpu_s": sentences / spent[1]}
        result["memory_growth_mib"] = growth.growth_mib
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_all(args) -> None:
    from rnnlab.tracking.run_info import cpu_model

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    data: dict = {}
    plans = {(w, m): sized(w, m, data) for w in args.workloads for m in MODELS}
    print(json.dumps({"machine": cpu_model(), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
                      "warmup": args.warmup, "repeats": args.repeats}), flush=True)
    for repeat in range(args.repeats):
        for workload in args.workloads:
            for model in MODELS:
                command = [sys.executable, __file__, "--one", workload,
                           "--overrides", json.dumps(plans[workload, model]),
                           "--steps", str(args.steps), "--warmup", str(args.warmup)]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
                row = {"workload": workload, "model": model, "repeat": repeat, "overrides": plans[workload, model],
                       **json.loads(out.strip().splitlines()[-1])}
                print(json.dumps(row), flush=True)


def read(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines[0], lines[1:]


def table(paths: list[Path], memory: Path | None = None, plot_path: Path | None = None) -> None:
    """Markdown tables of measurement files; a workload measured in a later file is taken from it alone. With
    `memory`, the memory-growth column comes from that file (a run made for memory alone: its speeds are not used,
    so it may run on a busy machine, where resident memory is the same and the clocks are not)."""
    head, rows = None, []
    for path in paths:
        first, lines = read(path)
        head = head or first
        again = {row["workload"] for row in lines}
        rows = [row for row in rows if row["workload"] not in again] + lines
    print(f"Machine: {head['machine']}, one thread per process, {head['repeats']} repeats (models alternating), "
          f"{head['date']}; training: {head['steps']} timed steps after {head['warmup']}. Medians.\n")
    if memory is not None:
        first, lines = read(memory)
        print(f"Memory growth from {memory.name}: {first['machine']}, {first['repeats']} repeats, {first['date']} "
              f"(training: {first['steps']} steps after {first['warmup']}; its clocks are not used).\n")
        rows = [{key: value for key, value in row.items() if key != "memory_growth_mib"} for row in rows]
        grown = {}
        for row in lines:
            grown.setdefault((row["workload"], row["model"]), []).append(row["memory_growth_mib"])
        for row in rows:
            if (row["workload"], row["model"]) in grown:
                row["memory_growth_mib"] = statistics.median(grown[row["workload"], row["model"]])
    unit = {"lm-train": "tokens/s", "lm-sample": "tokens/s", "mt-train": "target tokens/s", "mt-beam": "sentences/s"}
    drawn: dict[str, dict[str, tuple[float, float]]] = {}  # workload → model → (÷ reference, memory growth MiB)
    for workload in dict.fromkeys(r["workload"] for r in rows):
        print(f"**{workload}** ({unit[workload]})\n")
        growth = all("memory_growth_mib" in r for r in rows if r["workload"] == workload)
        print("| model | parameters | width | per s (wall) | per CPU s | ÷ reference (CPU) | peak memory MiB |"
              + (" memory growth MiB |" if growth else ""))
        print("|---|---:|---|---:|---:|---:|---:|" + ("---:|" if growth else ""))
        mine = [r for r in rows if r["workload"] == workload]
        reference = "lstm" if workload.startswith("lm") else "gru"
        ref = statistics.median(r["per_cpu_s"] for r in mine if r["model"] == reference)
        for model in MODELS:
            got = [r for r in mine if r["model"] == model]
            if not got:
                continue
            width = " ".join(o for o in got[0]["overrides"] if o.startswith(("model.d_model", "model.hidden_size")))
            cpu = statistics.median(r["per_cpu_s"] for r in got)
            grown = statistics.median(r["memory_growth_mib"] for r in got) if growth else 0.0
            drawn.setdefault(workload, {})[model] = (cpu / ref, grown)
            print(f"| {model} | {got[0]['parameters']:,} | {width or '(default)'} | "
                  f"{statistics.median(r['per_s'] for r in got):,.1f} | {cpu:,.1f} | {cpu / ref:.2f} | "
                  f"{statistics.median(r['peak_rss_mib'] for r in got):.0f} |" + (f" {grown:.1f} |" if growth else ""))
        print()
    if plot_path is not None:
        plot(drawn, plot_path)


def plot(drawn: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    """The tables' medians as bars, per workload and model: speed per CPU second ÷ the reference's, and the
    workload's own memory (0 where it was not measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(drawn)
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(MODELS)
    for k, model in enumerate(MODELS):
        ratios, grown = zip(*(drawn[workload].get(model, (0.0, 0.0)) for workload in workloads))
        at = [i + (k - (len(MODELS) - 1) / 2) * width for i in range(len(workloads))]
        speed.bar(at, ratios, width, label=model)
        memory.bar(at, grown, width, label=model)
    speed.axhline(1, color="grey", linewidth=0.8)
    speed.set(ylabel="per CPU second ÷ reference (lstm: lm, gru: mt)", title="speed at equal parameters")
    memory.set(ylabel="MiB the workload added", title="the workload's own memory")
    for ax in (speed, memory):
        ax.set_xticks(range(len(workloads)), workloads)
    speed.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--one", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, nargs="+", help="print the Markdown tables of JSON-lines outputs (a "
                        "workload measured again in a later file is taken from that file)")
    parser.add_argument("--memory", type=Path, help="with --table: the memory-growth column from this output")
    parser.add_argument("--plot", type=Path, help="with --table: draw the ratios and memory growth into this PNG")
    args = parser.parse_args()
    if args.table:
        table(args.table, args.memory, args.plot)
    elif args.one:
        print(json.dumps(measure(args.one, json.loads(args.overrides), args)))
    else:
        run_all(args)


if __name__ == "__main__":
    main()
