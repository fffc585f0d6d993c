"""The compiled LSTM gate math (csrc/lstm_pointwise.cpp), built on first use with torch's C++ extension loader.

`lstm_pointwise()` returns the loaded module, or None where it cannot be had — then rnnlab/nn/bptt.py runs the
same equations as torch ops (slower, identical within float rounding). The build takes ~30 s once per torch
installation (each virtualenv builds its own), then loads from torch's extension cache (`TORCH_EXTENSIONS_DIR`,
default ~/.cache/torch_extensions) in about a second; concurrent processes wait on the first one's build.
It needs a C++ compiler (g++ or clang) and ninja (a dependency of rnnlab). `RNNLAB_KERNELS=0` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "csrc" / "lstm_pointwise.cpp"
STALE_LOCK_SECONDS = 600  # a build takes ~30 s


def build_name() -> str:
    """The extension's name: it carries a hash of the source, so an edited kernel is rebuilt, not a stale one loaded,
    and of the torch it builds against — two virtualenvs (two clones) share torch's cache directory, and under one
    name each rebuilt the other's build (~45 s) at its first scratch LSTM, every time they alternated."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(f"{torch.__version__} {Path(torch.__file__).parent}".encode())
    return "rnnlab_lstm_pointwise_" + digest.hexdigest()[:12]


def enabled() -> bool:
    return os.environ.get("RNNLAB_KERNELS", "1") != "0"


@functools.cache
def lstm_pointwise() -> ModuleType | None:
    if not enabled():
        return None
    try:
        import ninja  # the pip package's binary, found even when the venv's bin/ is not on PATH

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        log.warning("no C++ compiler (%s) found: the scratch LSTM runs its gate math as torch ops, ~10-15 %% "
                    "slower (install g++, or set CXX)", compiler)
        return None
    from torch.utils import cpp_extension

    name = build_name()
    started = time.perf_counter()
    try:
        # torch serialises concurrent builds with a lock file in the build directory; a build killed midway
        # leaves it behind, and every later process would wait on it forever
        lock = Path(cpp_extension._get_build_directory(name, verbose=False)) / "lock"
        if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
            log.warning("removing %s, left by a build that did not finish", lock)
            lock.unlink(missing_ok=True)
        module = cpp_extension.load(name, [str(SOURCE)], extra_cflags=["-O3", "-ffast-math", "-fopenmp"],
                                    extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # a compiler that fails, a read-only cache, ...: the torch-op path still works
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning("building the scratch LSTM's compiled gate math failed (%s): running it as torch ops, "
                    "~10-15 %% slower (RNNLAB_KERNELS=0 silences this)", first_line)
        return None
    seconds = time.perf_counter() - started
    if seconds > 5:
        log.info("built the scratch LSTM's compiled gate math in %.0f s (once; cached by torch)", seconds)
    return module


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the compiled path takes these tensors: CPU, float32/float64, no autocast dtype mixing."""
    first = tensors[0]
    return (first.device.type == "cpu" and first.dtype in (torch.float32, torch.float64)
            and all(t.device == first.device and t.dtype == first.dtype for t in tensors))
