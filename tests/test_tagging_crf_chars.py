"""task=tagging's CRF output layer (task.crf) and character features (model.char_features): the CRF's log Z, NLL and
Viterbi path against brute-force enumeration over every tag sequence, padding that changes no loss, tag or logit,
the character vocabulary and padded character batches, the one-line errors, and a tiny CRF + char-LSTM fit whose
checkpoint tags the same once restored."""

from __future__ import annotations

import re

import lightning.pytorch as L
import pytest
import torch
from test_tagging import SMALL, brute_force

from rnnlab.data.conll import ConllDataModule
from rnnlab.data.synthetic_tagging import SyntheticTaggingDataModule
from rnnlab.data.tagging import pad_characters
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.models.tagger import RNNTagger
from rnnlab.nn.characters import CharBiLSTM, CharCNN
from rnnlab.nn.crf import CRF, PerWordSoftmax
from rnnlab.tasks import load
from rnnlab.tasks.tagging import TaggingTask

pytestmark = pytest.mark.usefixtures("one_thread")

ADAM = {"_target_": "torch.optim.Adam", "lr": 0.03}


def padded(tensor: torch.Tensor, lengths: torch.Tensor, width: int, fill: torch.Tensor) -> torch.Tensor:
    """tensor (B, T, ...) widened to `width` positions, every position past a row's length taken from `fill`."""
    wide = fill[:, :width].clone()
    for row, n in enumerate(lengths.tolist()):
        wide[row, :n] = tensor[row, :n]
    return wide


# --- the CRF against enumeration -----------------------------------------------------------------------------------
def test_the_crfs_nll_and_viterbi_path_equal_brute_force_and_padding_to_three_times_changes_neither():
    torch.manual_seed(0)
    K, lengths = 4, torch.tensor([4, 1, 3, 2, 4])
    crf = CRF(K).double()
    torch.nn.init.normal_(crf.transitions)
    emissions = torch.randn(5, 4, K, dtype=torch.float64)
    tags = torch.randint(0, K, (5, 4))
    nll, best = crf.nll(emissions, tags, lengths).detach(), crf.decode(emissions, lengths)
    for b, n in enumerate(lengths.tolist()):
        scores = brute_force(emissions[b], crf.transitions.detach(), n)
        log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0)
        assert float(nll[b]) == pytest.approx(float(log_z) - scores[tuple(tags[b, :n].tolist())], abs=1e-9)
        assert tuple(best[b, :n].tolist()) == max(scores, key=scores.get) and best[b, n:].eq(0).all()
    # padded to 3× the length with random scores and tags: the same losses and tags
    wide_emissions = padded(emissions, lengths, 12, 10 * torch.randn(5, 12, K, dtype=torch.float64))
    wide_tags = padded(tags, lengths, 12, torch.randint(-100, K, (5, 12)))
    torch.testing.assert_close(crf.nll(wide_emissions, wide_tags, lengths).detach(), nll, atol=1e-9, rtol=0)
    assert torch.equal(crf.decode(wide_emissions, lengths)[:, :4], best)
    # with zero transitions the CRF is the softmax per word: log Z factorises over the words
    torch.nn.init.zeros_(crf.transitions)
    torch.testing.assert_close(crf.nll(emissions, tags, lengths), PerWordSoftmax().nll(emissions, tags, lengths))


