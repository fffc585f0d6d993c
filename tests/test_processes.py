"""The suite's own process hygiene (conftest.py): a command that outlives its timeout is killed with everything it
started, and a process orphaned by its parent is still seen, so that the suite-wide check can fail its test."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest
from conftest import _running_descendants, run_owned

# a shell that starts a grandchild in the background and then waits itself
SHELL_AND_GRANDCHILD = ["sh", "-c", "sleep 300 & exec sleep 301"]


def sleepers() -> list[str]:
    return [command for command in _running_descendants().values() if command.startswith("sleep 30")]


def test_a_timeout_kills_the_command_and_what_it_started():
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"ran past 1 s; killed its process group"):
        run_owned(SHELL_AND_GRANDCHILD, timeout=1)
    assert time.monotonic() - started < 30
    assert sleepers() == []


def test_an_orphaned_grandchild_is_still_a_descendant():
    """Its parent exits at once; the grandchild is adopted by this process (a child subreaper), not by init."""
    if not sys.platform.startswith("linux"):
        pytest.skip("child subreapers are Linux's")
    subprocess.run(["sh", "-c", "sleep 302 >/dev/null 2>&1 &"], check=True, timeout=30)  # not run_owned: no kill
    deadline = time.monotonic() + 10  # until sh's background child has become `sleep 302`
    while not (orphans := [pid for pid, cmd in _running_descendants().items() if cmd == "sleep 302"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in orphans:
        psutil.Process(pid).kill()
    assert len(orphans) == 1
