"""task=translation: scores, teacher-forced ppl, decoding through the task, a tracked run, translate.py, eval.py."""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
from conftest import CONF, ROOT, compose_train, run_owned, tracked_fit
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.trainer.states import TrainerFn

from rnnlab.checkpoints import resolve_checkpoint
from rnnlab.data.parallel_text import ParallelTextDataModule
from rnnlab.data.synthetic_translation import LanguagePair
from rnnlab.decoding import Hypotheses
from rnnlab.errors import ConfigError
from rnnlab.evaluation import evaluate as evaluate_checkpoint
from rnnlab.tasks.translation import DECODING_KEYS, TranslationTask, corpus_scores, decoder_name, length_buckets
from rnnlab.tracking import ui
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = {"cell": "gru", "embedding_size": 32, "hidden_size": 64, "num_layers": 1, "dropout": 0.0,
              "attention": {"type": "luong_general"}}
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.01}


def write_pairs(directory: Path, count: int = 20, seed: int = 0) -> dict[str, str]:
    """`count` sentence pairs of the synthetic language (5–9 words) as the train, val and test files alike."""
    language, rng = LanguagePair(), random.Random(seed)
    pairs = [language.sample_pair(rng, rng.randint(5, 9)) for _ in range(count)]
    paths = {}
    for side, texts in (("src", [s for s, _ in pairs]), ("tgt", [t for _, t in pairs])):
        path = directory / f"pairs.{side}"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        paths |= {f"{split}_{side}": str(path) for split in ("train", "val", "test")}
    return paths


def pair_data(directory: Path, **options) -> ParallelTextDataModule:
    data = ParallelTextDataModule(**write_pairs(directory), tokenizer="word", min_frequency=1, cache_dir=None,
                                  batch_size=20, eval_batch_size=8, **options)
    data.setup()
    return data


def task_for(data: ParallelTextDataModule, seed: int = 0, **settings) -> TranslationTask:
    torch.manual_seed(seed)
    return TranslationTask(**data.task_inputs, model=TINY_MODEL, optimizer=ADAM, tokenizer=data.tokenizer_state(),
                           **settings)


def evaluate(task: TranslationTask, data: ParallelTextDataModule, directory: Path) -> dict[str, float]:
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=directory)  # the sample table goes there
    return {key: float(value) for key, value in trainer.validate(task, datamodule=data, verbose=False)[0].items()}


# --- scores ---------------------------------------------------------------------------------------
def test_identical_hypotheses_score_100_and_case_counts_only_for_cased_bleu():
    references = ["A man rides a bike.", "Two dogs play in the snow, happily.", "A woman (left) sings!"]
    scores, signatures = corpus_scores(references, references)
    assert scores == {"bleu": pytest.approx(100), "bleu_lc": pytest.approx(100), "chrf": pytest.approx(100)}
    lowered, _ = corpus_scores([r.lower() for r in references], references)
    assert lowered["bleu"] < 90 and lowered["bleu_lc"] == pytest.approx(100)
    assert "case:mixed" in signatures["bleu_signature"] and "tok:13a" in signatures["bleu_signature"]
    assert "case:lc" in signatures["bleu_lc_signature"] and signatures["chrf_signature"].startswith("nrefs:1")


# --- evaluation through the task ------------------------------------------------------------------
def test_val_ppl_is_the_teacher_forced_token_weighted_nll_without_label_smoothing(tmp_path):
    data = pair_data(tmp_path)
    task = task_for(data, label_smoothing=0.3, decode="greedy")
    metrics = evaluate(task, data, tmp_path)
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for batch in data.val_dataloader():  # gold previous tokens in, every real target token scored
            logits = task.model(batch["src"], batch["src_lengths"], batch["tgt_in"]).logits
            nll += float(F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=0,
                                         reduction="sum"))
            tokens += int((batch["tgt_out"] != 0).sum())
    assert metrics["val/loss"] == pytest.approx(nll / tokens, rel=1e-5)
    assert metrics["val/ppl"] == pytest.approx(math.exp(metrics["val/loss"]), rel=1e-5)