def test_the_crfs_gradient_is_the_expected_transition_counts_minus_the_gold_ones():
    # ∂(−log p(y | x)) / ∂A[i, j] = E_p[count of i → j] − (count of i → j in y): on one word, the start row's
    # gradient is p(y_1) − onehot(gold)
    crf = CRF(2).double()
    emissions = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    crf.nll(emissions, torch.tensor([[1]]), torch.tensor([1])).sum().backward()
    p = torch.softmax(emissions[0, 0], 0)
    torch.testing.assert_close(crf.transitions.grad[2, :2], p - torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(crf.transitions.grad[:2, 2], p - torch.tensor([0.0, 1.0], dtype=torch.float64))


# --- character features --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("char_features", ["cnn", "lstm"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_words_and_characters_never_changes_a_tag(char_features, cell, bidirectional):
    torch.manual_seed(0)
    model = RNNTagger(20, 4, num_chars=9, **{**SMALL, "cell": cell}, bidirectional=bidirectional,
                      char_features=char_features, char_dim=3, char_hidden=4, char_kernel=2).eval()
    lengths = torch.tensor([5, 2, 4])
    tokens = torch.randint(1, 20, (3, 5))
    word_lengths = torch.randint(1, 4, (3, 5))  # 1..3 characters
    chars = torch.randint(1, 9, (3, 5, 3)) * (torch.arange(3) < word_lengths[..., None])
    logits = model(tokens, lengths, chars)  # (3, 5, 4)
    # 3× as many words (random ids and characters past each sentence) and 3× as many characters per word
    wide_tokens = padded(tokens, lengths, 15, torch.randint(0, 20, (3, 15)))
    wide_chars = padded(torch.cat([chars, torch.zeros(3, 5, 6, dtype=torch.long)], -1), lengths, 15,
                        torch.randint(0, 9, (3, 15, 9)))
    wide = model(wide_tokens, lengths, wide_chars)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(wide[row, :n], logits[row, :n], atol=1e-6, rtol=0)
        alone = model(tokens[row:row + 1, :n], lengths[row:row + 1], chars[row:row + 1, :n])
        torch.testing.assert_close(alone[0], logits[row, :n], atol=1e-6, rtol=0)


def test_a_words_character_vector_depends_on_its_characters_only():
    torch.manual_seed(0)
    for encoder in (CharCNN(6, 3, 4, kernel=3), CharBiLSTM(6, 3, 4)):
        one = encoder(torch.tensor([[2, 3, 4]]))
        torch.testing.assert_close(encoder(torch.tensor([[2, 3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0, 0]]))[:1], one,
                                   atol=1e-6, rtol=0)
        assert not torch.allclose(encoder(torch.tensor([[2, 3, 5]])), one)  # the last character is read
        assert not torch.allclose(encoder(torch.tensor([[5, 3, 4]])), one)  # and the first


def test_the_character_vocabulary_and_padded_character_batches(tmp_path):
    (tmp_path / "train.txt").write_text("aba X\nb Y\n\nc Y\n", encoding="utf-8")
    (tmp_path / "dev.txt").write_text("cad X\n", encoding="utf-8")
    data = ConllDataModule(train_path=str(tmp_path / "train.txt"), val_path=str(tmp_path / "dev.txt"))
    data.setup()
    assert data.chars == ["<pad>", "<unk>", "a", "b", "c"]  # by falling count, ties in code-point order
    assert data.task_inputs["num_chars"] == 5 and data.tokenizer_state()["chars"] == data.chars
    assert data.bucket_dataset("val")[0]["chars"] == [[4, 2, 1]]  # "d": never in training, <unk>
    batch = data.collate([data.bucket_dataset("train")[k] for k in (0, 1)])
    assert batch["chars"].tolist() == [[[2, 3, 2], [3, 0, 0]], [[4, 0, 0], [0, 0, 0]]]
    assert pad_characters([[[1]], [[2, 3], [4]]]).shape == (2, 2, 2)


# --- the options ---------------------------------------------------------------------------------------------------
def test_bad_options_are_one_line_and_the_hmm_ignores_both():
    for model, task, message in [
        ({**SMALL, "char_features": "cnns"}, {}, "model.char_features='cnns' is invalid: choose one of none, cnn, "
                                                 "lstm"),
        ({**SMALL, "char_features": "cnn", "char_kernel": 0}, {}, "model.char_kernel=0 is invalid: must be a positive"),
        ({**SMALL, "char_features": "lstm"}, {"num_chars": 0}, "model.char_features=lstm reads characters, but this "
                                                               "data gives no character vocabulary (num_chars=0)"),
        (SMALL, {"crf": "yes"}, "task.crf='yes' is invalid: true (a CRF over the tags) or false (softmax per word)"),
    ]:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
            TaggingTask(**{"vocab_size": 9, "num_tags": 3, "pad_id": 0, "num_chars": 5, **task}, model=model,
                        optimizer=ADAM)
    hmm_model = {"family": "hmm", "char_features": "cnn", "char_dim": 8}
    assert registry.ignored_keys(hmm_model, "tagger") == ["char_dim", "char_features"]
    hmm_class = registry.task_class(TaggingTask, hmm_model)
    hmm = hmm_class(vocab_size=9, num_tags=3, pad_id=0, num_chars=5, model=hmm_model, optimizer=ADAM, crf=True)
    assert isinstance(hmm.output, PerWordSoftmax)  # the HMM is a chain already


def test_word_dropout_reads_training_words_as_unk_keeps_their_characters_and_leaves_evaluation_alone(caplog):
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(3))

        def forward(self, tokens, lengths, chars=None):
            seen.append((tokens.clone(), chars.clone()))
            return self.bias.expand(*tokens.shape, 3)

    task = TaggingTask(vocab_size=50, num_tags=3, pad_id=0, num_chars=5, model=SMALL, optimizer=ADAM, word_dropout=0.3)
    task.model = Recorder()
    tokens, chars = torch.randint(1, 50, (100, 40)), torch.randint(2, 5, (100, 40, 6))
    batch = {"tokens": tokens, "tokens_lengths": torch.full((100,), 40), "chars": chars,
             "tags": torch.zeros(100, 40, dtype=torch.long), "unseen": torch.zeros(100, 40, dtype=torch.bool)}
    torch.manual_seed(0)
    task.training_step(batch, 0)
    dropped = seen[-1][0].eq(0)  # <unk> is id 0
    assert dropped.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(seen[-1][0][~dropped], tokens[~dropped]) and torch.equal(batch["tokens"], tokens)  # a copy
    assert torch.equal(seen[-1][1], chars)  # a dropped word is still spelled
    task.scores(batch)
    assert torch.equal(seen[-1][0], tokens)  # evaluation reads every word
    with pytest.raises(ConfigError, match=r"^task.word_dropout=1 is invalid: a probability in \[0, 1\)"):
        TaggingTask(vocab_size=9, num_tags=3, pad_id=0, num_chars=5, model=SMALL, optimizer=ADAM, word_dropout=1)
    hmm_model = {"family": "hmm"}
    hmm_class = registry.task_class(TaggingTask, hmm_model)
    assert hmm_class.takes_tokenizer  # so train.py passes it the vocabulary (its tag names, for span F1)
    with caplog.at_level("INFO"):
        hmm_class(vocab_size=9, num_tags=3, pad_id=0, num_chars=5, model=hmm_model, optimizer=ADAM,
                  word_dropout=0.3).on_fit_start()
    assert "model=hmm counts the words themselves: task.word_dropout ignored" in caplog.text


