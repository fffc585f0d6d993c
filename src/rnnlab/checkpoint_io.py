"""How checkpoints reach the disk and come back: never half-written, and read back as data, never as code.

Writing. Lightning's TorchCheckpointIO serialises to memory and lets fsspec move a temporary file from the
system's temp directory onto the target: across file systems that move is a copy, so a crash, a kill or a
full disk in the middle leaves a truncated file where the good checkpoint was, and nothing is fsynced.
AtomicCheckpointIO writes `.<name>.<random>.tmp` in the checkpoint's own directory, fsyncs it, and only
then renames it over the target (os.replace is atomic within one file system) and fsyncs the directory:
at every instant the target is either the old complete checkpoint or the new complete one. A failed write
(ENOSPC, EACCES, ...) removes its temporary file and stops training with one line saying what was kept.

Reading. `load` is torch.load(weights_only=True): tensors and plain containers only, so a checkpoint
holding a pickled object (which could run code when unpickled) is refused with a message saying so, and
a truncated or corrupted file is named as such. Everything train.py saves is plain data by construction.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from rnnlab.errors import ConfigError, TrainingStopped


class AtomicCheckpointIO(TorchCheckpointIO):
    """The trainer's checkpoint writer and reader (Trainer(plugins=[AtomicCheckpointIO()]))."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda file: torch.save(checkpoint, file))
        except OSError as error:
            kept = f"the previous {path.name} is untouched" if path.exists() else "no earlier checkpoint existed"
            run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            raise TrainingStopped(f"could not write the checkpoint {path}: {_reason(error)}; {kept}. "
                                  f"{_remedy(error)}, then continue with: python train.py resume={run_dir}") from None

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # weights_only is always True here, whatever the caller asks: a checkpoint is data
        return load(Path(path), f"checkpoint {path}", map_location or "cpu")


def write_atomically(path: Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, make it durable, then rename it over `path`."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself survives a power loss only once the directory entry is on disk
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path, what: str, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint at `path` as plain data, or a one-line ConfigError starting with `what` (e.g. "ckpt=...")."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"{what}: {path} cannot be read: {_reason(error)}") from None
    except Exception as error:
        # the restricted unpickler names the first class or function the file would import
        found = re.search(r"GLOBAL ([\w.]+)", str(error)) if isinstance(error, pickle.UnpicklingError) else None
        if found:
            raise ConfigError(f"{what}: {path} holds a pickled Python object ({found.group(1)}), not only tensors "
                              f"and plain data, so it is refused (checkpoints are read with "
                              f"torch.load(weights_only=True); train.py never writes such objects, and unpickling "
                              f"them can run code: load checkpoints only from people you trust)") from None
        # torch's zip reader and unpickler fail in many ways on a damaged file
        detail = next((line for line in str(error).splitlines()[::-1] if line.strip() and "documentation" not in line),
                      type(error).__name__).split(". ")[0]
        raise ConfigError(f"{what}: {path} is not a checkpoint torch can read: truncated, corrupted or another "
                          f"kind of file ({detail}); use another checkpoint, e.g. the best one beside it") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{what}: {path} holds no model weights (state_dict); give a .ckpt file that "
                          f"train.py wrote")
    return checkpoint


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _remedy(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some space"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Make the checkpoint directory writable"
    return "Fix the cause"


def trainer_plugins(trainer_cfg) -> list[Any]:
    """Trainer(plugins=...): the configured ones (e.g. hardware=slurm's cluster environment) and ours."""
    from hydra.utils import instantiate

    return [*(instantiate(plugin) for plugin in trainer_cfg.get("plugins") or []), AtomicCheckpointIO()]