def oracle(data: ParallelTextDataModule, words_right: int | None = None):
    """A decoder that answers each validation source with its reference's pieces: all of them, or only the
    first `words_right` when the source has more tokens than that."""
    reference_of = {}
    for batch in data.val_dataloader():
        for row in range(len(batch["index"])):
            source = tuple(batch["src"][row, : batch["src_lengths"][row]].tolist())
            reference_of[source] = [t for t in batch["tgt_out"][row].tolist() if t not in (0, 2)]

    def decode(src, src_lengths, return_attention=False):
        sources = [tuple(src[b, :n].tolist()) for b, n in enumerate(src_lengths.tolist())]
        return Hypotheses([reference_of[s][: words_right if words_right and len(s) > words_right else None]
                           for s in sources], torch.zeros(len(src)))
    return decode


def test_length_buckets_cut_at_upper_edges_and_leave_out_empty_ones():
    assert length_buckets([3, 10, 11, 25, 40], (10, 20)) == {"1-10": [0, 1], "11-20": [2], "21-inf": [3, 4]}
    assert length_buckets([3, 40], (10, 20)) == {"1-10": [0], "21-inf": [1]}
    assert length_buckets([3, 40], ()) == {"1-inf": [0, 1]}


def test_bleu_by_source_length_is_the_corpus_bleu_of_each_bucket_alone(tmp_path):
    data = pair_data(tmp_path)  # sources of 5–9 words, each word a token, and "." one more
    task = task_for(data, decode="greedy", length_buckets=[6, 8])
    task.decode = oracle(data, words_right=7)  # right on sources of ≤ 6 words, cut after 7 pieces on longer ones
    metrics = evaluate(task, data, tmp_path)
    sources, references, hypotheses = data.sources("val"), data.references("val"), task.translations["val"]
    assert metrics["val/bleu_by_len/1-6"] == pytest.approx(100)
    for bucket, (lo, hi) in {"7-8": (7, 8), "9-inf": (9, 99)}.items():
        members = [i for i, source in enumerate(sources) if lo <= len(source.split()) <= hi]
        expected, _ = corpus_scores([hypotheses[i] for i in members], [references[i] for i in members])
        assert metrics[f"val/bleu_by_len/{bucket}"] == pytest.approx(expected["bleu"])
        assert 0 < expected["bleu"] < 100
    assert metrics["val/bleu"] < 100


def test_hypotheses_are_matched_to_references_by_index_not_batch_order(tmp_path):
    data = pair_data(tmp_path)
    order = [int(i) for batch in data.val_dataloader() for i in batch["index"]]
    assert order != sorted(order)  # longest source first: batch order is not the file's order
    # an oracle decoder that knows each source's reference scores 100 only if each lands on its own reference
    task = task_for(data, decode="greedy")
    task.decode = oracle(data)
    metrics = evaluate(task, data, tmp_path)
    assert metrics["val/bleu"] == pytest.approx(100)
    assert [task.translations["val"][i] for i in range(20)] == data.references("val")
    table = (tmp_path / "translations" / "val.md").read_text()  # without a logger: in default_root_dir
    assert f"| 0 | {data.sources('val')[0]} | {data.references('val')[0]} | {data.references('val')[0]} |" in table


def test_beam_size_one_is_greedy_through_the_task(tmp_path):
    data = pair_data(tmp_path)
    greedy, beam = task_for(data, decode="greedy"), task_for(data, decode="beam", beam_size=1)
    with torch.no_grad():  # larger output weights than the init: confident, non-trivial outputs
        greedy.model.W_s.weight.mul_(30)
    beam.load_state_dict(greedy.state_dict())
    sources = data.sources("val")
    outputs = greedy.translate(sources)
    assert any(outputs) and outputs == beam.translate(sources)
    assert evaluate(greedy, data, tmp_path)["val/bleu"] == evaluate(beam, data, tmp_path)["val/bleu"]