# --- a tiny fit, and its checkpoint --------------------------------------------------------------------------------
def test_a_crf_char_lstm_tagger_learns_and_tags_the_same_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    data = SyntheticTaggingDataModule(train_examples=200, val_examples=60, test_examples=60, max_words=10,
                                      max_distance=0, tag_noise=0.0, batch_size=16)
    data.setup("fit")
    model = {**SMALL, "cell": "gru", "hidden_size": 16, "num_layers": 1, "bidirectional": True,
             "char_features": "lstm", "char_dim": 4, "char_hidden": 4}
    tagger = TaggingTask(**data.task_inputs, model=model, optimizer=ADAM, crf=True, num_examples=0,
                         tokenizer=data.tokenizer_state())
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(tagger, datamodule=data)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    assert metrics["val/acc"] > 0.9 and 0 < metrics["val/loss"] < 0.5  # the NLL of whole tag sequences, per word
    assert tagger.output.transitions.abs().sum() > 0  # learned
    assert (tmp_path / "transitions" / "val_epoch_002.png").stat().st_size > 0
    path = tmp_path / "crf.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    again = load(path, "crf.ckpt")
    assert isinstance(again.output, CRF) and again.hparams.tokenizer["chars"] == data.chars
    batch = data.collate([data.bucket_dataset("val")[k] for k in range(20)])
    tagger.eval()
    with torch.no_grad():
        scores = tagger.scores(batch)
        torch.testing.assert_close(again.scores(batch), scores, atol=0, rtol=0)
        assert torch.equal(again.predict(batch, again.scores(batch)), tagger.predict(batch, scores))
    scored = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path / "again").validate(again, datamodule=data, verbose=False)[0]
    assert scored["val/acc"] == pytest.approx(metrics["val/acc"]) and scored["val/loss"] == pytest.approx(
        metrics["val/loss"], rel=1e-5)


def test_a_checkpoint_written_before_crf_and_character_features_still_loads():
    torch.manual_seed(0)
    task = TaggingTask(vocab_size=9, num_tags=3, pad_id=0, num_chars=0, model=SMALL, optimizer=ADAM).eval()
    old = {key: value for key, value in task.hparams.items()
           if key not in ("num_chars", "crf", "num_intents", "intent", "intent_weight")}
    again = TaggingTask.from_checkpoint_dict({"hyper_parameters": old, "state_dict": task.state_dict()}, "old.ckpt")
    batch = {"tokens": torch.randint(0, 9, (2, 4)), "tokens_lengths": torch.tensor([4, 2])}
    with torch.no_grad():
        assert torch.equal(again.scores(batch), task.scores(batch)) and isinstance(again.output, PerWordSoftmax)
