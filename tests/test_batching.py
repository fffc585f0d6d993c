"""Length-bucketed padded batching: translation's batches are the ones recorded before the shared block existed,
and the block on other data pads, buckets and shares examples among 1-4 processes as documented."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, SequentialSampler

from rnnlab.data.batching import CHUNK_BATCHES, EpochShuffle, LengthBucketSampler, collate_padded, pad_sequences
from rnnlab.data.parallel_text import ParallelTextDataModule
from rnnlab.data.translation import collate_pairs
from rnnlab.errors import ConfigError

# Recorded from rnnlab.data.translation at main 6fe09d1: the inputs of each case and the batches it gave.
RECORDED = json.loads((Path(__file__).parent / "data" / "translation_batches.json").read_text())


@pytest.mark.parametrize("case", RECORDED["sampler_cases"],
                         ids=lambda c: (f"train-seed{c['seed']}-epoch{c['epoch']}" if c["shuffle"] else "eval")
                         + f"-{c['num_replicas']}proc")
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


# -- the block on its own: single sentences with a label, tokens with tags, an image with a caption -------------

PAD = 0
SENTENCES = st.lists(st.tuples(st.lists(st.integers(1, 99), max_size=15), st.integers(0, 4)), min_size=1, max_size=40)
# drawn from a seeded generator, not as a hypothesis list: its lists stay short, and buckets need several chunks
LENGTHS = st.builds(lambda size, longest, seed: np.random.default_rng(seed).integers(0, longest + 1, size=size),
                    st.integers(1, 600), st.integers(0, 40), st.integers(0, 2**32 - 1))
SETTINGS = settings(max_examples=60, deadline=None)


def test_pad_sequences_right_pads_to_the_longest_and_gives_the_lengths():
    padded, lengths = pad_sequences([[5, 6], [], [7, 8, 9]], pad_id=PAD)
    assert torch.equal(padded, torch.tensor([[5, 6, 0], [0, 0, 0], [7, 8, 9]]))
    assert torch.equal(lengths, torch.tensor([2, 0, 3])) and padded.dtype == lengths.dtype == torch.long


def test_collate_pads_the_named_fields_and_stacks_the_others():
    sentences = [{"tokens": [4, 5, 6], "label": 1, "text": "a b c"}, {"tokens": [7], "label": 0, "text": "d"}]
    batch = collate_padded(sentences, {"tokens": PAD})
    assert list(batch) == ["tokens", "tokens_lengths", "label", "text"]
    assert batch["tokens"].tolist() == [[4, 5, 6], [7, 0, 0]] and batch["tokens_lengths"].tolist() == [3, 1]
    assert torch.equal(batch["label"], torch.tensor([1, 0])) and batch["text"] == ["a b c", "d"]

    tagged = [{"tokens": [4, 5], "tags": [2, 3]}, {"tokens": [6], "tags": [1]}]
    batch = collate_padded(tagged, {"tokens": PAD, "tags": -100}, lengths_of=("tokens",))
    assert list(batch) == ["tokens", "tokens_lengths", "tags"]  # one lengths tensor serves both
    assert batch["tags"].tolist() == [[2, 3], [1, -100]]

    images = [torch.full((3, 2, 2), float(i)) for i in range(2)]
    batch = collate_padded([{"image": image, "caption": [9] * (i + 1)} for i, image in enumerate(images)],
                           {"caption": PAD})
    assert torch.equal(batch["image"], torch.stack(images)) and batch["caption"].tolist() == [[9, 0], [9, 9]]


def test_a_field_to_pad_that_the_examples_lack_is_named():
    with pytest.raises(KeyError, match=r"fields to pad \['tokens'\] are not in the examples, which have \['text'\]"):
        collate_padded([{"text": "a"}], {"tokens": PAD})


def test_the_loader_constructors_follow_the_trainer_epoch_and_process():
    lengths = np.random.default_rng(2).integers(1, 20, size=300)
    trainer = SimpleNamespace(current_epoch=3, world_size=2, global_rank=1)
    order = EpochShuffle(range(300), seed=4)
    order.set_epoch(3)
    by_hand = LengthBucketSampler(order, 5, lengths=lengths, max_tokens=40, num_replicas=2, rank=1)
    training = LengthBucketSampler.for_training(lengths, 5, max_tokens=40, seed=4, trainer=trainer)
    assert list(training) == list(by_hand)
    alone = LengthBucketSampler.for_training(lengths, 5, max_tokens=40, seed=4)  # no trainer: epoch 0, one process
    order.set_epoch(0)
    assert list(alone) == list(LengthBucketSampler(order, 5, lengths=lengths, max_tokens=40))
    evaluation = LengthBucketSampler.for_evaluation(lengths, 7, trainer=trainer)
    assert list(evaluation) == list(LengthBucketSampler(range(300), 7, lengths=lengths, shuffle=False,
                                                        num_replicas=2, rank=1))


def test_training_order_is_a_function_of_seed_and_epoch_and_mixes_the_buckets():
    lengths = np.random.default_rng(3).integers(1, 50, size=400)

    def batches(seed: int, epoch: int) -> list[list[int]]:
        return list(LengthBucketSampler.for_training(lengths, 4, seed=seed,
                                                     trainer=SimpleNamespace(current_epoch=epoch, world_size=1,
                                                                             global_rank=0)))

    first = batches(seed=1, epoch=0)
    assert batches(seed=1, epoch=0) == first and batches(seed=1, epoch=1) != first and batches(seed=2, epoch=0) != first
    longest = [max(lengths[batch]) for batch in first]
    # the batches are shuffled, not served bucket after bucket: about every other one is shorter than the one before
    assert sum(a > b for a, b in zip(longest, longest[1:])) > len(longest) // 4


def test_too_few_examples_for_the_processes_are_one_line_errors_naming_the_key():
    lengths = np.array([3, 4, 5])
    with pytest.raises(ConfigError, match=r"^3 training sentences make 1 batches, fewer than the 2 processes: "
                                          r"lower data.batch_size \(or data.max_tokens\)$"):
        LengthBucketSampler.for_training(lengths, 8, trainer=SimpleNamespace(current_epoch=0, world_size=2,
                                                                             global_rank=0), noun="sentences").batches()
    with pytest.raises(ConfigError, match=r"^3 evaluation sentences cannot give 4 processes the same number of "
                                          r"batches: evaluate more sentences \(data.max_eval_sentences\) or use fewer "
                                          r"processes$"):
        LengthBucketSampler.for_evaluation(lengths, 8, trainer=SimpleNamespace(world_size=4, global_rank=0),
                                           noun="sentences").batches()


@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_a_loader_of_labelled_sentences_evaluates_each_once_across_the_processes(processes):
    rng = np.random.default_rng(processes)
    sentences = [{"tokens": rng.integers(4, 50, size=rng.integers(1, 25)).tolist(), "label": int(rng.integers(3)),
                  "index": i} for i in range(103)]
    lengths = np.array([len(sentence["tokens"]) for sentence in sentences])
    collate = partial(collate_padded, pad_ids={"tokens": PAD})
    seen = {}
    for rank in range(processes):
        trainer = SimpleNamespace(world_size=processes, global_rank=rank)
        batches = LengthBucketSampler.for_evaluation(lengths, 10, trainer=trainer)
        loader = DataLoader(sentences, batch_sampler=batches, collate_fn=collate)
        for batch in loader:
            for row, index in enumerate(batch["index"].tolist()):
                assert index not in seen
                seen[index] = {"tokens": batch["tokens"][row, : batch["tokens_lengths"][row]].tolist(),
                               "label": int(batch["label"][row]), "index": index}
    assert [seen[i] for i in range(len(sentences))] == sentences


@SETTINGS
@given(SENTENCES)
def test_padded_sentences_unpad_to_themselves_with_their_labels(sentences):
    batch = collate_padded([{"tokens": tokens, "label": label} for tokens, label in sentences], {"tokens": PAD})
    assert batch["tokens"].shape == (len(sentences), max(len(tokens) for tokens, _ in sentences))
    assert batch["tokens_lengths"].tolist() == [len(tokens) for tokens, _ in sentences]
    assert batch["label"].tolist() == [label for _, label in sentences]
    for row, (tokens, _) in enumerate(sentences):
        assert batch["tokens"][row, : len(tokens)].tolist() == tokens
        assert (batch["tokens"][row, len(tokens):] == PAD).all()


def shares(lengths: np.ndarray, batch_size: int, processes: int, *, shuffle: bool, **options) -> list[list[list[int]]]:
    """Each process's batches, every process given the same (seed, epoch) order as under DDP."""
    def order():
        sequence = EpochShuffle(range(len(lengths)), seed=options.get("seed", 0))
        sequence.set_epoch(options.get("epoch", 0))
        return sequence if shuffle else range(len(lengths))

    return [LengthBucketSampler(order(), batch_size, lengths=lengths, max_tokens=options.get("max_tokens"),
                                shuffle=shuffle, num_replicas=processes, rank=rank).batches()
            for rank in range(processes)]


