"""model=ngram through train(): counted instead of trained, then scored and tracked like any language model."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, TINY
from hydra.utils import instantiate

from rnnlab.errors import ConfigError
from rnnlab.generation import load_checkpoint
from rnnlab.models.ngram import NGramLanguageModel, NGramLM
from rnnlab.training import train

TINY_DATA = [override for override in TINY if not override.startswith("model.")]  # the n-gram has no sizes


def test_ngram_on_synthetic_lm_is_scored_on_the_rnn_tokens_against_the_optimum(make_cfg, tmp_path):
    cfg = make_cfg("model=ngram", *TINY_DATA, tiny=False)
    metrics = train(cfg)

    # the same numbers as the n-gram counted and scored by hand on the split's rows
    data = instantiate(cfg.data)
    data.setup()
    by_hand = NGramLM(data.vocab_size, order=5).fit(data.splits["train"].tokens)
    for stage, split in (("val", "val"), ("test", "test")):
        tokens = data.splits[split].tokens
        assert metrics[f"{stage}/loss"] == pytest.approx(by_hand.nll(tokens).mean(), rel=1e-5)
        assert metrics[f"{stage}/ppl"] == pytest.approx(math.exp(metrics[f"{stage}/loss"]), rel=1e-5)
        assert metrics[f"{stage}/ppl_optimal"] == pytest.approx(math.exp(data.optimal_nll(split)), rel=1e-5)
        # a 4-token context cannot reach the subject across up to 24 distractors: above the optimum
        assert metrics[f"{stage}/ppl"] > metrics[f"{stage}/ppl_optimal"]
        assert metrics[f"{stage}/ppl_gap"] == pytest.approx(
            metrics[f"{stage}/ppl"] / metrics[f"{stage}/ppl_optimal"] - 1, rel=1e-4)
        assert metrics[f"{stage}/agreement/choice_excess"] > 0.5  # ≈ log 4: the subject is forgotten
    assert metrics["train/loss"] == pytest.approx(by_hand.nll(data.splits["train"].tokens).mean(), rel=1e-5)

    # tracked like any run: experiment, tags, params, one validation (counting twice changes nothing), artifacts
    client = mlflow.MlflowClient(cfg.logger.mlflow.tracking_uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert client.get_experiment(run.info.experiment_id).name == "lm-synthetic_lm"
    assert run.data.tags["model"] == "ngram" and run.info.run_name == "ngram"
    assert run.data.params["model.family"] == "ngram" and run.data.params["model.order"] == "5"
    assert run.data.metrics["val/ppl"] == pytest.approx(metrics["val/ppl"], rel=1e-6)
    assert {"test/ppl", "test/ppl_gap", "fit_seconds", "fit_cpu_seconds", "train/loss"} <= set(run.data.metrics)
    assert 0 < run.data.metrics["fit_cpu_seconds"] < 2 * run.data.metrics["fit_seconds"] + 1  # this process's CPU
    assert "train/grad_norm" not in run.data.metrics  # no gradient step was taken
    assert len(client.get_metric_history(run.info.run_id, "val/loss")) == 1
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "loss_curve.png", "samples"} <= artifacts

    # the checkpoint holds the counts: loaded alone, it is the fitted model
    (best,) = (tmp_path / "run" / "checkpoints").glob("epoch*.ckpt")
    model, tokenizer = load_checkpoint(str(best))
    context = data.splits["val"].tokens[0, :4]
    assert model.ngram.distribution(context) == pytest.approx(by_hand.distribution(context), rel=1e-12)
    assert tokenizer.vocab == data.vocab


def test_ngram_order_5_on_tinyshakespeare(make_cfg):
    cfg = make_cfg("model=ngram", "data=tinyshakespeare", f"data.root={SHARED_DATA / 'tinyshakespeare'}",
                   "data.download=false", "data.cache_dir=null", "logger=none", "callbacks.samples.num_samples=1",
                   tiny=False)
    metrics = train(cfg)
    assert metrics["val/loss"] < 1.7  # nats per character; 1.56 measured
    assert metrics["val/bpc"] == pytest.approx(metrics["val/loss"] / math.log(2), rel=1e-6)
    assert metrics["train/loss"] < metrics["val/loss"]  # order 5 partly memorises what it counted


def test_bad_ngram_settings_stop_with_the_key(make_cfg):
    with pytest.raises(ConfigError, match="model.order=0 is invalid"):
        train(make_cfg("model=ngram", "model.order=0", *TINY_DATA, "logger=none", tiny=False))
    with pytest.raises(ConfigError, match="model.ordr is not an option here; valid: order, smoothing"):
        train(make_cfg("model=ngram", "+model.ordr=3", *TINY_DATA, "logger=none", tiny=False))


def test_a_preset_that_sizes_networks_runs_the_ngram_beside_them(make_cfg):
    """experiment=quick sets model.embedding_size/hidden_size/num_layers for the recurrent models: ignored here."""
    cfg = make_cfg("model=ngram", "experiment=quick", "logger=none", "callbacks=none", tiny=False)
    assert cfg.model.hidden_size == 64
    metrics = train(cfg)
    assert metrics["val/ppl"] > metrics["val/ppl_optimal"]


def test_unfitted_ngram_is_uniform():
    """Before counting (Lightning's sanity check runs validation first) every token is equally likely."""
    logits, state = NGramLanguageModel(7, order=3)(torch.zeros(2, 4, dtype=torch.long))
    assert logits.shape == (2, 4, 7) and np.allclose(logits.softmax(-1).numpy(), 1 / 7)
    assert state.shape == (2, 1)  # the last n − 2 tokens


@pytest.mark.parametrize(("order", "smoothing"), [(1, "kneser_ney"), (3, "add_k"), (5, "kneser_ney")])
def test_logits_are_the_ngram_distributions_and_windows_read_as_one_stream(order, smoothing):
    """What task=lm scores: log p(· | x_≤t) at every position, the state carrying context across windows."""
    rng = np.random.default_rng(order)
    train_rows = torch.from_numpy(rng.integers(0, 9, size=(4, 300)))
    model = NGramLanguageModel(9, order, smoothing, k=0.5).fit(train_rows)
    rows = torch.from_numpy(rng.integers(0, 9, size=(3, 25)))
    whole, _ = model(rows)
    for b, t in ((0, 0), (1, 7), (2, 24)):
        context = rows[b, max(0, t - order + 2):t + 1] if order > 1 else rows[b, :0]
        assert whole[b, t].double().exp().numpy() == pytest.approx(model.ngram.distribution(context), rel=1e-6)
    windows, state = [], None
    for start in range(0, 25, 10):  # windows of 10, 10 and 5 columns, as BPTTWindows serves them
        logits, state = model(rows[:, start:start + 10], state)
        windows.append(logits)
    assert torch.equal(torch.cat(windows, dim=1), whole)
    assert state.shape == (3, max(order - 2, 0))
