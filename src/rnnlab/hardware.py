"""Where a run computes: the `hardware=` profiles (conf/hardware/, Lightning Trainer arguments), `precision`,
`compile`, and data-parallel (DDP) runs inside Hydra jobs.

`check` turns combinations that would fail late, or silently run elsewhere, into one-line errors naming the fix:
a GPU profile without CUDA, mps without MPS, trainer.precision=16-mixed on the CPU, bf16-mixed on a CPU whose
oneDNN cannot run the configured cell in bfloat16 (probed once), ddp_multinode outside a SLURM allocation (or sized
unlike it), compile=true without a C++ compiler, DDP under the joblib launcher.

DDP in a Hydra job. Lightning starts ranks 1..N-1 of a single-node DDP run by running the script again with
sys.argv. In a sweep sys.argv is the whole sweep (`-m model=rnn,gru ...`): rank 1 would run a sweep of its own,
with other hyperparameters than rank 0 (under a sampling sweeper, silently) and into other directories, and the
variables the launch leaves behind (LOCAL_RANK, MASTER_PORT, ...) make the next job in the same process wait for
ranks nobody starts. So for every job (`job_scope`, around train() in train.py):
  - ranks 1.. run the job's own overrides in the job's run directory (`job_command`, in place of Lightning's
    `_hydra_subprocess_cmd`);
  - afterwards the process group is destroyed and the launch variables are put back as they were.
Under hydra/launcher=joblib the jobs run in joblib's worker processes, from which neither ddp nor ddp_spawn can
start ranks: refused. `ProcessReport` logs each process's rank and a digest of its resolved config, so that
"every rank trains the same thing" can be checked in the run's logs (train.log, <job>_ddp_process_<k>.log).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lightning.pytorch as L
import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd, to_absolute_path
from lightning.pytorch.strategies.launchers import subprocess_script
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.nn.recurrent import CELLS, UNPACKED_MIN_STEPS, recurrent_layer

log = logging.getLogger(__name__)

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "64-true")
# what Lightning's launch and process-group setup write into os.environ
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra overrides that a rank of the job sets for itself (job_command); it repeats the others, the sweeper's
# included (a job may read its sweeper's settings, e.g. the Optuna study of rnnlab.search.pruning)
RANK_KEYS = ("hydra.mode", "hydra.run", "hydra.job.name", "hydra.output_subdir")
CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


# --- checks ---------------------------------------------------------------------------------------------------
def check(cfg: DictConfig) -> None:
    """Raise ConfigError for a hardware, precision, compile or launcher setting this machine cannot honour."""
    trainer = cfg.trainer
    choices = _choices()
    profile = f"hardware={choices['hardware']}" if "hardware" in choices else "this trainer"
    if choices.get("hydra/launcher") == "joblib" and is_distributed(trainer):
        raise ConfigError(f"{profile} starts several processes per job, which joblib's workers cannot: run the "
                          f"sweep without hydra/launcher=joblib (jobs one after another) or use hardware=cpu with it")
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=gpu but no CUDA device is visible "
                          "(torch.cuda.is_available() is False): use hardware=cpu or hardware=ddp_cpu")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps but MPS is not available here: use hardware=cpu")
    _check_precision(str(trainer.get("precision", "32-true")), accelerator, cfg.model)
    if int(trainer.get("num_nodes", 1)) > 1 or choices.get("hardware") == "ddp_multinode":
        _check_slurm(trainer, profile)
    _check_compile(cfg, accelerator)


def is_distributed(trainer: DictConfig) -> bool:
    """Whether these Trainer arguments start more than one process."""
    devices = trainer.get("devices", 1)
    many_devices = (devices == -1 or (isinstance(devices, int) and devices > 1)
                    or (isinstance(devices, str) and devices not in ("auto", "1"))
                    or (not isinstance(devices, (int, str)) and len(devices) > 1))
    strategy = str(trainer.get("strategy", "auto"))
    return many_devices or int(trainer.get("num_nodes", 1)) > 1 or "ddp" in strategy


def _check_precision(precision: str, accelerator: str, model: DictConfig) -> None:
    precision = {"32": "32-true", "64": "64-true"}.get(precision, precision)
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision} is not supported here: use 32-true, bf16-mixed or "
                          f"16-mixed (pure half precision is untested here and fragile over long sequences)")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if precision == "16-mixed" and on_cpu:
        raise ConfigError("trainer.precision=16-mixed needs a GPU (CPU autocast is bfloat16): use "
                          "trainer.precision=bf16-mixed or 32-true on the CPU")
    if precision == "bf16-mixed" and accelerator in ("gpu", "cuda") and not torch.cuda.is_bf16_supported():
        raise ConfigError("trainer.precision=bf16-mixed but this GPU has no bfloat16 (it needs Ampere or later): "
                          "use trainer.precision=16-mixed")
    if precision == "bf16-mixed" and on_cpu and model.get("cell") in CELLS:
        _check_cpu_bf16_cells(model)


def _check_cpu_bf16_cells(model: DictConfig) -> None:
    """Some CPUs cannot run torch's fused cells in bfloat16: on an AVX2-only AMD EPYC, oneDNN has no bf16 LSTM
    ("could not create a primitive descriptor for the LSTM forward propagation primitive", mid-fit). Ask once."""
    cell, backend = str(model.cell), str(model.get("backend", "fused"))
    nonlinearity, bidirectional = str(model.get("nonlinearity", "tanh")), bool(model.get("bidirectional", False))
    failure = cpu_bf16_failure(cell, backend, nonlinearity, bidirectional)
    if failure is None:
        return
    fixes = "use trainer.precision=32-true"
    if backend == "fused" and cpu_bf16_failure(cell, "scratch", nonlinearity, bidirectional) is None:
        fixes += " or model.backend=scratch (its recurrence runs in float32 under bf16-mixed)"
    raise ConfigError(f"trainer.precision=bf16-mixed: this CPU cannot run the {backend} {cell} in bfloat16 "
                      f"({failure}): {fixes}")


@functools.cache
def cpu_bf16_failure(cell: str, backend: str, nonlinearity: str = "tanh", bidirectional: bool = False) -> str | None:
    """Why this CPU cannot run a `cell` layer of `backend` forward and backward under bfloat16 autocast, as a fit
    with trainer.precision=bf16-mixed would (padded batches included), or None when it can. A few milliseconds."""
    with torch.random.fork_rng(devices=[]):  # the run's own random state stays as it was
        torch.manual_seed(0)
        layer = recurrent_layer(cell, 4, 8, bidirectional=bidirectional, nonlinearity=nonlinearity, backend=backend)
        # long enough for the unpacked path of taggers and classifiers (final=False, nn/recurrent.py), run too
        steps = max(UNPACKED_MIN_STEPS.values())
        inputs, padded = torch.randn(2, steps, 4), torch.tensor([steps, 2])
        try:
            for lengths, final in ((None, True), (padded, True), (padded, False)):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    outputs, _ = layer(inputs, lengths=lengths, final=final)
                outputs.float().sum().backward()
        except RuntimeError as error:
            # oneDNN's message goes on with ". Run workload with environment variable ONEDNN_VERBOSE=..."
            return str(error).strip().split(". ")[0].splitlines()[0] or type(error).__name__
    return None


def _check_slurm(trainer: DictConfig, profile: str) -> None:
    """A multi-node run's processes are SLURM's tasks: the allocation must be there and sized like the trainer."""
    if "SLURM_NTASKS" not in os.environ:
        raise ConfigError(f"{profile} runs inside a SLURM allocation (one task per GPU): submit it with "
                          f"hydra/launcher=slurm (python train.py -m {profile} hydra/launcher=slurm ...) "
                          f"or start it with srun")
    for key, variable in (("num_nodes", "SLURM_NNODES"), ("devices", "SLURM_NTASKS_PER_NODE")):
        slurm = os.environ.get(variable, "").split("(")[0]  # "4(x2)": 4 tasks on each of 2 nodes
        if slurm.isdigit() and int(trainer.get(key, 1)) != int(slurm):
            raise ConfigError(f"trainer.{key}={trainer.get(key, 1)} but the SLURM allocation has {variable}={slurm}: "
                              f"set trainer.{key}={slurm} (or allocate to match)")


def _check_compile(cfg: DictConfig, accelerator: str) -> None:
    switch = cfg.get("compile", False)
    if not isinstance(switch, bool):
        raise ConfigError(f"compile={switch!r} is invalid: true (torch.compile the network) or false")
    if not switch:
        return
    if not registry.trains(cfg.model):
        raise ConfigError(f"compile=true has nothing to compile for model={registry.family(cfg.model)} (counted, not "
                          f"trained): set compile=false")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    compilers = [os.environ.get("CXX"), "g++", "clang++"]
    if on_cpu and not any(compiler and shutil.which(compiler) for compiler in compilers):
        raise ConfigError("compile=true on the CPU needs a C++ compiler for torch.compile's generated kernels and "
                          "none was found (g++, clang++ or $CXX): install one or set compile=false")


def _choices() -> dict[str, str]:
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


# --- compile --------------------------------------------------------------------------------------------------
def compile_model(task: L.LightningModule, cfg: DictConfig) -> None:
    """compile=true: torch.compile the task's network in place. Its parameter names stay as they were, so a
    checkpoint loads with or without compile; the first steps of each new shape are slow while it compiles."""
    if cfg.get("compile", False):
        task.model.compile()


# --- DDP inside Hydra jobs ------------------------------------------------------------------------------------
@contextmanager
def job_scope() -> Iterator[None]:
    """Run one Hydra job: its DDP ranks start with `job_command`; after it, no process group or launch
    variable of it is left for the next job in this process."""
    saved = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
    subprocess_script._hydra_subprocess_cmd = job_command  # Lightning's launcher looks it up at each launch
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def job_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working directory that start rank local_rank of the current Hydra job: the script, its
    config flags, the job's overrides (not sys.argv, which in a sweep holds the sweep) and its run directory."""
    import __main__

    hydra = HydraConfig.get()
    if __main__.__spec__ is None:
        script = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        script = [sys.executable, "-m", __main__.__spec__.name]
    job_hydra = [override for override in hydra.overrides.hydra if not _sets_rank_key(override)]
    # mode=RUN: a preset may make the job's config a multirun (hparams_search sets hydra.mode: MULTIRUN)
    return [*script, *_config_flags(sys.argv[1:]), *hydra.overrides.task, *job_hydra, "hydra.mode=RUN",
            f'hydra.run.dir="{hydra.runtime.output_dir}"', f"hydra.job.name={hydra.job.name}_ddp_process_{local_rank}",
            "hydra.output_subdir=null"], get_original_cwd()  # output_subdir: rank 0 alone writes .hydra/


def _sets_rank_key(override: str) -> bool:
    key = override.lstrip("~+").split("=", 1)[0]
    return any(key == own or key.startswith(f"{own}.") for own in RANK_KEYS)


def _config_flags(argv: Sequence[str]) -> list[str]:
    """Hydra's --config-path/--config-name/--config-dir flags (and their values) from argv."""
    flags = []
    for i, arg in enumerate(argv):
        if arg in CONFIG_FLAGS and i + 1 < len(argv):
            flags += [arg, argv[i + 1]]
        elif arg.split("=", 1)[0] in CONFIG_FLAGS:
            flags.append(arg)
    return flags


class ProcessReport(L.Callback):
    """Logs, once per process and after DDP has set the ranks: `process 1 of 2: config sha256 <digest>`, the
    digest of the resolved config this process trains with."""

    def __init__(self, cfg: DictConfig):
        resolved = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
        self.digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
        self.reported = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size > 1 and not self.reported:
            log.info("process %d of %d: config sha256 %s", trainer.global_rank, trainer.world_size, self.digest)
            self.reported = True
