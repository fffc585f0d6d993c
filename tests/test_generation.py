"""Sampling (rnnlab.generation), generate.py from a trained checkpoint, and the samples written during training."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SHARED_DATA, run_owned, tracked_fit
from hydra.utils import instantiate
from torch import nn

from rnnlab.data.synthetic_lm import SymbolTokenizer
from rnnlab.data.text import TextTokenizer
from rnnlab.errors import ConfigError
from rnnlab.generation import encode_prompt, load_checkpoint, sample, write
from rnnlab.models import RNNLanguageModel


class BigramTable(nn.Module):
    """A language model with the task's interface whose next-token logits depend on the last token only."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(logits)  # (V, V): row = current token

    def forward(self, tokens, state=None):
        return self.table[tokens], None


def random_lm(seed: int = 0, vocab_size: int = 30) -> RNNLanguageModel:
    torch.manual_seed(seed)
    model = RNNLanguageModel(vocab_size, "lstm", embedding_size=16, hidden_size=32, num_layers=1)
    with torch.no_grad():  # larger output weights than the init: distributions far from uniform
        model.decoder.weight.mul_(20)
    return model


def draw(model, seed: int | None = None, **settings) -> list[int]:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return sample(model, [1, 2, 3], settings.pop("max_tokens", 40), generator=generator, **settings)


def test_a_fixed_seed_gives_the_same_sample_and_another_seed_another():
    model = random_lm()
    first = draw(model, seed=7)
    assert len(first) == 40 and all(0 <= t < 30 for t in first)
    assert draw(model, seed=7) == first
    assert draw(model, seed=8) != first  # 40 draws from distributions over 30 tokens


def test_temperature_zero_top_k_one_and_greedy_are_the_argmax_at_every_step():
    model = random_lm(1)
    greedy = draw(model, greedy=True)
    # read as one sequence, the model's argmax after each prefix is the next generated token
    tokens = torch.tensor([[1, 2, 3] + greedy])
    logits, _ = model.eval()(tokens)
    assert logits[0, 2:-1].argmax(-1).tolist() == greedy
    assert draw(model, seed=3, temperature=0) == greedy
    assert draw(model, seed=3, temperature=1e-4) == greedy  # the limit temperature → 0, drawn
    assert draw(model, seed=3, temperature=1.0, top_k=1) == greedy
    assert draw(model, seed=3, temperature=1.0, top_p=1e-9) == greedy  # a nucleus of one token
    assert draw(model, seed=3, temperature=1.0) != greedy  # sampling by default, not argmax


def test_unk_resample_never_draws_unk_and_keep_does():
    unk = 0
    logits = torch.zeros(5, 5)
    logits[:, unk] = 3.0  # <unk> is the most probable next token everywhere (p ≈ 0.83)
    model = BigramTable(logits)
    kept = draw(model, seed=0, max_tokens=300, unk_policy="keep", unk_id=unk)
    assert kept.count(unk) > 200
    resampled = draw(model, seed=0, max_tokens=300, unk_policy="resample", unk_id=unk)
    assert unk not in resampled and len(resampled) == 300
    assert set(resampled) == {1, 2, 3, 4}  # the rest, uniform among themselves
    assert unk not in draw(model, greedy=True, unk_policy="resample", unk_id=unk)


def test_stops_at_eos_and_otherwise_at_max_tokens():
    eos = 4
    logits = torch.zeros(5, 5)
    logits[:, eos] = 1.0
    model = BigramTable(logits)
    lengths = []
    for seed in range(20):
        drawn = draw(model, seed=seed, max_tokens=200, eos_id=eos)
        assert drawn.count(eos) == 1 and drawn[-1] == eos  # ends with <eos>, which is kept
        lengths.append(len(drawn))
    assert max(lengths) < 200 and min(lengths) >= 1
    assert len(draw(model, seed=0, max_tokens=200)) == 200  # a char model has no <eos>: the limit ends it
    assert draw(model, greedy=True, eos_id=eos) == [eos]


def test_bad_settings_name_the_key():
    model = random_lm()
    for settings, message in (({"temperature": -1}, "temperature=-1 is invalid"), ({"top_p": 0}, "top_p=0 is invalid"),
                              ({"top_k": -2}, "top_k=-2 is invalid"), ({"unk_policy": "drop"}, "unk='drop' is invalid"),
                              ({"max_tokens": -1}, "max_tokens=-1 is invalid")):
        with pytest.raises(ConfigError, match=message):
            draw(model, **settings)


