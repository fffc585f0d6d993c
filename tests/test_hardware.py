"""hardware= profiles, precision and compile: what this machine cannot run stops before training with one line naming
the fix; what it can (bf16-mixed and compile on the CPU) trains; a Hydra job leaves no DDP state to the next."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.strategies.launchers import subprocess_script

from rnnlab import hardware
from rnnlab.errors import ConfigError
from rnnlab.nn.recurrent import FusedRecurrent
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["callbacks=none", "logger=none", "test=false", "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false", "model.dropout=0"]

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
CASES = [
    pytest.param("hardware=ddp", "trainer.accelerator=gpu but no CUDA device is visible", marks=no_cuda),
    pytest.param("hardware=ddp_multinode", "trainer.accelerator=gpu but no CUDA device is visible", marks=no_cuda),
    pytest.param("hardware=mps", "trainer.accelerator=mps but MPS is not available here: use hardware=cpu",
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")),
    ("trainer.precision=16-mixed", "trainer.precision=16-mixed needs a GPU .*: use trainer.precision=bf16-mixed"),
    ("trainer.precision=bf16-true", "trainer.precision=bf16-true is not supported here: use 32-true, bf16-mixed"),
    ("compile=yes", "compile='yes' is invalid: true"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_what_this_machine_cannot_run_stops_with_one_line(overrides, message, make_cfg):
    with pytest.raises(ConfigError, match=message) as error:
        train(make_cfg(*overrides.split()))
    assert "\n" not in str(error.value)


@pytest.fixture
def cuda(monkeypatch):
    """A machine with 4 GPUs that support bfloat16, as far as the checks can tell."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    for name in ("SLURM_NTASKS", "SLURM_NNODES", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)


def test_multinode_needs_a_slurm_allocation_of_its_size(cuda, make_cfg, monkeypatch):
    cfg = make_cfg("hardware=ddp_multinode")
    with pytest.raises(ConfigError, match="hardware=ddp_multinode runs inside a SLURM allocation .*: submit it with "
                                          "hydra/launcher=slurm"):
        hardware.check(cfg)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2(x2)")
    with pytest.raises(ConfigError, match="trainer.devices=4 but the SLURM allocation has SLURM_NTASKS_PER_NODE=2: "
                                          "set trainer.devices=2"):
        hardware.check(cfg)
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4(x2)")
    hardware.check(cfg)  # sized like the allocation: fine
    with pytest.raises(ConfigError, match="trainer.num_nodes=3 but the SLURM allocation has SLURM_NNODES=2"):
        hardware.check(make_cfg("hardware=ddp_multinode", "trainer.num_nodes=3"))


def test_compile_needs_a_network_and_on_the_cpu_a_compiler(make_cfg, monkeypatch):
    with pytest.raises(ConfigError, match="compile=true has nothing to compile for model=ngram"):
        hardware.check(make_cfg("model=ngram", "compile=true", tiny=False))
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="compile=true on the CPU needs a C\\+\\+ compiler .*or set compile=false"):
        hardware.check(make_cfg("compile=true"))


def test_bf16_mixed_trains_the_lm_where_this_cpu_can_and_stops_with_one_line_where_not(make_cfg):
    failure = hardware.cpu_bf16_failure("lstm", "fused")
    if failure is not None:  # e.g. an AVX2-only AMD EPYC: oneDNN has no bfloat16 LSTM there
        with pytest.raises(ConfigError, match="this CPU cannot run the fused lstm in bfloat16 .*32-true") as error:
            train(make_cfg(*FAST, "trainer.precision=bf16-mixed"))
        assert "\n" not in str(error.value)
        return
    full = train(make_cfg(*FAST))
    mixed = train(make_cfg(*FAST, "trainer.precision=bf16-mixed"))
    # the same fit with bfloat16 matmuls: close to, not equal to, float32
    assert mixed["val/loss"] == pytest.approx(full["val/loss"], abs=0.05)
    assert mixed["val/loss"] != full["val/loss"]


def test_the_bf16_probe_runs_the_unpacked_path_of_taggers_and_classifiers_too(monkeypatch):
    """A failure only the unpacked stack meets (final=False, nn/recurrent.py) is found before training."""
    def fails(*args, **kwargs):
        raise RuntimeError("could not create a primitive descriptor. Run workload with ONEDNN_VERBOSE")

    monkeypatch.setattr(FusedRecurrent, "_run_by_direction", fails)
    hardware.cpu_bf16_failure.cache_clear()
    try:
        failure = hardware.cpu_bf16_failure("gru", "fused", bidirectional=True)
        assert failure == "could not create a primitive descriptor"
    finally:
        hardware.cpu_bf16_failure.cache_clear()


def test_a_cpu_without_bf16_cells_stops_before_training_naming_the_fixes(make_cfg, monkeypatch):
    """The probe's answer forced both ways: the fused cell fails, then the scratch one too."""
    lacking = {"fused"}
    monkeypatch.setattr(hardware, "cpu_bf16_failure",
                        lambda cell, backend, *_: "no primitive" if backend in lacking else None)
    cfg = make_cfg("trainer.precision=bf16-mixed")
    with pytest.raises(ConfigError) as error:
        hardware.check(cfg)
    assert str(error.value) == ("trainer.precision=bf16-mixed: this CPU cannot run the fused lstm in bfloat16 (no "
                                "primitive): use trainer.precision=32-true or model.backend=scratch (its recurrence "
                                "runs in float32 under bf16-mixed)")
    lacking.add("scratch")
    with pytest.raises(ConfigError, match=r"\(no primitive\): use trainer.precision=32-true$"):
        hardware.check(cfg)
    hardware.check(make_cfg("trainer.precision=bf16-mixed", "model=ngram", tiny=False))  # no cell to run
    hardware.check(make_cfg())  # 32-true never asks


def test_the_bf16_probe_finds_the_lstm_onednn_lacks_on_avx2():
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN behave as on an AVX2-only CPU, whatever this one is."""
    probe = ("from rnnlab import hardware; "
             "print([hardware.cpu_bf16_failure(c, b) for c in ('lstm', 'gru', 'rnn') for b in ('fused', 'scratch')])")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "RNNLAB_KERNELS": "0", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    lstm_fused, *others = answers
    assert lstm_fused == "could not create a primitive descriptor for the LSTM forward propagation primitive"
    assert others == [None] * 5  # the scratch LSTM, both GRUs and both Elman RNNs run there


@pytest.mark.slow  # torch.compile's first compilation of the LSTM takes a minute or more on 2 busy cores
def test_compile_trains_the_lm_on_the_cpu_to_the_same_loss(make_cfg, tmp_path):
    eager = train(make_cfg(*FAST))
    compiled = train(make_cfg(*FAST, "compile=true"))
    assert compiled["val/loss"] == pytest.approx(eager["val/loss"], rel=1e-4)


def test_a_job_leaves_no_process_group_or_launch_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")  # set before the job: kept
    for name in ("MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    with hardware.job_scope():
        assert subprocess_script._hydra_subprocess_cmd is hardware.job_command
        # what Lightning's launch and process-group setup leave behind
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500", LOCAL_RANK="0", WORLD_SIZE="1")
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/init", rank=0, world_size=1)
    assert not torch.distributed.is_initialized()
    assert os.environ["MASTER_ADDR"] == "10.0.0.1"
    assert not {"MASTER_PORT", "LOCAL_RANK", "WORLD_SIZE"} & set(os.environ)
