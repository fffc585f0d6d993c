"""rnnlab's side of the peers study, one measurement per process (so an allocator set by the environment applies
from the start); each prints one JSON line on stdout.

    python experiments/peers/rnnlab_side.py rate --warmup W --steps N -- <train.py overrides>
        training throughput: the real train() path (MLflow logging on, into a temporary store; no validation, no
        checkpoints), timing steps W+1 .. W+N: target tokens (non-pad) per wall and per CPU second
    python experiments/peers/rnnlab_side.py decode [--allocator retain|system] --ckpt PATH --sources S --hypotheses OUT
        beam-5 decoding of every source line (raw text in, detokenized text out), timed; measure.py scores it
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L

from rnnlab import allocator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def clocks() -> tuple[float, float]:
    """(wall, CPU) seconds; CPU counts this process's threads only, steadier on a shared machine."""
    return time.perf_counter(), time.process_time()


def target_tokens(batch: dict) -> int:
    """The tokens a step predicts: a translation batch's non-pad tgt_out, an LM window's targets."""
    if "tgt_out" in batch:
        from rnnlab.data.subwords import PAD_ID

        return int((batch["tgt_out"] != PAD_ID).sum())
    return batch["targets"].numel()


class StepTimer(L.Callback):
    """Wall and CPU time, and target tokens, of training steps warmup+1 .. end."""

    def __init__(self, warmup: int):
        self.warmup, self.tokens, self.steps, self.start, self.stop = warmup, 0, 0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = clocks()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.tokens += target_tokens(batch)
            self.steps += 1
            self.stop = clocks()


def rate(args, overrides: list[str]) -> dict:
    from conftest import compose_train  # the composition the tests use: real conf/, temporary dirs

    from rnnlab.training import train

    quiet = ["callbacks=none", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
             "+trainer.limit_val_batches=0", "test=false", "logger=mlflow"]
    with tempfile.TemporaryDirectory() as tmp:
        store = [f"logger.mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db", "logger.mlflow.log_model=false"]
        cfg = compose_train([*overrides, *quiet, *store, f"trainer.max_steps={args.warmup + args.steps}"], Path(tmp))
        timer = StepTimer(args.warmup)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
            train(cfg, extra_callbacks=[timer])
    if timer.steps < args.steps:
        raise SystemExit(f"rnnlab_side.py: only {timer.steps} of {args.steps} timed steps ran (the data ran out?)")
    wall, cpu = (stop - start for start, stop in zip(timer.start, timer.stop))
    return {"tokens_per_s": round(timer.tokens / wall, 1), "tokens_per_cpu_s": round(timer.tokens / cpu, 1),
            "tokens": timer.tokens, "steps": timer.steps, "seconds": round(wall, 3)}


def decode(args) -> dict:
    from rnnlab import tasks

    allocator.configure(args.allocator)  # the scripts' key; this harness takes it as an argument
    from rnnlab.data.translation import read_lines

    task = tasks.load(Path(args.ckpt), str(args.ckpt), "cpu", decode="beam", beam_size=args.beam_size,
                      length_penalty=args.length_penalty)
    sources = read_lines(args.sources)
    start = clocks()
    hypotheses = task.translate(sources, batch_size=args.batch_size)
    wall, cpu = (stop - begin for begin, stop in zip(start, clocks()))
    Path(args.hypotheses).write_text("".join(f"{h}\n" for h in hypotheses), encoding="utf-8")
    return {"sentences_per_s": round(len(sources) / wall, 2), "sentences_per_cpu_s": round(len(sources) / cpu, 2),
            "sentences": len(sources), "seconds": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timed = commands.add_parser("rate")
    timed.add_argument("--warmup", type=int, default=10)
    timed.add_argument("--steps", type=int, default=20)
    timed.add_argument("overrides", nargs="*")
    decoding = commands.add_parser("decode")
    decoding.add_argument("--ckpt", required=True)
    decoding.add_argument("--allocator", choices=allocator.SETTINGS, default="retain")
    decoding.add_argument("--sources", required=True)
    decoding.add_argument("--hypotheses", required=True)
    decoding.add_argument("--beam-size", type=int, default=5)
    decoding.add_argument("--length-penalty", type=float, default=1.0)
    decoding.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    result = rate(args, args.overrides) if args.command == "rate" else decode(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
