"""Property-based round trips of batching and padding: nothing lost, nothing duplicated, nothing invented."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data.batching import LengthBucketSampler
from rnnlab.data.streams import BPTTWindows, batchify
from rnnlab.data.translation import BOS_ID, EOS_ID, PAD_ID, PairDataset, collate_pairs
from rnnlab.errors import ConfigError
from rnnlab.nn.padding import real_tokens, reverse_padded

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(st.integers(4, 300), st.integers(1, 8), st.integers(1, 40), st.integers(1, 4))
def test_bptt_windows_concatenate_to_the_streams_and_shards_to_the_rows(length, streams, bptt, parts):
    stream = torch.arange(length)
    if length // streams < 2:
        return
    rows = batchify(stream, streams)
    assert torch.equal(rows.flatten(), stream[: rows.numel()])  # contiguous rows, only the tail dropped
    windows = BPTTWindows(rows, bptt)
    inputs = torch.cat([windows[i]["inputs"] for i in range(len(windows))], dim=1)
    targets = torch.cat([windows[i]["targets"] for i in range(len(windows))], dim=1)
    assert torch.equal(inputs, rows[:, :-1]) and torch.equal(targets, rows[:, 1:])  # each target is the next token
    assert all(windows[i]["inputs"].size(1) <= bptt for i in range(len(windows)))
    if streams % parts == 0:  # DDP: the shards' rows, stacked, are the rows; every shard has the same windows
        shards = [windows.shard(rank, parts) for rank in range(parts)]
        assert {len(s) for s in shards} == {len(windows)}
        assert torch.equal(torch.cat([s[0]["inputs"] for s in shards]), windows[0]["inputs"])


PAIRS = st.lists(st.tuples(st.lists(st.integers(4, 50), min_size=1, max_size=12),
                           st.lists(st.integers(4, 50), min_size=0, max_size=12)), min_size=1, max_size=20)


@SETTINGS
@given(PAIRS)
def test_collate_pads_and_unpads_to_the_same_pairs(pairs):
    batch = collate_pairs([(i, source, target) for i, (source, target) in enumerate(pairs)])
    assert batch["index"].tolist() == list(range(len(pairs)))
    for row, (source, target) in enumerate(pairs):
        n = int(batch["src_lengths"][row])
        assert batch["src"][row, :n].tolist() == source and set(batch["src"][row, n:].tolist()) <= {PAD_ID}
        m = len(target) + 1
        assert batch["tgt_in"][row, :m].tolist() == [BOS_ID, *target]
        assert batch["tgt_out"][row, :m].tolist() == [*target, EOS_ID]  # teacher forcing: shifted by one
        assert set(batch["tgt_in"][row, m:].tolist()) | set(batch["tgt_out"][row, m:].tolist()) <= {PAD_ID}


@SETTINGS
@given(PAIRS, st.integers(1, 6), st.one_of(st.none(), st.integers(13, 60)), st.booleans(), st.integers(1, 3),
       st.integers(0, 10))
def test_length_buckets_use_every_pair_once(pairs, batch_size, max_tokens, shuffle, parts, seed):
    """Evaluation: every pair exactly once over all processes. Training: once at most, the same batch count
    on every process, and only the last few batches (fewer than the processes) left out."""
    dataset = PairDataset([s for s, _ in pairs], [t for _, t in pairs])
    lengths = dataset.padded_lengths()

    class Order(torch.utils.data.Sampler):
        def __init__(self):
            self.seed, self.epoch = seed, 0

        def __iter__(self):
            return iter(np.random.default_rng(seed).permutation(len(pairs)).tolist())

    samplers = [LengthBucketSampler(Order(), batch_size, lengths=lengths, max_tokens=max_tokens, shuffle=shuffle,
                                    num_replicas=parts, rank=rank) for rank in range(parts)]
    try:
        shares = [sampler.batches() for sampler in samplers]
    except ConfigError:  # too few pairs to give each process a batch: refused, with the fix in the message
        assert parts > 1
        return
    assert len({len(share) for share in shares}) == 1
    used = [i for share in shares for batch in share for i in batch]
    assert len(used) == len(set(used))
    for share in shares:
        for batch in share:
            assert len(batch) <= batch_size
            if max_tokens is not None and len(batch) > 1:
                assert len(batch) * max(lengths[batch]) <= max_tokens
    if not shuffle:
        assert sorted(used) == list(range(len(pairs)))


@SETTINGS
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_reversing_within_lengths_twice_is_the_identity_and_keeps_padding(lengths, seed):
    torch.manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, 3)
    lengths_t = torch.tensor(lengths)
    once = reverse_padded(x, lengths_t)
    assert torch.equal(reverse_padded(once, lengths_t), x)
    for row, n in enumerate(lengths):
        assert torch.equal(once[row, :n], x[row, :n].flip(0))  # each sequence reversed within its own length
        assert torch.equal(once[row, n:], x[row, n:])  # the padding stays where it was


@SETTINGS
@given(st.lists(st.integers(0, 9), min_size=1, max_size=6), st.integers(0, 3))
def test_real_tokens_marks_exactly_each_sequences_first_length_positions(lengths, extra):
    T = max(lengths) + extra
    mask = real_tokens(torch.tensor(lengths, dtype=torch.int32), T)
    assert mask.dtype == torch.bool and mask.shape == (len(lengths), T)
    assert mask.tolist() == [[t < n for t in range(T)] for n in lengths]
