"""Length-bucketed padded batching: translation's batches are the ones recorded before the shared block existed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from torch.utils.data import SequentialSampler

from rnnlab.data.batching import EpochShuffle, LengthBucketSampler
from rnnlab.data.parallel_text import ParallelTextDataModule
from rnnlab.data.translation import collate_pairs

# Recorded from rnnlab.data.translation at main 6fe09d1: the inputs of each case and the batches it gave.
RECORDED = json.loads((Path(__file__).parent / "data" / "translation_batches.json").read_text())


@pytest.mark.parametrize("case", RECORDED["sampler_cases"],
                         ids=lambda c: f"{'train' if c['shuffle'] else 'eval'}-{c['num_replicas']}proc")
def test_translation_sampler_gives_the_recorded_batches(case):
    lengths = np.array(RECORDED["lengths"])
    examples = range(len(lengths))
    shares = []
    for rank in range(case["num_replicas"]):
        if case["shuffle"]:
            order = EpochShuffle(examples, seed=case["seed"])
            order.set_epoch(case["epoch"])
        else:
            order = SequentialSampler(examples)
        shares.append(list(LengthBucketSampler(order, case["batch_size"], case["drop_last"], lengths=lengths,
                                               max_tokens=case["max_tokens"], shuffle=case["shuffle"],
                                               num_replicas=case["num_replicas"], rank=rank)))
    assert shares == case["shares"]


def test_translation_data_module_serves_the_recorded_batches(tmp_path):
    recorded = RECORDED["datamodule"]
    for split, part in (("train", recorded["pairs"][:70]), ("val", recorded["pairs"][70:]),
                        ("test", recorded["pairs"][70:])):
        (tmp_path / f"{split}.src").write_text("".join(f"{s}\n" for s, _ in part), encoding="utf-8")
        (tmp_path / f"{split}.tgt").write_text("".join(f"{t}\n" for _, t in part), encoding="utf-8")
    paths = {f"{split}_{side}": str(tmp_path / f"{split}.{side}") for split in ("train", "val", "test")
             for side in ("src", "tgt")}
    for loader in recorded["loaders"]:
        data = ParallelTextDataModule(**paths, **recorded["options"])
        data.setup()
        data.trainer = SimpleNamespace(world_size=loader["world_size"], global_rank=loader["rank"],
                                       current_epoch=loader["epoch"])
        served = data.train_dataloader() if loader["split"] == "train" else data.val_dataloader()
        batches = [{key: value.tolist() for key, value in batch.items()} for batch in served]
        assert batches == loader["batches"], {key: loader[key] for key in ("split", "rank", "world_size", "epoch")}


def test_collate_pairs_gives_the_recorded_batch():
    batch = collate_pairs(RECORDED["collate_pairs"]["pairs"])
    assert {key: value.tolist() for key, value in batch.items()} == RECORDED["collate_pairs"]["batch"]