def dealt(per_process: list[list[list[int]]]) -> list[list[int]]:
    """The processes' batches in the order they were dealt: batch i of every process, then batch i + 1."""
    return [batch for round_ in zip(*per_process) for batch in round_]


@SETTINGS
@given(LENGTHS, st.integers(1, 8), st.one_of(st.none(), st.integers(1, 80)), st.integers(1, 4),
       st.integers(0, 5), st.integers(0, 3))
def test_training_processes_are_dealt_the_batches_of_one_process_with_only_the_remainder_left_out(
        lengths, batch_size, max_tokens, processes, seed, epoch):
    options = {"max_tokens": max_tokens, "seed": seed, "epoch": epoch}
    (alone,) = shares(lengths, batch_size, 1, shuffle=True, **options)
    assert sorted(i for batch in alone for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= batch_size for batch in alone)
    if max_tokens is not None:  # a single example longer than the budget still gets its own batch
        assert all(len(batch) * max(lengths[batch]) <= max_tokens for batch in alone if len(batch) > 1)
    if len(alone) < processes:
        with pytest.raises(ConfigError, match="fewer than the"):
            shares(lengths, batch_size, processes, shuffle=True, **options)
        return
    per_process = shares(lengths, batch_size, processes, shuffle=True, **options)
    assert {len(share) for share in per_process} == {len(alone) // processes}
    assert dealt(per_process) == alone[: len(alone) - len(alone) % processes]


@SETTINGS
@given(LENGTHS, st.integers(1, 4), st.integers(0, 5))
def test_training_batches_are_length_buckets_of_each_shuffled_chunk(lengths, batch_size, seed):
    order = list(EpochShuffle(range(len(lengths)), seed=seed))
    chunk_size = CHUNK_BATCHES * batch_size
    chunk_of = {index: position // chunk_size for position, index in enumerate(order)}
    (batches,) = shares(lengths, batch_size, 1, shuffle=True, seed=seed)
    in_chunk: dict[int, list[list[int]]] = {}
    for batch in batches:
        assert len({chunk_of[i] for i in batch}) == 1
        in_chunk.setdefault(chunk_of[batch[0]], []).append(batch)
    for chunk in in_chunk.values():
        assert sum(len(batch) < batch_size for batch in chunk) <= 1  # only the chunk's last cut is short
        spans = sorted((min(lengths[batch]), max(lengths[batch])) for batch in chunk)
        assert all(longest <= shortest for (_, longest), (shortest, _) in zip(spans, spans[1:]))  # no overlap


@SETTINGS
@given(LENGTHS, st.integers(1, 30), st.integers(1, 4))
def test_evaluation_gives_every_example_to_exactly_one_process_longest_first(lengths, batch_size, processes):
    (alone,) = shares(lengths, batch_size, 1, shuffle=False)
    shareable = -(-len(alone) // processes) * processes <= len(lengths)  # halving adds one batch at a time
    if not shareable:
        with pytest.raises(ConfigError, match="cannot give"):
            shares(lengths, batch_size, processes, shuffle=False)
        return
    per_process = shares(lengths, batch_size, processes, shuffle=False)
    assert len({len(share) for share in per_process}) == 1
    served = [i for batch in dealt(per_process) for i in batch]
    assert sorted(served) == list(range(len(lengths)))
    assert list(lengths[served]) == sorted(lengths, reverse=True)
    if len(alone) % processes == 0:
        assert dealt(per_process) == alone
