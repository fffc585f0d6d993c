"""The task family: one registry turns `model=` into a task's network, the task base gives every task the same
training bookkeeping, and checkpoints written before either existed still load, score, write and resume."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONF, TINY, compose_train, tracked_fit
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class
from mlflow.entities import Param, Run, RunData, RunInfo

import rnnlab.tasks
from rnnlab import generation
from rnnlab.errors import ConfigError
from rnnlab.evaluation import evaluate
from rnnlab.models import NGramLanguageModel, RNNLanguageModel, registry
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.tasks import TASKS, Task
from rnnlab.tasks.language_modeling import LanguageModelingTask
from rnnlab.tasks.ngram import NGramTask
from rnnlab.tasks.translation import TranslationTask
from rnnlab.tracking.run_info import task_metrics
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

OLD = Path(__file__).parent / "data" / "checkpoints_v0_1"  # written by the code before the task base (README there)
LSTM = {"cell": "lstm", "embedding_size": 8, "hidden_size": 8, "num_layers": 1}
NGRAM = {"family": "ngram", "order": 3}


# --- the registry -------------------------------------------------------------------------------------------
def test_the_registry_builds_each_familys_network_for_each_shape():
    assert isinstance(registry.build(LSTM, "lm", vocab_size=11), RNNLanguageModel)
    assert isinstance(registry.build(LSTM, "seq2seq", src_vocab_size=11, tgt_vocab_size=12, pad_id=0, bos_id=1,
                                     eos_id=2), Seq2Seq)
    ngram = registry.build({**NGRAM, "hidden_size": 64, "num_layers": 3}, "lm", vocab_size=11)  # a preset's sizes
    assert isinstance(ngram, NGramLanguageModel) and ngram.ngram.order == 3
    assert registry.ignored_keys({**NGRAM, "hidden_size": 64}, "lm") == ["hidden_size"]
    assert registry.trains(LSTM) and not registry.trains(NGRAM)
    assert registry.task_class(LanguageModelingTask, NGRAM) is NGramTask
    assert registry.task_class(LanguageModelingTask, LSTM) is LanguageModelingTask


@pytest.mark.parametrize(("model", "shape", "message"), [
    (NGRAM, "seq2seq", "model=ngram has no seq2seq network: it fits task=lm"),
    ({**LSTM, "family": "cnn"}, "lm", "model.family=cnn is unknown: choose one of rnn, ngram"),
    ({**LSTM, "hiden_size": 3}, "lm", "model.hiden_size is not an option here; valid: cell, "),
    ({**NGRAM, "ordr": 3}, "lm", "model.ordr is not an option here; valid: order, smoothing"),
])
def test_what_the_registry_cannot_build_is_one_line(model, shape, message):
    with pytest.raises(ConfigError, match=message) as error:
        registry.build(model, shape, **({"vocab_size": 5} if shape == "lm" else {
            "src_vocab_size": 5, "tgt_vocab_size": 5, "pad_id": 0, "bos_id": 1, "eos_id": 2}))
    assert "\n" not in str(error.value)


def test_ngram_with_translation_is_refused_before_training(make_cfg):
    with pytest.raises(ConfigError, match="model=ngram has no seq2seq network: it fits task=lm"):
        train(make_cfg("task=translation", "model=ngram", tiny=False))


def test_sweeps_and_reports_take_their_default_columns_from_the_task():
    def run(target: str | None) -> Run:
        params = [Param("task._target_", target)] if target else []
        return Run(RunInfo("r", "0", "u", "FINISHED", 0, 0, "active"), RunData(params=params))

    assert task_metrics(run("rnnlab.tasks.language_modeling.LanguageModelingTask"), "report_metrics") == \
        LanguageModelingTask.report_metrics == ("val/loss", "val/ppl", "test/ppl")
    assert task_metrics(run("rnnlab.tasks.translation.TranslationTask"), "summary_metrics") == \
        TranslationTask.summary_metrics
    assert task_metrics(run(None), "summary_metrics") == ()  # a job that failed before its run trained
    assert task_metrics(run("rnnlab.tasks.gone.GoneTask"), "summary_metrics") == ()



def _init_takes_tokenizer(task_class: type) -> bool:
    """Whether task_class(tokenizer=...) reaches an __init__ that names it, through any (*args, **kwargs) on the way."""
    for cls in task_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters
        if "tokenizer" in parameters:
            return True
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
            return False
    return False


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_a_task_declares_takes_tokenizer_exactly_when_its_init_takes_one():
    for module in pkgutil.iter_modules(rnnlab.tasks.__path__):
        importlib.import_module(f"rnnlab.tasks.{module.name}")
    tasks = {Task, *(cls for cls in _subclasses(Task) if cls.__module__.startswith("rnnlab."))}
    registered = {get_class(target) for target in TASKS.values()}
    registered |= {get_class(entry.task) for shapes in registry.FAMILIES.values() for entry in shapes.values()
                   if entry.task}
    assert registered <= tasks  # every task= option and every family's own task (NGramTask, HMMTaggingTask)
    drifted = [f"{cls.__qualname__}: takes_tokenizer={cls.takes_tokenizer}, __init__ takes tokenizer: "
               f"{_init_takes_tokenizer(cls)}" for cls in tasks if cls.takes_tokenizer != _init_takes_tokenizer(cls)]
    assert not drifted

# --- checkpoints from before the task base ------------------------------------------------------------------
def test_an_old_language_model_checkpoint_writes_text():
    model, tokenizer = generation.load_checkpoint(str(OLD / "lm" / "checkpoints" / "last.ckpt"))
    text = generation.write(model, tokenizer, "", max_tokens=12, generator=torch.Generator().manual_seed(0))
    assert len(text.split()) >= 3 and set(text.split()) <= set(tokenizer.vocab)


def test_an_old_translation_checkpoint_translates_and_scores_in_eval_py(tmp_path, monkeypatch):
    task = TranslationTask.from_checkpoint(OLD / "mt" / "checkpoints" / "last.ckpt", "last.ckpt")
    assert task.hparams.beam_size == 2 and not task.training
    assert [bool(t) for t in task.translate(["", "the"])] == [False, True]  # an empty line stays empty

    metrics = evaluate(compose_eval(f"ckpt={OLD / 'mt' / 'checkpoints' / 'last.ckpt'}", tmp_path=tmp_path))
    assert {"test/bleu", "test/chrf", "test/ppl"} <= set(metrics) and metrics["test/ppl"] > 1  # on its run's data


def compose_eval(*overrides: str, tmp_path: Path, uri: str | None = None):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("eval", overrides=[*overrides, f"tracking_uri={uri or f'sqlite:///{tmp_path}/mlflow.db'}",
                                         f"paths.log_dir={tmp_path}"])
    GlobalHydra.instance().clear()
    return cfg


def test_eval_py_scores_a_language_model_as_its_own_test_did(tmp_path):
    run = tracked_fit([*TINY, "callbacks.samples=null", "callbacks.gradient_diagnostics=null"], tmp_path)
    metrics = evaluate(compose_eval(f"ckpt={run['run_id']}", tmp_path=tmp_path, uri=run["uri"]))  # its data
    assert metrics["test/ppl"] == pytest.approx(run["metrics"]["test/ppl"], rel=1e-6)  # the best checkpoint again
    assert metrics["test/ppl_gap"] == pytest.approx(run["metrics"]["test/ppl_gap"], rel=1e-5)
    logged = run["client"].get_run(run["run_id"]).data.metrics
    assert logged["eval/test/ppl"] == pytest.approx(metrics["test/ppl"]) and "eval/test/loss" in logged
    best = next((run["dir"] / "checkpoints").glob("epoch*.ckpt"))
    with pytest.raises(ConfigError, match="decode=greedy does not apply to a task=lm checkpoint; leave it out"):
        evaluate(compose_eval(f"ckpt={best}", "decode=greedy", tmp_path=tmp_path, uri=run["uri"]))
    # compose_train wrote no .hydra/ into the run directory: its data must be given
    with pytest.raises(ConfigError, match="its data is unknown; give data=<the data it was trained on>"):
        evaluate(compose_eval(f"ckpt={best}", tmp_path=tmp_path, uri=run["uri"]))
    data = [o for o in TINY if o.startswith("data.")]
    val = evaluate(compose_eval(f"ckpt={best}", "data=synthetic_lm", *data, "split=val", tmp_path=tmp_path,
                                uri=run["uri"]))
    (linked,) = run["client"].search_runs([run["client"].get_experiment_by_name("lm-eval").experiment_id])
    assert linked.data.tags["evaluated_run_id"] == run["run_id"] and "decoder" not in linked.data.tags
    assert linked.data.metrics["val/ppl"] == pytest.approx(val["val/ppl"])


def test_eval_of_an_old_language_model_checkpoint_reads_its_runs_data(tmp_path):
    metrics = evaluate(compose_eval(f"ckpt={OLD / 'lm' / 'checkpoints' / 'last.ckpt'}", tmp_path=tmp_path))
    assert metrics["test/ppl"] > metrics["test/ppl_optimal"] > 1


def overrides_of(run_dir: Path) -> list[str]:
    return yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())


@pytest.mark.parametrize("run", ["lm", "mt"])
def test_an_old_run_resumes(run, tmp_path):
    """resume= checks the checkpoint's model and the run's recorded settings against the configs now: both
    must still match what the code before the task base wrote."""
    run_dir = tmp_path / run
    shutil.copytree(OLD / run, run_dir)
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    overrides = [o for o in overrides_of(run_dir) if not o.startswith(("paths.", "trainer.max_epochs"))]
    cfg = compose_train([*overrides, "trainer.max_epochs=2", "test=false", f"paths.log_dir={tmp_path}"], tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(cfg, "resume", str(run_dir))
        metrics = train(cfg)
    assert metrics["val/loss"] > 0
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)  # compose_train's output
    assert resumed["global_step"] == 2 * step  # one more epoch of the same length