def test_sampling_through_the_task_is_seeded_and_cools_to_greedy(tmp_path):
    data = pair_data(tmp_path)
    greedy = task_for(data, decode="greedy")
    with torch.no_grad():  # confident, non-trivial outputs, as in the beam test above
        greedy.model.W_s.weight.mul_(30)
    cold, hot = task_for(data, decode="sample", temperature=1e-4), task_for(data, decode="sample", temperature=2.0)
    cold.load_state_dict(greedy.state_dict())
    hot.load_state_dict(greedy.state_dict())
    sources = data.sources("val")
    assert cold.translate(sources) == greedy.translate(sources)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(hot.translate(sources))
    assert draws[0] == draws[1] != draws[2]
    metrics = evaluate(hot, data, tmp_path)  # scored like any decoder
    assert 0 <= metrics["val/bleu"] < 100 and "sampling, temperature 2.0" in (tmp_path / "translations" /
                                                                               "val.md").read_text()
    # temperature 0 and a nucleus of one token are greedy too (rnnlab.sampling, shared with generate.py)
    for settings in ({"temperature": 0}, {"temperature": 2.0, "top_p": 1e-9}):
        task = task_for(data, decode="sample", **settings)
        task.load_state_dict(greedy.state_dict())
        assert task.translate(sources) == greedy.translate(sources)


def test_a_checkpoint_from_before_top_p_loads_and_samples_without_a_nucleus(tmp_path):
    data = pair_data(tmp_path)
    task = task_for(data, decode="sample", temperature=0.7, top_k=10)
    hparams = dict(task.hparams)
    del hparams["top_p"]
    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams}, old)
    loaded = TranslationTask.from_checkpoint(old, "old.ckpt")
    assert loaded.hparams.top_p is None and decoder_name(loaded.hparams) == "sample_t0.7_k10"
    nucleus = TranslationTask.from_checkpoint(old, "old.ckpt", top_p=0.9)
    assert decoder_name(nucleus.hparams) == "sample_t0.7_k10_p0.9"
    assert "sampling, temperature 0.7, top-k 10, top-p 0.9" in nucleus._decoder_description()


def test_decoder_names_leave_out_the_limits_that_are_not_set():
    sample = {"decode": "sample", "temperature": 1.0, "top_k": None, "top_p": None}
    assert decoder_name(sample) == decoder_name({**sample, "top_k": 0, "top_p": 1.0}) == "sample_t1.0"
    assert decoder_name({**sample, "temperature": 0.7, "top_k": 10, "top_p": 0.9}) == "sample_t0.7_k10_p0.9"
    assert decoder_name({**sample, "top_p": 0.5}) == "sample_t1.0_p0.5"


def test_bad_task_settings_are_one_line_errors_naming_the_key(tmp_path):
    data = pair_data(tmp_path)
    for settings, message in (({"decode": "sampling"}, "task.decode='sampling' is invalid"),
                              ({"beam_size": 0}, "task.beam_size=0 is invalid"),
                              ({"label_smoothing": 1.0}, "task.label_smoothing=1.0 is invalid"),
                              ({"bleu_every_n_epochs": 0}, "task.bleu_every_n_epochs=0 is invalid"),
                              ({"length_buckets": [20, 10]}, "task.length_buckets=[20, 10] is invalid"),
                              ({"temperature": -1}, "task.temperature=-1 is invalid"),
                              ({"top_k": -1}, "task.top_k=-1 is invalid"),
                              ({"top_p": 0}, "task.top_p=0 is invalid")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            task_for(data, **settings)


def test_bleu_is_decoded_every_n_epochs_and_at_the_validation_before_a_spent_time_budget_stops_the_fit(tmp_path):
    task = task_for(pair_data(tmp_path), bleu_every_n_epochs=3)
    due = []
    for epoch, should_stop in ((0, False), (2, False), (3, False), (4, True)):  # the budget spent in epoch 4
        task._trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.FITTING), sanity_checking=False,
                                        current_epoch=epoch, max_epochs=-1, max_steps=-1, global_step=100,
                                        should_stop=should_stop)
        due.append(task._bleu_due("val"))
    assert due == [False, True, False, True]


