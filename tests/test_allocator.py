"""allocator=retain keeps freed memory in the process (rnnlab/allocator.py): fewer page faults, never over a
choice the environment made, nothing where glibc is absent."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab import allocator
from rnnlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# A training step's pattern: tensors of 64, 12 and 32 MiB (above glibc's largest dynamic mmap threshold, 32 MiB, and
# below it) allocated, filled and freed out of order, 16 times after allocator.configure(setting); the page faults
# of each round. (glibc's memalign places a block just freed a little too small for the next request of its
# size, so under retain the heap grows for a few rounds before freed blocks serve every request.)
STEPS = """
import json, resource, sys, torch
from rnnlab import allocator
in_effect = allocator.configure(sys.argv[1])
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(16 << 20).fill_(1.0); b = torch.empty(3 << 20).fill_(1.0); del a
    c = torch.empty(8 << 20).fill_(1.0); del b, c
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults, "in_effect": in_effect}))
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="allocator=retain applies to glibc only")


def steps(setting: str, **environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD",
                                                                                          "GLIBC_TUNABLES")}
    result = subprocess.run([sys.executable, "-c", STEPS, setting], env={**env, **environment, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


@glibc
def test_retain_reuses_freed_memory_where_system_malloc_returns_it_to_the_kernel():
    system, retain = steps("system"), steps("retain")
    assert system["in_effect"] == "system" and retain["in_effect"].startswith("retain (glibc mallopt")
    # the last 8 rounds. system: the 64 MiB block is a fresh mmap every round, zero-filled by the kernel page by
    # page (fewer faults with transparent huge pages, still at least one per round); retain: freed memory serves
    # every request, no page is new
    system_faults, retain_faults = sum(system["faults"][8:]), sum(retain["faults"][8:])
    assert system_faults >= 8
    assert retain_faults * 20 < system_faults, (system["faults"], retain["faults"])


class FakeLibc:
    def __init__(self, answer: int = 1):
        self.calls, self.answer = [], answer

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


@pytest.fixture
def fresh(monkeypatch):
    """A process in which configure() has not run yet, with no allocator settings in the environment."""
    monkeypatch.setattr(allocator, "_applied", None)
    for name in (*allocator.ENVIRONMENT, "LD_PRELOAD", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    return libc


def test_retain_sets_the_three_glibc_options(fresh):
    assert allocator.configure("retain").startswith("retain (glibc mallopt: M_MMAP_THRESHOLD=1073741824")
    assert sorted(fresh.calls) == sorted(allocator.RETAIN.values())
    assert all(0 < value < 2 ** 31 for _, value in fresh.calls)  # mallopt takes an int


def test_malloc_settings_the_environment_chose_are_left_alone(fresh, monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert allocator.configure("retain") == "system (MALLOC_TOP_PAD_ set: the environment chose malloc's settings)"
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert allocator.configure("retain").startswith("system (GLIBC_TUNABLES set")
    assert fresh.calls == []


def test_another_preloaded_malloc_is_left_alone(fresh, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert allocator.configure("retain") == ("system (LD_PRELOAD libjemalloc.so.2: the environment chose the "
                                             "allocator)")
    assert fresh.calls == []


def test_without_glibc_retain_changes_nothing_and_says_so(fresh, monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.configure("retain").startswith("system (allocator=retain applies to glibc only")


def test_a_refused_option_is_reported(fresh):
    fresh.answer = 0
    assert allocator.configure("retain") == ("system (glibc's mallopt refused M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, "
                                             "M_TOP_PAD)")


def test_system_after_retain_in_one_process_warns_that_retain_stays(fresh, caplog):
    allocator.configure("retain")
    assert allocator.configure("system").startswith("retain")
    assert "already set allocator=retain" in caplog.text
    assert len(fresh.calls) == 3  # applied once


def test_an_unknown_setting_is_a_one_line_error(fresh):
    message = (r"^allocator='jemalloc' is invalid: choose one of retain, system \(another malloc, such as jemalloc, is "
               r"chosen by LD_PRELOAD, which allocator=retain leaves alone\)$")
    with pytest.raises(ConfigError, match=message):
        allocator.configure("jemalloc")


ENTRIES = ["eval", "generate", "translate", "tag", "classify", "caption"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_script_that_loads_a_checkpoint_applies_its_allocator_key_first(entry, fresh, monkeypatch):
    """Decoding frees and allocates the same tensors every step, as training does: each script's allocator key
    (default retain, as train.py's) is in effect before its checkpoint is even looked up; a bad one is one line."""
    import importlib.util

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnlab import cli, evaluation, generation

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(entry, overrides=["ckpt=no_such_run"])
    GlobalHydra.instance().clear()
    assert cfg.allocator == "retain"

    def look_up(*args, **kwargs):  # stands for the checkpoint's lookup: what mallopt had been told by then
        raise LookupError(list(fresh.calls))

    monkeypatch.setattr(evaluation, "resolve_checkpoint", look_up)
    monkeypatch.setattr(generation, "load_checkpoint", look_up)
    monkeypatch.setattr("rnnlab.checkpoints.resolve_checkpoint", look_up)  # cli.load_task imports it when called
    if entry == "eval":
        run = evaluation.evaluate
    elif entry == "generate":  # generate.py's own main, without Hydra's command line around it
        spec = importlib.util.spec_from_file_location("generate_script", ROOT / "generate.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        run = script.main.__wrapped__
    else:
        run = lambda cfg: cli.load_task(object, cfg)  # noqa: E731  (translate, tag, classify, caption.py load so)
    with pytest.raises(LookupError) as looked_up:
        run(cfg)
    assert sorted(looked_up.value.args[0]) == sorted(allocator.RETAIN.values())

    monkeypatch.setattr(allocator, "_applied", None)
    cfg.allocator = "jemalloc"
    with pytest.raises(ConfigError, match="^allocator='jemalloc' is invalid"):  # each script: a one-line error
        allocator.configure_from(cfg)