def test_prompts_are_read_with_unk_or_refused_and_an_empty_one_starts_a_line():
    chars = TextTokenizer("char", ["<unk>", "\n", " ", "A", "B"])
    read, shown, unknown = encode_prompt(chars, "AB é")
    assert read == shown == [3, 4, 2, 0] and unknown == ["é"]
    assert encode_prompt(chars, "") == ([1], [], [])  # after a line break; the "\n" is not part of the text
    with pytest.raises(ConfigError, match="no line break to start from"):
        encode_prompt(TextTokenizer("char", ["<unk>", "A"]), "")
    words = TextTokenizer("word", ["<unk>", "<eos>", "the", "cat"])
    assert encode_prompt(words, "the dog") == ([2, 0], [2, 0], ["dog"])
    assert encode_prompt(words, "") == ([1], [], [])  # after <eos>
    symbols = SymbolTokenizer(["subj0_0", "w0", "verb0_0", "."])
    assert encode_prompt(symbols, "subj0_0 w0") == ([0, 1], [0, 1], [])
    assert encode_prompt(symbols, "") == ([3], [], [])  # after "."
    with pytest.raises(ConfigError, match="'cat' is not in the model's vocabulary, which has no <unk>"):
        encode_prompt(symbols, "subj0_0 cat")


# --- end to end: a tiny character model of tinyshakespeare ---------------------------------------
TINY_SHAKESPEARE = [
    "data=tinyshakespeare", f"data.root={SHARED_DATA / 'tinyshakespeare'}", "data.download=false",
    "data.cache_dir=null", "data.batch_size=16", "data.eval_batch_size=8", "data.bptt=64",
    "model.embedding_size=32", "model.hidden_size=64", "model.num_layers=1", "trainer.max_epochs=1",
    "+trainer.limit_train_batches=40", "+trainer.limit_val_batches=4", "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=5", "+trainer.enable_model_summary=false", "callbacks.samples.max_tokens=60",
]


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory):
    """One tiny tracked fit: its metrics, run id, tracking URI and best checkpoint."""
    run = tracked_fit(TINY_SHAKESPEARE, tmp_path_factory.mktemp("shakespeare"))
    return {**run, "best": next((run["dir"] / "checkpoints").glob("epoch*.ckpt"))}


def generate(*overrides: str, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return run_owned([sys.executable, "generate.py", *overrides], cwd=ROOT, env=env, timeout=120)


def test_char_level_run_reports_bits_per_character(shakespeare_run):
    metrics = shakespeare_run["metrics"]
    assert metrics["val/bpc"] == pytest.approx(metrics["val/loss"] / math.log(2), rel=1e-5)
    assert metrics["val/loss"] < math.log(66)  # it learned something in 40 steps


def test_generate_from_the_mlflow_run_id_and_from_a_checkpoint_path(shakespeare_run):
    by_run_id = generate(f"ckpt={shakespeare_run['run_id']}", "prompt=ROMEO:", "max_tokens=80", "seed=5",
                         "temperature=0.8", "unk=resample", uri=shakespeare_run["uri"])
    assert by_run_id.returncode == 0, by_run_id.stderr
    text = by_run_id.stdout.removesuffix("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 80  # 80 characters drawn: no <eos>, <unk>
    # the run's best checkpoint is this file: read from its path, the same seed writes the same text
    model, tokenizer = load_checkpoint(str(shakespeare_run["best"]))
    assert tokenizer.level == "char" and tokenizer.vocab_size == 66
    by_path = write(model, tokenizer, "ROMEO:", 80, temperature=0.8, unk_policy="resample",
                    generator=torch.Generator().manual_seed(5))
    assert by_path == text


def test_generate_refuses_bad_input_in_one_line(shakespeare_run, tmp_path):
    missing = generate(f"ckpt={tmp_path / 'nope.ckpt'}", uri=shakespeare_run["uri"])
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: ckpt=") and "no such file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="no such run in the MLflow store"):
        load_checkpoint("0" * 32, shakespeare_run["uri"])
    with pytest.raises(ConfigError, match="no MLflow store at"):
        load_checkpoint("0" * 32, f"sqlite:///{tmp_path}/absent.db")
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ConfigError, match="is not a checkpoint torch can read"):
        load_checkpoint(str(not_a_checkpoint))


def test_each_validation_writes_samples_into_mlflow(shakespeare_run):
    client, run_id = shakespeare_run["client"], shakespeare_run["run_id"]
    assert [a.path for a in client.list_artifacts(run_id, "samples")] == ["samples/epoch_000.txt"]
    text = Path(client.download_artifacts(run_id, "samples/epoch_000.txt")).read_text()
    assert text.startswith("epoch 0, step 40: 3 samples of at most 60 tokens")
    assert text.count("--- sample ") == 3
    assert (shakespeare_run["dir"] / "samples" / "epoch_000.txt").read_text() == text


def test_samples_without_a_logger_go_to_the_run_directory(make_cfg, tmp_path):
    from rnnlab.training import train

    cfg = make_cfg("logger=none", "callbacks.samples.num_samples=2")
    train(cfg)
    text = (tmp_path / "run" / "samples" / "epoch_000.txt").read_text()
    assert text.count("--- sample ") == 2
    # synthetic_lm writes its own words; a sample ends at its first "." (the corpus's <eos>), if one is drawn
    vocab = set(instantiate(cfg.data).vocab)
    for sample_text in text.split("--- sample ")[1:]:
        words = sample_text.split("\n", 1)[1].split()
        assert words and set(words) <= vocab
        assert "." not in words[:-1]