# --- configuration --------------------------------------------------------------------------------
def test_task_translation_composes_with_any_model_and_data_and_leaves_task_lm_alone(make_cfg):
    cfg = make_cfg("task=translation", "model=rnn", "attention=bahdanau", tiny=False)
    assert cfg.data._target_.endswith("SyntheticTranslationDataModule")  # its own default data
    assert cfg.model.cell == "rnn" and cfg.model.nonlinearity == "tanh"  # the model group's keys ...
    assert cfg.model.reverse_source is False and cfg.model.attention == {"type": "bahdanau"}  # ... and its own
    assert (cfg.monitor.metric, cfg.monitor.mode) == ("val/bleu", "max")
    assert make_cfg("task=translation", "data=multi30k", tiny=False).data._target_.endswith("Multi30kDataModule")
    preset = make_cfg("experiment=synthetic_translation", tiny=False)
    assert preset.task._target_.endswith("TranslationTask") and preset.attention.type == "luong_general"
    lm = make_cfg(tiny=False)
    assert lm.task._target_.endswith("LanguageModelingTask") and "reverse_source" not in lm.model
    assert lm.monitor.metric == "val/loss"


def test_every_decoding_key_is_a_task_key_and_a_translate_and_eval_option(make_cfg):
    task = make_cfg("task=translation", tiny=False).task
    assert set(DECODING_KEYS) <= set(task) and task.top_p is None
    for name in ("translate", "eval"):  # null there: the checkpoint's own setting
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(name)
        assert all(key in cfg and cfg[key] is None for key in DECODING_KEYS), name


# --- training -------------------------------------------------------------------------------------
def test_a_tiny_model_overfits_20_sentence_pairs_to_bleu_95(tmp_path):
    files = write_pairs(tmp_path)
    cfg = compose_train([
        "task=translation", "data=parallel_text", "model=gru", "attention=luong_general", "logger=none",
        "callbacks=none", *[f"data.{key}={path}" for key, path in files.items()], "data.batch_size=20",
        "data.cache_dir=null", "data.tokenizer=word", "data.min_frequency=1", "model.embedding_size=32",
        "model.hidden_size=64", "model.num_layers=1", "model.dropout=0.0", "optimizer.lr=0.01",
        "trainer.max_epochs=120", "+trainer.check_val_every_n_epoch=60", "+trainer.num_sanity_val_steps=0",
        "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "task.decode=greedy",
        "task.bleu_every_n_epochs=1000"], tmp_path)
    metrics = train(cfg)
    assert metrics["val/bleu"] >= 95 and metrics["test/bleu"] >= 95  # the same 20 pairs: test = val = train
    assert metrics["val/ppl"] < 1.5


