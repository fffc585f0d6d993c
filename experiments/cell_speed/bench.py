"""Scratch cells vs torch's fused kernels: LM training throughput, alternating in one process.

Each measurement trains an RNNLanguageModel (embedding → 2-layer recurrent stack → softmax) with
Adam and gradient clipping on random tokens, carrying the detached state as TBPTT does, and times
`steps` steps after `warmup`, in wall-clock and CPU seconds. fused and scratch alternate so machine
noise hits both alike. Prints one JSON line per measurement, then one per (size, cell) with the
medians and the scratch / fused ratio.

Sizes (issue 3): word = batch 20, bptt 35, hidden 200, 2 layers, vocab 10k;
                 char = batch 64, bptt 100, hidden 512, 2 layers, vocab 65.

    python experiments/cell_speed/bench.py [--sizes word char] [--cells lstm gru] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from rnnlab.models import RNNLanguageModel
from rnnlab.nn import detach_state
from rnnlab.tracking.run_info import cpu_model

SIZES = {"word": dict(batch=20, bptt=35, hidden=200, vocab=10_000, steps=60),
         "char": dict(batch=64, bptt=100, hidden=512, vocab=65, steps=12)}


def tokens_per_s(size: dict, cell: str, backend: str, warmup: int, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    options = {"gru_form": "torch"} if cell == "gru" and backend == "scratch" else {}
    model = RNNLanguageModel(size["vocab"], cell=cell, embedding_size=size["hidden"], hidden_size=size["hidden"],
                             num_layers=2, backend=backend, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, bptt = size["batch"], size["bptt"]
    data = torch.randint(size["vocab"], (warmup + steps, batch, bptt + 1))
    state = None
    for i in range(warmup + steps):
        if i == warmup:
            wall, cpu = time.perf_counter(), time.process_time()
        logits, state = model(data[i, :, :-1], state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), data[i, :, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    tokens = steps * batch * bptt
    return tokens / (time.perf_counter() - wall), tokens / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["rnn", "lstm", "gru"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    for name in args.sizes:
        size = SIZES[name]
        for cell in args.cells:
            rates = {"fused": [], "scratch": []}
            for repeat in range(args.repeats):
                for backend in ("fused", "scratch"):
                    wall, cpu = tokens_per_s(size, cell, backend, args.warmup, size["steps"])
                    rates[backend].append((wall, cpu))
                    print(json.dumps({"size": name, "cell": cell, "backend": backend, "repeat": repeat,
                                      "tokens_per_s_wall": round(wall), "tokens_per_s_cpu": round(cpu)}), flush=True)
            median = {b: [statistics.median(r[k] for r in rates[b]) for k in (0, 1)] for b in rates}
            print(json.dumps({"size": name, "cell": cell, "summary": True, **machine,
                              "fused_wall": round(median["fused"][0]), "scratch_wall": round(median["scratch"][0]),
                              "ratio_wall": round(median["scratch"][0] / median["fused"][0], 3),
                              "ratio_cpu": round(median["scratch"][1] / median["fused"][1], 3)}), flush=True)


if __name__ == "__main__":
    main()
