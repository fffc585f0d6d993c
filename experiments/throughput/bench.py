"""`make bench`: training throughput of rnnlab's `train()` against a minimal raw PyTorch loop.

Both train the same RNNLanguageModel on the same synthetic stream windows with the same batch
size, bptt, Adam settings and gradient clipping, carrying the detached hidden state. rnnlab runs
the real train() path (Lightning, callbacks off, MLflow logging on into a temporary store). The two
alternate in one process so machine noise hits both alike; each measurement times the steps after
a warm-up, in wall-clock and in CPU seconds. Prints one JSON object per measurement, then
medians and the rnnlab / raw ratios.

    python experiments/throughput/bench.py [--steps 120] [--warmup 20] [--repeats 3] [--cell lstm]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from rnnlab.data.synthetic_lm import SyntheticLMDataModule  # noqa: E402
from rnnlab.models import RNNLanguageModel  # noqa: E402
from rnnlab.nn import detach_state  # noqa: E402
from rnnlab.tracking.run_info import cpu_model  # noqa: E402


def clocks() -> tuple[float, float]:
    """(wall, CPU) seconds. CPU time counts this process's threads only, so time stolen by other
    tenants of a shared machine inflates wall time but not CPU time: the steadier of the two here."""
    return time.perf_counter(), time.process_time()


class StepTimer(L.Callback):
    """Wall and CPU time, and tokens, of training steps warmup+1 .. end."""

    def __init__(self, warmup: int):
        self.warmup, self.tokens, self.start, self.stop = warmup, 0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = clocks()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.tokens += batch["targets"].numel()
            self.stop = clocks()

    def rates(self) -> tuple[float, float]:
        return tuple(self.tokens / (stop - start) for start, stop in zip(self.start, self.stop))


def rnnlab_tokens_per_s(args, overrides: list[str]) -> tuple[float, float]:
    from conftest import compose_train  # the same composition tests use: real conf/, temp dirs

    from rnnlab.training import train

    with tempfile.TemporaryDirectory() as tmp:
        store = [f"logger.mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db"] if args.logger == "mlflow" else []
        cfg = compose_train(overrides + store + [f"trainer.max_steps={args.warmup + args.steps}"], Path(tmp))
        timer = StepTimer(args.warmup)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON lines
            train(cfg, extra_callbacks=[timer])
    return timer.rates()


def raw_tokens_per_s(args, datamodule: SyntheticLMDataModule, model_cfg: dict) -> tuple[float, float]:
    torch.manual_seed(42)
    model = RNNLanguageModel(datamodule.vocab_size, **model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    state, tokens, start = None, 0, None
    for step, batch in enumerate(datamodule.train_dataloader()):
        if step == args.warmup:
            start = clocks()
        logits, state = model(batch["inputs"], state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if start is not None:
            tokens += batch["targets"].numel()
        if step + 1 == args.warmup + args.steps:
            break
    return tuple(tokens / (stop - begin) for begin, stop in zip(start, clocks()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--clip", type=float, default=0.5)
    parser.add_argument("--logger", default="mlflow", help="rnnlab's logger option (mlflow, csv, none)")
    args = parser.parse_args()

    model_cfg = dict(cell=args.cell, embedding_size=128, hidden_size=256, num_layers=2, dropout=0.1)
    train_tokens = (args.warmup + args.steps + 5) * args.batch_size * args.bptt
    data = dict(batch_size=args.batch_size, bptt=args.bptt, train_tokens=train_tokens)
    overrides = [f"model={args.cell}", f"logger={args.logger}", "callbacks=none", "+trainer.enable_progress_bar=false",
                 "+trainer.enable_model_summary=false", "+trainer.limit_val_batches=0", "test=false",
                 f"optimizer.lr={args.lr}", f"trainer.gradient_clip_val={args.clip}",
                 *(f"model.{k}={v}" for k, v in model_cfg.items() if k != "cell"),
                 *(f"data.{k}={v}" for k, v in data.items())]
    datamodule = SyntheticLMDataModule(**data)
    datamodule.setup()

    settings = {"cell": args.cell, "batch_size": args.batch_size, "bptt": args.bptt, "steps": args.steps,
                "warmup": args.warmup, "logger": args.logger, "model": model_cfg,
                "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "lightning": L.__version__,
                "cpu": cpu_model(), "cores": os.cpu_count()}
    results = {(name, clock): [] for name in ("raw_torch", "rnnlab") for clock in ("wall", "cpu")}
    for repeat in range(args.repeats):  # alternate so drift and noise hit both
        for name in ("raw_torch", "rnnlab"):
            rates = (raw_tokens_per_s(args, datamodule, model_cfg) if name == "raw_torch"
                     else rnnlab_tokens_per_s(args, overrides))
            for clock, value in zip(("wall", "cpu"), rates):
                results[name, clock].append(value)
                unit = "tokens/s" if clock == "wall" else "tokens/cpu-s"
                print(json.dumps({"name": f"{name}_train_tokens_per_{clock}_s", "value": round(value, 1),
                                  "unit": unit, "repeat": repeat, **settings}), flush=True)
    for clock in ("wall", "cpu"):
        raw, ours = results["raw_torch", clock], results["rnnlab", clock]
        for name, values in (("raw_torch", raw), ("rnnlab", ours)):
            print(json.dumps({"name": f"{name}_train_tokens_per_{clock}_s_median",
                              "value": round(statistics.median(values), 1), **settings}))
        # each pair ran back to back, so its ratio cancels slow drift in the machine's speed
        pairs = [r / w for r, w in zip(ours, raw)]
        print(json.dumps({"name": f"rnnlab_over_raw_{clock}_ratio",
                          "value": round(statistics.median(ours) / statistics.median(raw), 4),
                          "pair_ratio_median": round(statistics.median(pairs), 4),
                          "pairs": [round(p, 4) for p in pairs], "unit": "ratio", "goal": ">= 0.95",
                          **settings}))

if __name__ == "__main__":
    main()