# --- a tracked run, and translate.py / eval.py from its checkpoint --------------------------------
RUN = ["task=translation", "data=synthetic_translation", "model=gru", "attention=luong_general",
       "data.train_pairs=400", "data.val_pairs=30", "data.test_pairs=20", "data.max_words=10", "data.cache_dir=null",
       "data.batch_size=32", "model.embedding_size=32", "model.hidden_size=64", "model.num_layers=1",
       "trainer.max_epochs=2", "task.bleu_every_n_epochs=2", "task.num_samples=5", "task.num_heatmaps=2",
       "task.beam_size=3", "callbacks.progress_bar.refresh_rate=0", "+trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny tracked fit with val/bleu every 2nd epoch as the checkpoint and early-stopping monitor."""
    run = tracked_fit(RUN, tmp_path_factory.mktemp("translation"))
    assert run["cfg"].monitor.metric == "val/bleu" and run["cfg"].monitor.mode == "max"
    return run


def test_a_tracked_run_logs_scores_signature_samples_and_heatmaps(run):
    client, run_id, metrics = run["client"], run["run_id"], run["metrics"]
    assert run["tags"]["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert run["tags"]["task"] == "translation"
    for stage in ("val", "test"):
        assert metrics[f"{stage}/ppl"] == pytest.approx(math.exp(metrics[f"{stage}/loss"]), rel=1e-5)
        assert {f"{stage}/bleu", f"{stage}/bleu_lc", f"{stage}/chrf"} <= set(metrics)
    # val/loss every epoch; val/bleu only where it was computed (epoch 1 of 0..1), not the carried value
    assert len(client.get_metric_history(run_id, "val/loss")) == 2
    (bleu,) = client.get_metric_history(run_id, "val/bleu")
    assert bleu.value == pytest.approx(metrics["val/bleu"])
    assert bleu.step == client.get_metric_history(run_id, "val/loss")[-1].step  # one x axis for val/*
    assert "diag/grad_ratio" not in client.get_run(run_id).data.metrics  # gradient diagnostics skip seq2seq

    table = Path(client.download_artifacts(run_id, "translations/val_epoch_001.md")).read_text()
    assert table.startswith("# val translations, epoch 1") and "beam search, beam 3" in table
    assert table.count("\n| ") == 1 + 5  # header + 5 fixed sentences
    assert [a.path for a in client.list_artifacts(run_id, "attention")] == [
        "attention/val_epoch_001_sentence_0000.png", "attention/val_epoch_001_sentence_0006.png"]
    png = Path(client.download_artifacts(run_id, "attention/val_epoch_001_sentence_0000.png")).read_bytes()
    assert png.startswith(b"\x89PNG")
    hypotheses = Path(client.download_artifacts(run_id, "translations/test_hypotheses.txt")).read_text()
    assert len(hypotheses.splitlines()) == 20


def script(name: str, *overrides: str, uri: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    return run_owned([sys.executable, name, *overrides], cwd=ROOT, env=env, input=stdin, timeout=120)


@pytest.mark.slow  # ~17 s: three translate.py processes; test_transformer translates from a checkpoint in make test
def test_translate_py_from_the_run_id_and_from_the_checkpoint_file(run, tmp_path):
    best = resolve_checkpoint(run["run_id"], run["uri"], tmp_path)
    task = TranslationTask.from_checkpoint(best, "best")
    sentences = ["the old man painted a red boat .", "", "a dog saw a cat today ."]
    expected = task.translate(sentences)
    by_run_id = script("translate.py", f"ckpt={run['run_id']}", uri=run["uri"], stdin="\n".join(sentences) + "\n")
    assert by_run_id.returncode == 0, by_run_id.stderr
    assert by_run_id.stdout.split("\n")[:-1] == expected  # one line out per line in, the empty one empty
    one = script("translate.py", f"ckpt={best}", f"text={sentences[0]}", "decode=greedy", uri=run["uri"])
    assert one.returncode == 0, one.stderr
    assert one.stdout == TranslationTask.from_checkpoint(best, "best", decode="greedy").translate(sentences[:1])[0] \
        + "\n"
    sampler = TranslationTask.from_checkpoint(best, "best", decode="sample", temperature=2.0, top_p=0.95)
    torch.manual_seed(3)
    sampled = script("translate.py", f"ckpt={best}", "decode=sample", "temperature=2.0", "top_p=0.95", "seed=3",
                     uri=run["uri"], stdin="\n".join(sentences) + "\n")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.split("\n")[:-1] == sampler.translate(sentences) != expected  # seeded draws, not the beam's


EVAL_DATA = ["data=synthetic_translation", "data.train_pairs=400", "data.val_pairs=30", "data.test_pairs=20",
             "data.max_words=10", "data.cache_dir=null"]


def compose_eval(*overrides: str, uri: str):
    log_dir = Path(uri.removeprefix("sqlite:///")).parent  # the run's temporary tree, not the repository's logs/
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("eval", overrides=[*overrides, f"tracking_uri={uri}", f"paths.log_dir={log_dir}"])


def test_eval_py_scores_the_checkpoint_into_its_run_or_a_linked_one(run, tmp_path, capsys):
    into_run = script("eval.py", f"ckpt={run['run_id']}", *EVAL_DATA, uri=run["uri"])
    assert into_run.returncode == 0, into_run.stderr
    assert "test/bleu" in into_run.stdout and run["run_id"] in into_run.stdout
    trained_in = run["client"].get_run(run["run_id"]).info.experiment_id
    assert f"browse run:     {ui.run_link(run['uri'], trained_in, run['run_id'])}\n" in into_run.stdout
    logged = run["client"].get_run(run["run_id"]).data.metrics
    assert logged["eval/beam3_lp1.0/test/bleu"] == pytest.approx(run["metrics"]["test/bleu"], abs=1e-6)
    assert logged["test/bleu"] == pytest.approx(run["metrics"]["test/bleu"])  # training's own score untouched

    best = next((run["dir"] / "checkpoints").glob("epoch*.ckpt"))  # in the run's directory: linked to the run
    metrics = evaluate_checkpoint(compose_eval(f"ckpt={best}", *EVAL_DATA, "split=val", "decode=greedy",
                                               uri=run["uri"]))
    evaluations = run["client"].get_experiment_by_name("translation-eval")
    assert evaluations.tags["mlflow.experimentKind"] == "custom_model_development"
    (linked,) = run["client"].search_runs([evaluations.experiment_id])
    assert f"browse run:     {ui.run_link(run['uri'], evaluations.experiment_id, linked.info.run_id)}\n" in \
        capsys.readouterr().out
    assert linked.data.tags["evaluated_checkpoint"] == str(best.resolve())
    assert linked.data.tags["evaluated_run_id"] == run["run_id"]  # found by the run directory
    assert linked.data.tags["decoder"] == "greedy"
    assert linked.data.metrics["val/bleu"] == pytest.approx(metrics["val/bleu"])
    assert {"val/bleu_lc", "val/chrf", "val/ppl"} <= set(linked.data.metrics)
    # the vocabulary must be the checkpoint's: other training text is refused, not scored with wrong ids
    with pytest.raises(ConfigError, match="is not the checkpoint's"):
        evaluate_checkpoint(compose_eval(f"ckpt={best}", *EVAL_DATA, "data.train_pairs=300", uri=run["uri"]))


def test_bad_inputs_are_one_line_errors_with_status_2(run, tmp_path):
    empty = script("translate.py", f"ckpt={run['run_id']}", "text= ", uri=run["uri"])
    assert empty.returncode == 2 and empty.stderr.startswith("error: text is empty")
    assert len(empty.stderr.strip().splitlines()) == 1
    missing = script("eval.py", f"ckpt={tmp_path / 'nope.ckpt'}", uri=run["uri"])
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith("error: ckpt=") and "no such file" in missing.stderr
    with pytest.raises(ConfigError, match="split=train is invalid: choose one of test, val"):
        evaluate_checkpoint(compose_eval(f"ckpt={run['run_id']}", "split=train", uri=run["uri"]))
    with pytest.raises(ConfigError, match="beam_size=0 is invalid"):
        evaluate_checkpoint(compose_eval(f"ckpt={run['run_id']}", "beam_size=0", uri=run["uri"]))
    with pytest.raises(ConfigError, match="ckpt is missing"):
        resolve_checkpoint(None, run["uri"], tmp_path)
    with pytest.raises(ConfigError, match="no such run in the MLflow store"):
        resolve_checkpoint("0" * 32, run["uri"], tmp_path)
    client = run["client"]  # a run without a checkpoint artifact
    bare = client.create_run(client.get_experiment_by_name("translation-synthetic_translation").experiment_id)
    with pytest.raises(ConfigError, match="has no checkpoint artifact"):
        resolve_checkpoint(bare.info.run_id, run["uri"], tmp_path)
    not_translation = tmp_path / "lm.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"vocab_size": 5, "model": {}}}, not_translation)
    with pytest.raises(ConfigError, match="is not a task=translation checkpoint"):
        TranslationTask.from_checkpoint(not_translation, "lm.ckpt")
