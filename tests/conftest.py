"""Compose the real configs (Hydra compose API) exactly as train.py does, into a temporary tree; start processes
that the test owns (`owned_process`, `run_owned`) and fail a test that leaves one running."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import rnnlab.config  # noqa: F401  (registers ${project_root:})

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small enough for a fit in seconds on 2 cores, big enough that the loss visibly falls.
TINY = [
    "data.train_tokens=24000", "data.val_tokens=4000", "data.test_tokens=4000",
    "data.batch_size=16", "data.eval_batch_size=8", "data.bptt=32",
    "model.embedding_size=32", "model.hidden_size=64", "model.num_layers=1",
    "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "+trainer.enable_model_summary=false",
]


def compose_train(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The composed train config, with HydraConfig set so ${hydra:...} resolves, writing to tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # as in a real run: train() receives the job config without the hydra node
    return cfg


# --- MLflow stores ---------------------------------------------------------------------------------------------
_store_template: Path | None = None


def new_store(db: Path) -> str:
    """The URI of a new, empty MLflow sqlite store at `db` (unless one is there): a copy of one made once per
    session. Creating a store runs MLflow's schema migrations, 2-5 s that every test training with MLflow paid
    (over a minute of the suite); the copy is the same empty store. Tests about creating a store make their own."""
    global _store_template
    if _store_template is None:
        from rnnlab.tracking.mlflow_store import ensure_store

        template = Path(tempfile.mkdtemp(prefix="rnnlab-test-store-")) / "mlflow.db"
        ensure_store(f"sqlite:///{template}")
        _store_template = template
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        shutil.copyfile(_store_template, db)
    return f"sqlite:///{db}"


def pytest_unconfigure(config):
    if _store_template is not None:
        shutil.rmtree(_store_template.parent, ignore_errors=True)


def tracked_fit(overrides: list[str], tmp_path: Path) -> dict:
    """train.py's work for `overrides` into a fresh sqlite store under tmp_path: the config, the final metrics,
    the one MLflow run (run_id, tags), the store (uri, client) and the run's directory."""
    import mlflow

    from rnnlab.training import train

    uri = new_store(tmp_path / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = compose_train(overrides, tmp_path)
        metrics = train(cfg)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {"cfg": cfg, "metrics": metrics, "run_id": run.info.run_id, "tags": run.data.tags, "uri": uri,
            "client": client, "dir": tmp_path / "run"}


@pytest.fixture
def make_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_store(tmp_path / "mlflow.db"))

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_train([*(TINY if tiny else []), *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def one_thread():
    """Tensors this small gain nothing from intra-op threads, and on a busy 2-core machine the threads'
    synchronisation made tests ~10× slower. Use with pytestmark = pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- processes: a test owns what it starts ---------------------------------------------------------------------
@contextmanager
def owned_process(command: Sequence[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
    """subprocess.Popen in a process group of its own, killed whole (SIGKILL) when the block ends, however it ends:
    a failed assertion or a timeout never leaves a sweep and its jobs running."""
    process = subprocess.Popen(command, start_new_session=True, **popen_kwargs)
    try:
        yield process
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass
    process.wait()
    deadline = time.monotonic() + 10  # SIGKILL is sent, not yet done: on a loaded machine a member may run on a while
    while _in_groups({process.pid}) and time.monotonic() < deadline:
        time.sleep(0.01)
    for stream in (process.stdout, process.stderr, process.stdin):
        if stream is not None:
            stream.close()


def run_owned(command: Sequence[str], *, timeout: float, input: str | None = None,
              **popen_kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(command, capture_output=True, text=True, timeout=timeout), except that a timeout kills the
    command's whole process group (subprocess.run kills the command alone, leaving its children running)."""
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    with owned_process(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       **popen_kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"{' '.join(map(str, command))[:300]} ran past {timeout} s; killed its process group. "
                        f"Its stderr so far: {(expired.stderr or b'')[-2000:]!r}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


# Processes that live as long as the test process by design, started by a library on first use.
LONG_LIVED = ("torch/_inductor/compile_worker", "multiprocessing.resource_tracker", "multiprocessing.forkserver")
PR_SET_CHILD_SUBREAPER = 36
_module_baseline: dict[str, set[int]] = {}  # module → the processes running before its first test's setup
_fixture_groups: set[int] = set()  # process groups that a module's fixture owns, e.g. a server a test restarts


def owned_by_fixture(process: subprocess.Popen) -> None:
    """Let `process` (started with start_new_session=True) and its group outlive the test that started it: a
    module-scoped fixture owns it and stops it by the end of the module, which is checked."""
    _fixture_groups.add(os.getpgid(process.pid))


def pytest_configure(config):
    """Make this process adopt its orphaned descendants (Linux): a grandchild whose parent died (a sweep's job
    after its killed sweep) then still shows up below, instead of running on unseen under init.

    And give SIGINT its usual meaning here and in every process a test starts. A shell starts a background job
    (`make test &`, a CI runner's script) with SIGINT ignored, and an ignored signal stays ignored across fork
    and exec: a sweep started by a test then cannot be interrupted as a user's Ctrl-C interrupts it, and
    test_ctrl_c_ends_the_parent_killed waits in vain. A handler (unlike SIG_IGN) is reset to the default at exec."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per CPU (pytest-xdist)
        # a core each: two workers each running torch's default of one thread per core made four threads on two
        # cores, whose synchronisation slows tensors this small (see one_thread); the processes tests start inherit it
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _running_descendants() -> dict[int, str]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if not any(marker in command for marker in LONG_LIVED):
            found[child.pid] = command
    return found


# No process outlives what started it: what a test's body starts must be gone when the test is torn down, and
# what a fixture starts (a module's server) when the fixture's scope ends. Otherwise the test fails, and what it
# left is killed, so that it cannot slow or disturb the tests after it.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    _module_baseline.setdefault(item.module.__name__, set(_running_descendants()))
    item.stash[_BEFORE_CALL] = set(_running_descendants())  # replaced when the test's body starts
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    item.stash[_BEFORE_CALL] = set(_running_descendants())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    allowed = item.stash.get(_BEFORE_CALL, set()) | _in_groups(_fixture_groups)
    if nextitem is None or nextitem.module is not item.module:  # the module's fixtures have been torn down
        allowed = _module_baseline.pop(item.module.__name__, set())
        _fixture_groups.clear()
    deadline = time.monotonic() + 10  # a grace for processes still exiting
    while (left := {pid: cmd for pid, cmd in _running_descendants().items() if pid not in allowed}) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        for pid in left:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        listing = "; ".join(f"{pid}: {command[:200]}" for pid, command in left.items())
        pytest.fail(f"{item.nodeid} left {len(left)} process(es) running (killed now): {listing}", pytrace=False)
    return result


def _in_groups(groups: set[int]) -> set[int]:
    members = set()
    for pid in _running_descendants():
        try:
            if os.getpgid(pid) in groups:
                members.add(pid)
        except ProcessLookupError:
            pass
    return members


_BEFORE_CALL = pytest.StashKey[set]()
