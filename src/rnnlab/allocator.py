"""`allocator=`: how the C heap under torch's CPU tensors returns memory to the kernel (conf/train.yaml).

torch allocates a CPU tensor with malloc. glibc's malloc serves a block above its mmap threshold (128 KiB at
start, raised as such blocks are freed, to at most 32 MiB) with a fresh mmap and unmaps it on free, and it gives
the top of the heap back to the kernel once more than twice that threshold is free there. A training step frees
and allocates the same large tensors every step (logits, their gradient, activations, weight gradients), so the
kernel unmaps them, then zero-fills new pages on the next touch: on the word LM of experiments/peers (2 × 200 LSTM,
a 10.8k vocabulary, batch 20 × 35) about 20 000 page faults per step and a sixth of the process time in the kernel.

    retain   (default) keep freed memory in the process: mallopt(M_MMAP_THRESHOLD, 1 GiB) (no block below it is
             mmapped), M_TRIM_THRESHOLD 2 GiB (free memory at the heap's top stays), M_TOP_PAD 64 MiB (the heap grows
             in larger steps). The process's peak memory stays reserved until it exits; a training process
             reaches its peak every step anyway.
    system   leave malloc as the platform set it.

It is set with mallopt at run time (the MALLOC_*_ variables are read only at process start, too late for a run
that is already Python), and only where it applies: with glibc, and unless the environment chose for itself: any
MALLOC_* / GLIBC_TUNABLES malloc setting, or another malloc preloaded (LD_PRELOAD of jemalloc, tcmalloc,
mimalloc) is left as the user set it. Elsewhere (macOS, musl) `retain` changes nothing and says so in the log.
Measured in experiments/peers/README.md ("The allocator").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

SETTINGS = ("retain", "system")

# glibc's malloc.h; mallopt takes an int, so 2 GiB - 1 is the largest value it can be given
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
RETAIN = {"M_MMAP_THRESHOLD": (M_MMAP_THRESHOLD, 1 << 30), "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, (1 << 31) - 1),
          "M_TOP_PAD": (M_TOP_PAD, 64 << 20)}
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
               "MALLOC_ARENA_MAX")

_applied: str | None = None  # set once retain is applied in this process: mallopt cannot be undone


def configure_from(cfg) -> str:
    """The `allocator` key of a run's or a script's config (train.py and every script that loads a checkpoint: a
    decoding step, too, frees and allocates the same large tensors every step); retain where a config lacks it."""
    return configure(cfg.get("allocator", "retain"))


def configure(setting: str = "retain") -> str:
    """Apply `setting` to this process's malloc; returns (and logs) what is in effect."""
    global _applied
    if setting not in SETTINGS:
        raise ConfigError(f"allocator={setting!r} is invalid: choose one of {', '.join(SETTINGS)} (another malloc, "
                          f"such as jemalloc, is chosen by LD_PRELOAD, which allocator=retain leaves alone)")
    if _applied is not None:
        if setting == "system":
            log.warning("allocator=system: this process already set allocator=retain, which stays in effect "
                        "(mallopt cannot be undone); run it in a new process")
        return _applied
    in_effect = setting if setting == "system" else _retain()
    log.info("allocator: %s", in_effect)
    if in_effect.startswith("retain"):
        _applied = in_effect
    return in_effect


def _retain() -> str:
    """`retain` where it applies, else what is in effect instead (and why)."""
    preloaded = [os.path.basename(path) for path in os.environ.get("LD_PRELOAD", "").replace(":", " ").split()
                 if "malloc" in os.path.basename(path)]
    if preloaded:
        return f"system (LD_PRELOAD {' '.join(preloaded)}: the environment chose the allocator)"
    chosen = [name for name in ENVIRONMENT if name in os.environ]
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        return f"system ({', '.join(chosen)} set: the environment chose malloc's settings)"
    libc = _glibc()
    if libc is None:
        return f"system (allocator=retain applies to glibc only, and this is {platform.system()} " \
               f"{platform.libc_ver()[0] or 'without glibc'})"
    refused = [name for name, (option, value) in RETAIN.items() if libc.mallopt(option, value) != 1]
    if refused:
        return f"system (glibc's mallopt refused {', '.join(refused)})"
    return "retain (glibc mallopt: " + ", ".join(f"{name}={value}" for name, (_, value) in RETAIN.items()) + ")"


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return libc
