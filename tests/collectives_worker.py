"""One process of tests/test_ddp.py::test_sums_and_merges_cover_every_process, kept apart so that spawning it imports
only torch and rnnlab.distributed, not the test module's training stack."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnlab import distributed


def collect(rank: int, directory: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{directory}/init", rank=rank, world_size=2)
    try:
        # a key only one process has counts as zeros on the other
        totals = {"val": torch.tensor([1.0 + rank, 10.0]), **({"val/rare": torch.tensor([5.0, 1.0])} if rank else {})}
        summed = distributed.sum_by_key(totals, torch.device("cpu"))
        merged = distributed.merge_dicts({str(rank * 10 + i): f"hypothesis {rank}.{i}" for i in range(2)})
        result = {"sums": {key: value.tolist() for key, value in summed.items()}, "merged": merged}
        Path(directory, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        torch.distributed.destroy_process_group()
