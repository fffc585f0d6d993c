"""hardware= profiles, precision and compile: what this machine cannot run stops before training with one line naming
the fix; what it can (bf16-mixed and compile on the CPU) trains; a Hydra job leaves no DDP state to the next."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.pytorch.strategies.launchers import subprocess_script

from rnnlab import hardware
from rnnlab.errors import ConfigError
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


def test_bf16_mixed_trains_the_lm_on_the_cpu(make_cfg):
    full = train(make_cfg(*FAST))
    mixed = train(make_cfg(*FAST, "trainer.precision=bf16-mixed"))
    # the same fit with bfloat16 matmuls: close to, not equal to, float32
    assert mixed["val/loss"] == pytest.approx(full["val/loss"], abs=0.05)
    assert mixed["val/loss"] != full["val/loss"]


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
