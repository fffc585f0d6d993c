"""Packed vs unpacked recurrent stacks over padded batches on the CPU: what `final=False` buys taggers and classifiers.

    python experiments/cell_speed/padded.py [--repeats 5] [--threads 1] [--lengths 10 25 50] [--out results.jsonl]

The stack of a tagger (2 layers × 2 directions × 256 units over 384-d inputs, experiment=ud_ewt_upos's), forward
and backward over 32 sequences of about T tokens (T − 3 to T, as length buckets give), timed two ways, alternating
in one process: packed (`layer(x, lengths=lengths)`, what a caller gets when it needs the final state) and by
direction (`final=False`: each direction one call over the padded batch, rnnlab/nn/recurrent.py). Prints a table of
medians; with --out, appends one JSON line per (cell, T) there, with the machine. rnnlab.nn.recurrent quotes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from rnnlab.nn import recurrent_layer
from rnnlab.nn.recurrent import unpacked_is_faster


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def step_seconds(layer, T: int, final: bool, batch: int, calls: int) -> float:
    lengths = torch.randint(max(1, T - 3), T + 1, (batch,))
    lengths[0] = T
    x = torch.randn(batch, T, layer.input_size, requires_grad=True)
    started = time.perf_counter()
    for _ in range(calls):
        # by direction whatever unpacked_is_faster says, to measure both ways at every length
        outputs = layer(x, lengths=lengths)[0] if final else layer._run_by_direction(x, None, lengths)
        outputs.sum().backward()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = dict(cpu=cpu_name(), threads=args.threads, torch=torch.__version__,
                   date=datetime.now(UTC).strftime("%Y-%m-%d"))
    print(f"{machine}\n\n| cell | T | packed ms | by direction ms | packed ÷ by direction | final=False runs |")
    print("|---|---:|---:|---:|---:|---|")
    with contextlib.nullcontext(None) if args.out is None else args.out.open("a") as out:
        for cell in ("lstm", "gru", "rnn"):
            layer = recurrent_layer(cell, 384, 256, 2, dropout=0.33, bidirectional=True).train()
            for T in args.lengths:
                times = {True: [], False: []}
                step_seconds(layer, T, True, 32, 1), step_seconds(layer, T, False, 32, 1)  # warm-up
                for _ in range(args.repeats):
                    for final in (True, False):
                        times[final].append(step_seconds(layer, T, final, 32, 3))
                packed, unpacked = (statistics.median(times[f]) * 1000 for f in (True, False))
                path = "by direction" if unpacked_is_faster(cell, torch.zeros(1, T, 1)) else "packed"
                print(f"| {cell} | {T} | {packed:.1f} | {unpacked:.1f} | {packed / unpacked:.2f} | {path} |")
                if out is not None:
                    out.write(json.dumps(dict(cell=cell, T=T, packed_ms=packed, by_direction_ms=unpacked,
                                              ratio=packed / unpacked, repeats=args.repeats, **machine)) + "\n")


if __name__ == "__main__":
    main()
