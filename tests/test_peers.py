"""experiments/peers' pure parts: the recipe mapped to both sides of each comparison, the peers' log lines, the
shared subwords and the allocator settings. Nothing here needs the peers' virtualenvs or runs a benchmark."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import ROOT, compose_train

spec = importlib.util.spec_from_file_location("peers", ROOT / "experiments/peers/peers.py")
peers = importlib.util.module_from_spec(spec)
sys.modules["peers"] = peers
spec.loader.exec_module(peers)

EXAMPLE_MAIN = ROOT.parent / "shared/peers/pytorch_examples_word_language_model/main.py"


def test_lm_overrides_compose_to_the_examples_model_and_training(tmp_path):
    corpus = tmp_path / "corpus"
    cfg = compose_train(peers.rnnlab_lm_overrides(corpus), tmp_path)
    example = peers.EXAMPLE_DEFAULTS
    assert (cfg.model.cell, cfg.model.embedding_size, cfg.model.hidden_size, cfg.model.num_layers) == \
        ("lstm", example["emsize"], example["nhid"], example["nlayers"])
    assert (cfg.model.dropout, cfg.model.tie_weights, cfg.model.locked_dropout) == (example["dropout"], False, False)
    assert (cfg.data.batch_size, cfg.data.bptt, cfg.data.eval_batch_size) == (20, 35, 10)
    assert cfg.data.train_path == str(corpus / "train.txt") and cfg.data.test_path == str(corpus / "test.txt")
    assert cfg.optimizer._target_ == "torch.optim.SGD" and (cfg.optimizer.lr, cfg.optimizer.momentum) == (20.0, 0.0)
    assert (cfg.trainer.gradient_clip_val, cfg.trainer.gradient_clip_algorithm) == (0.25, "norm")
    # main.py: lr /= 4 after an epoch whose validation loss is not the best so far
    assert cfg.scheduler.scheduler.factor == 0.25 and cfg.scheduler.scheduler.patience == 0
    assert (cfg.monitor.metric, cfg.scheduler.interval, cfg.trainer.max_epochs, cfg.seed) == ("val/loss", "epoch", 40,
                                                                                               1111)


@pytest.mark.skipif(not EXAMPLE_MAIN.is_file(), reason="the example is not in ../shared/peers")
def test_example_defaults_are_main_pys_argparse_defaults():
    source = EXAMPLE_MAIN.read_text(encoding="utf-8")
    for flag, key in (("emsize", "emsize"), ("nhid", "nhid"), ("nlayers", "nlayers"), ("lr", "lr"), ("clip", "clip"),
                      ("epochs", "epochs"), ("batch_size", "batch_size"), ("bptt", "bptt"), ("dropout", "dropout"),
                      ("seed", "seed")):
        default = source.split(f"'--{flag}'", 1)[1].split("default=", 1)[1].split(",", 1)[0]
        assert float(default) == peers.EXAMPLE_DEFAULTS[key], flag
    assert "eval_batch_size = 10" in source and "'--tied', action='store_true'" in source


def test_translation_overrides_build_the_model_joeynmt_is_configured_with(tmp_path):
    cfg = compose_train(peers.rnnlab_translation_overrides(tmp_path, input_feeding=True), tmp_path)
    joey = peers.joeynmt_config(tmp_path / "bpe", tmp_path / "model", input_feeding=True)
    encoder, decoder = joey["model"]["encoder"], joey["model"]["decoder"]
    assert cfg.data._target_.endswith("Multi30kDataModule") and cfg.data.download is False
    assert (cfg.model.cell, encoder["rnn_type"], decoder["rnn_type"]) == ("gru", "gru", "gru")
    assert cfg.model.encoder_hidden_size == encoder["hidden_size"] == 256 and encoder["bidirectional"]
    assert cfg.model.bidirectional and cfg.model.num_layers == encoder["num_layers"] == decoder["num_layers"] == 1
    assert cfg.model.hidden_size == decoder["hidden_size"] == 256
    assert cfg.model.embedding_size == encoder["embeddings"]["embedding_dim"] == decoder["embeddings"]["embedding_dim"]
    assert cfg.attention.type == "luong_general" and decoder["attention"] == "luong"  # luong = score h_t^T W_a h_e
    assert cfg.model.input_feeding is True and decoder["input_feeding"] is True
    assert cfg.model.tie_weights and joey["model"]["tied_softmax"] and not joey["model"]["tied_embeddings"]
    assert cfg.model.dropout == decoder["hidden_dropout"] == decoder["embeddings"]["dropout"] == 0.3
    assert cfg.task.label_smoothing == joey["training"]["label_smoothing"] == 0.1
    assert cfg.data.batch_size == joey["training"]["batch_size"] == 64 and joey["training"]["batch_type"] == "sentence"
    assert cfg.optimizer.lr == joey["training"]["learning_rate"] and cfg.scheduler == {}
    assert joey["training"]["scheduling"] == "exponential" and joey["training"]["decrease_factor"] == 1.0  # constant
    assert cfg.trainer.gradient_clip_val == joey["training"]["clip_grad_norm"] == 0.5
    testing = joey["testing"]
    assert (cfg.task.beam_size, cfg.task.length_penalty) == (testing["beam_size"], testing["beam_alpha"]) == (5, 1.0)
    assert joey["data"]["src"]["voc_file"] == joey["data"]["trg"]["voc_file"] == str(tmp_path / "bpe/vocab.txt")
    assert joey["data"]["src"]["level"] == "word" and joey["data"]["dataset_type"] == "plain"
    assert not peers.joeynmt_config(tmp_path, tmp_path, input_feeding=False)["model"]["decoder"]["input_feeding"]
    # JoeyNMT refuses a validation_freq that logging_freq does not divide (the throughput runs log every N steps)
    training = peers.joeynmt_config(tmp_path, tmp_path, input_feeding=True, updates=60, logging_freq=30)["training"]
    assert training["validation_freq"] % 30 == 0 and training["validation_freq"] > 60
    assert "model.input_feeding=false" in peers.rnnlab_translation_overrides(tmp_path, input_feeding=False)


def test_rnnlab_translation_model_has_joeynmts_parameter_count_up_to_the_bias_placement(tmp_path):
    """JoeyNMT logs `Total params: 5936128` for its side (measured); rnnlab's output layer has a bias (+8000) and
    its W_c none (−256): the same network otherwise."""
    from omegaconf import OmegaConf

    from rnnlab.models import registry

    cfg = compose_train(peers.rnnlab_translation_overrides(tmp_path, input_feeding=True), tmp_path)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    network = registry.build(model, "seq2seq", src_vocab_size=8000, tgt_vocab_size=8000, pad_id=0, bos_id=1, eos_id=2)
    assert sum(p.numel() for p in network.parameters()) == 5_936_128 + 8000 - 256
    # both start their embeddings from U(-0.1, 0.1) (JoeyNMT's default N(0, 0.01²) learns several times slower)
    joey = peers.joeynmt_config(tmp_path, tmp_path, input_feeding=True)["model"]
    assert (joey["embed_initializer"], joey["embed_init_weight"]) == ("uniform", 0.1)
    for embedding in (network.src_embedding.weight, network.tgt_embedding.weight):
        assert embedding.abs().max() <= 0.1 and abs(embedding.std().item() - 0.1 / 3**0.5) < 0.002


def test_pieces_round_trip_through_joeynmts_word_split_and_detokenize_like_rnnlab():
    from tokenizers import Tokenizer

    from rnnlab.data.subwords import Subwords, SubwordSettings

    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee!", "A man rides a bike, fast."] * 20
    subwords = Subwords.train(sentences, sentences, SubwordSettings(vocab_size=60, min_frequency=1))
    tokenizer: Tokenizer = subwords.source
    for sentence in sentences[:3]:
        line = peers.pieces_line(tokenizer.encode(sentence).tokens)
        assert line.split(" ") == tokenizer.encode(sentence).tokens  # what JoeyNMT's word level reads
        assert peers.detokenize(line) == sentence == tokenizer.decode(tokenizer.encode(sentence).ids)
    with pytest.raises(ValueError, match="holds a space"):
        peers.pieces_line(["▁a", "b c"])


def test_lm_corpus_maps_unseen_evaluation_words_to_unk_so_both_vocabularies_agree():
    splits = peers.lm_corpus(["A man's hat.", "Two dogs run."], {"valid": ["A cat's hat!"]})
    assert splits == {"train": ["A man ' s hat .", "Two dogs run ."], "valid": ["A <unk> ' s hat <unk>"]}


def test_joeynmt_log_lines_give_step_and_tokens_per_second():
    log = ("2026-12-06 13:24:37,103 - INFO - joeynmt.training - Epoch   1, Step:        5, Batch Loss:     6.902906, "
           "Batch Acc: 0.078256, Tokens per Sec:      731, Lr: 0.002000\n"
           "2026-12-06 13:24:43,248 - INFO - joeynmt.training - Epoch   1, Step:       10, Batch Loss:     5.470966, "
           "Batch Acc: 0.070973, Tokens per Sec:      791, Lr: 0.002000\n"
           "2026-12-06 13:24:49,285 - INFO - joeynmt.training - Training ended since maximum num. of updates 10\n")
    assert peers.joeynmt_rates(log) == [(5, 731.0), (10, 791.0)]


def test_example_log_lines_give_tokens_per_second_and_epoch_perplexities():
    log = ("| epoch   1 |    20/  585 batches | lr 20.00 | ms/batch 250.00 | loss  7.10 | ppl  1211.97\n"
           "| epoch   1 |    40/  585 batches | lr 20.00 | ms/batch 233.33 | loss  6.20 | ppl   492.75\n"
           "| end of epoch   1 | time: 150.02s | valid loss  5.12 | valid ppl   167.34\n")
    assert peers.example_rates(log, tokens_per_batch=700) == [(20, 2800.0), (40, pytest.approx(3000.0, rel=1e-4))]
    assert peers.example_valid_ppl(log) == [(1, 167.34)]


def test_rnnlab_valid_ppl_reads_the_csv_loggers_epoch_rows():
    metrics = "epoch,step,train/loss,val/ppl\n0,9,5.0,\n0,19,,310.5\n1,39,,140.25\n"
    assert peers.rnnlab_valid_ppl(metrics) == [(1, 310.5), (2, 140.25)]


def test_allocator_env_finds_a_library_or_says_none(tmp_path):
    assert peers.allocator_env("glibc") == {}
    assert peers.allocator_env("glibc_tuned")["MALLOC_MMAP_THRESHOLD_"] == "4294967296"
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert peers.allocator_env("jemalloc", [tmp_path / "absent", tmp_path]) == {
        "LD_PRELOAD": str(tmp_path / "libjemalloc.so.2")}
    assert peers.allocator_env("tcmalloc", [tmp_path]) is None
    with pytest.raises(ValueError, match="unknown allocator 'mimalloc'"):
        peers.allocator_env("mimalloc")


def test_only_the_retain_setting_lets_rnnlab_set_malloc_itself():
    # under every other setting rnnlab runs with allocator=system, so glibc's default is glibc's default and an
    # environment's choice (tunables, LD_PRELOAD) is the only one in effect
    assert peers.allocator_env("retain") == {}
    assert peers.rnnlab_allocator("retain") == "retain"
    assert {peers.rnnlab_allocator(name) for name in peers.ALLOCATORS if name != "retain"} == {"system"}


def test_ratio_summary_gives_medians_and_pair_ratios():
    summary = peers.ratio_summary([300.0, 200.0, 250.0], [100.0, 200.0, 125.0])
    assert (summary["median_ours"], summary["median_theirs"], summary["ratio"]) == (250.0, 125.0, 2.0)
    assert summary["pairs"] == [3.0, 1.0, 2.0] and summary["pair_ratio_median"] == 2.0


def test_equal_time_points_compare_each_runs_latest_checkpoint_at_every_moment():
    # ours checkpoints at 2 and 6 minutes, theirs at 4 and 8: before its first checkpoint a run has no model (0)
    ours, theirs = [(120.0, 10.0), (360.0, 30.0)], [(480.0, 25.0), (240.0, 20.0)]
    curve = peers.equal_time_points(ours, theirs)
    assert [(r["minutes"], r["ours"], r["theirs"]) for r in curve["points"]] == [
        (2.0, 10.0, 0.0), (4.0, 10.0, 20.0), (6.0, 30.0, 20.0), (8.0, 30.0, 25.0)]
    assert curve["ours_at_least_theirs_everywhere"] is False and curve["worst_margin"] == -10.0
    ahead = peers.equal_time_points([(60.0, 21.0), *ours[1:]], theirs)
    assert ahead["ours_at_least_theirs_everywhere"] is True and ahead["worst_margin"] == 1.0
