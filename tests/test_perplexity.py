"""Perplexity is exp(total NLL / total tokens); carried state makes window size irrelevant."""

from __future__ import annotations

import math

import lightning.pytorch as L
import pytest
import torch
from torch import nn

from rnnlab.data.streams import BPTTWindows, TokenGroup, batchify, window_loader
from rnnlab.tasks import LanguageModelingTask

MODEL = {"cell": "lstm", "embedding_size": 8, "hidden_size": 8, "num_layers": 1}
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-3}


class ConstantModel(nn.Module):
    """Predicts the same distribution (default p(0) = 0.8, p(1) = 0.2) at every position."""

    def __init__(self, probs=(0.8, 0.2)):
        super().__init__()
        self.probs = torch.tensor(probs)

    def forward(self, tokens, state=None):
        return self.probs.log().expand(*tokens.shape, len(self.probs)), state


def validate(task, loader) -> dict[str, float]:
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    return {k: float(v) for k, v in trainer.validate(task, loader, verbose=False)[0].items()}


def test_perplexity_is_token_weighted_over_the_split():
    # one stream: windows of 4 and 1 targets; the 4 are all 0s, the last one is a 1
    tokens = torch.tensor([[0, 0, 0, 0, 0, 1]])
    task = LanguageModelingTask(vocab_size=2, model=MODEL, optimizer=ADAM)
    task.model = ConstantModel()
    metrics = validate(task, window_loader(BPTTWindows(tokens, bptt=4)))
    expected_nll = (4 * -math.log(0.8) - math.log(0.2)) / 5
    assert metrics["val/loss"] == pytest.approx(expected_nll, rel=1e-6)
    assert metrics["val/ppl"] == pytest.approx(math.exp(expected_nll), rel=1e-6)  # 1.6494
    # the mean of per-window perplexities, (1.25 + 5) / 2 = 3.125, is the classic mistake
    assert metrics["val/ppl"] < 2


def test_group_metrics_score_only_their_tokens():
    tokens = torch.tensor([[0, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0]])
    last_two = torch.zeros_like(tokens, dtype=torch.bool)
    last_two[:, -2:] = True  # targets 0,1 in row 0 and 0,0 in row 1
    optimal = torch.full(tokens.shape, 0.1)
    task = LanguageModelingTask(vocab_size=2, model=MODEL, optimizer=ADAM)
    task.model = ConstantModel()
    loader = window_loader(BPTTWindows(tokens, bptt=3, optimal_nll=optimal,
                                       groups={"tail": TokenGroup(last_two)}))
    metrics = validate(task, loader)
    tail_nll = (3 * -math.log(0.8) - math.log(0.2)) / 4
    assert metrics["val/tail/loss"] == pytest.approx(tail_nll, rel=1e-6)
    assert metrics["val/tail/excess_nll"] == pytest.approx(tail_nll - 0.1, rel=1e-6)
    all_nll = (7 * -math.log(0.8) + 3 * -math.log(0.2)) / 10  # targets: seven 0s, three 1s
    assert metrics["val/loss"] == pytest.approx(all_nll, rel=1e-6)
    assert metrics["val/ppl_gap"] == pytest.approx(math.exp(all_nll - 0.1) - 1, rel=1e-5)


def test_carried_state_makes_window_length_irrelevant():
    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (3, 97))
    task = LanguageModelingTask(vocab_size=20, model={**MODEL, "cell": "gru"}, optimizer=ADAM)
    short = validate(task, window_loader(BPTTWindows(tokens, bptt=7)))
    whole = validate(task, window_loader(BPTTWindows(tokens, bptt=500)))
    assert short["val/loss"] == pytest.approx(whole["val/loss"], rel=1e-5)
    no_carry = LanguageModelingTask(vocab_size=20, model={**MODEL, "cell": "gru"}, optimizer=ADAM,
                                    carry_state=False)
    no_carry.load_state_dict(task.state_dict())
    assert validate(no_carry, window_loader(BPTTWindows(tokens, bptt=7)))["val/loss"] != \
        pytest.approx(whole["val/loss"], rel=1e-5)


def test_windows_cover_every_target_once():
    tokens = torch.arange(2 * 11).view(2, 11)
    windows = BPTTWindows(tokens, bptt=4)
    assert len(windows) == 3
    targets = torch.cat([w["targets"] for w in windows], dim=1)
    inputs = torch.cat([w["inputs"] for w in windows], dim=1)
    assert torch.equal(targets, tokens[:, 1:]) and torch.equal(inputs, tokens[:, :-1])
    assert torch.equal(batchify(torch.arange(10), 3), torch.arange(9).view(3, 3))


def test_choice_nll_renormalises_over_the_group_candidates():
    # p = (0.5, 0.3, 0.2); the group's tokens are drawn from {1, 2}: p(1 | {1,2}) = 0.6, p(2 | {1,2}) = 0.4
    tokens = torch.tensor([[0, 1, 0, 2, 0, 1]])
    group = TokenGroup(mask=tokens >= 1, choices=torch.tensor([1, 2]), choice_optimal_nll=math.log(2))
    task = LanguageModelingTask(vocab_size=3, model=MODEL, optimizer=ADAM)
    task.model = ConstantModel((0.5, 0.3, 0.2))
    metrics = validate(task, window_loader(BPTTWindows(tokens, bptt=2, groups={"verb": group})))
    choice_nll = (2 * -math.log(0.6) - math.log(0.4)) / 3
    assert metrics["val/verb/choice_nll"] == pytest.approx(choice_nll, rel=1e-6)
    assert metrics["val/verb/choice_excess"] == pytest.approx(choice_nll - math.log(2), rel=1e-5)
    assert metrics["val/verb/loss"] == pytest.approx((2 * -math.log(0.3) - math.log(0.2)) / 3, rel=1e-6)


def test_class_accuracy_sums_probability_over_each_class():
    # p = (0.1, 0.35, 0.05, 0.25, 0.25) over tokens 0..4; candidates 1..4 in classes (0, 0, 1, 1):
    # class 0 gets 0.35 + 0.05 = 0.4 < class 1's 0.5, although token 1 alone is the likeliest
    tokens = torch.tensor([[0, 1, 0, 3, 0, 4, 0, 2]])
    group = TokenGroup(mask=tokens >= 1, choices=torch.tensor([1, 2, 3, 4]), choice_classes=torch.tensor([0, 0, 1, 1]))
    task = LanguageModelingTask(vocab_size=5, model=MODEL, optimizer=ADAM)
    task.model = ConstantModel((0.1, 0.35, 0.05, 0.25, 0.25))
    metrics = validate(task, window_loader(BPTTWindows(tokens, bptt=3, groups={"verb": group})))
    assert metrics["val/verb/class_acc"] == pytest.approx(2 / 4)  # targets 3 and 4 right, 1 and 2 wrong
