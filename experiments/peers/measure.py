"""The peers study's measurements, each a subcommand printing one JSON line per measurement and then its summary
(medians, the rnnlab / peer ratio, the per-pair ratios). Systems alternate A/B/A/B in one run so drift in the
machine's speed hits both; every run is its own process (an allocator is chosen by its environment at start).

    python experiments/peers/measure.py train  [--pairs 3] [--steps 20] [--input-feeding on off]
    python experiments/peers/measure.py lm     [--pairs 3] [--steps 50]
    python experiments/peers/measure.py lm-epochs [--epochs 6]
    python experiments/peers/measure.py decode --rnnlab-ckpt CKPT --joeynmt-dir DIR [--sentences 1000]
    python experiments/peers/measure.py alloc  [--pairs 2] [--steps 20] [--workloads lm translation scratch]
    python experiments/peers/measure.py budget --minutes 30

Throughput (train, lm, alloc): every run trains N warm-up steps, then N timed steps, and reports target tokens per
wall-clock second (and per CPU second of its process). rnnlab times its steps with a callback (rnnlab_side.py);
JoeyNMT's log gives tokens/s per `logging_freq` = N steps (its second line is timed); main.py's log gives ms/batch
per `--log-interval` = N batches (its second line), then it is stopped. CPU seconds of a peer are read from
/proc/<pid>/stat as each of those log lines arrives. One thread each: OMP_NUM_THREADS=1 (set here unless given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from peers import (  # noqa: E402
    ALLOCATORS,
    EXAMPLE_DEFAULTS,
    RNNLAB_ONLY,
    SPLIT_FILES,
    allocator_env,
    detokenize,
    equal_time_points,
    example_lm_args,
    example_rates,
    example_valid_ppl,
    joeynmt_config,
    joeynmt_rates,
    ratio_summary,
    rnnlab_allocator,
    rnnlab_lm_overrides,
    rnnlab_translation_overrides,
    rnnlab_valid_ppl,
)

PYTHON = sys.executable
JOEYNMT_PYTHON = HERE / ".venv-joeynmt/bin/python"
EXAMPLE_DIR = ROOT.parent / "shared/peers/pytorch_examples_word_language_model"
SHARED_DATA = ROOT.parent / "shared/data/multi30k"
PREPARED = HERE / "runs/data"
WORK = HERE / "runs/work"


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def environment(allocator: str = "glibc", system: str = "rnnlab") -> dict[str, str]:
    if system != "rnnlab" and allocator in RNNLAB_ONLY:
        raise SystemExit(f"measure.py: allocator {allocator} is rnnlab's own setting; give the peer another "
                         f"(--peer-allocator)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "src")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    chosen = allocator_env(allocator)
    if chosen is None:
        raise SystemExit(f"measure.py: allocator {allocator} is not installed (apt-get install libjemalloc2 "
                         f"libtcmalloc-minimal4)")
    return {**env, **chosen}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream(command: list[str], env: dict, cwd: Path, wanted, count: int, log: Path) -> list[tuple[str, float, float]]:
    """Run command; for each output line that `wanted` accepts, note (line, wall time, CPU seconds so far); stop
    the process once `count` such lines came (it may end by itself before). The whole output goes to `log`."""
    seen: list[tuple[str, float, float]] = []
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        try:
            for line in process.stdout:
                out.write(line)
                if wanted(line) and len(seen) < count:
                    seen.append((line, time.perf_counter(), cpu_seconds(process.pid)))
                    if len(seen) == count:
                        break
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=120)
    if len(seen) < count:
        raise SystemExit(f"measure.py: {command[0]} ended after {len(seen)} of {count} progress lines; see {log}")
    return seen


# -- one measurement per system ------------------------------------------------------------------------


def rnnlab_rate(overrides: list[str], steps: int, env: dict) -> dict:
    command = [PYTHON, str(HERE / "rnnlab_side.py"), "rate", "--warmup", str(steps), "--steps", str(steps), "--",
               *overrides]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measure.py: rnnlab_side.py failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def joeynmt_rate(input_feeding: bool, steps: int, env: dict) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        config = joeynmt_config(PREPARED / "bpe", Path(tmp) / "model", input_feeding, updates=2 * steps,
                                logging_freq=steps)
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        lines = stream([str(JOEYNMT_PYTHON), "-m", "joeynmt", "train", str(Path(tmp) / "config.yaml"), "--skip-test"],
                       env, Path(tmp), lambda line: "Tokens per Sec" in line, 2, WORK / "joeynmt_last.log")
    (_, first_wall, first_cpu), (line, wall, cpu) = lines
    (_, rate), = joeynmt_rates(line)
    tokens = rate * (wall - first_wall)  # its rate over the interval, times the interval as seen from here
    return {"tokens_per_s": rate, "tokens_per_cpu_s": round(tokens / (cpu - first_cpu), 1), "steps": steps}


def example_rate(steps: int, env: dict) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    tokens_per_batch = EXAMPLE_DEFAULTS["batch_size"] * EXAMPLE_DEFAULTS["bptt"]
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        command = [PYTHON, "main.py", *example_lm_args(PREPARED / "lm", steps, save=Path(tmp) / "model.pt")]
        lines = stream(command, env, EXAMPLE_DIR, lambda line: "ms/batch" in line, 2, WORK / "example_last.log")
    (_, _, first_cpu), (line, _, cpu) = lines
    (_, rate), = example_rates(line, tokens_per_batch)
    return {"tokens_per_s": round(rate, 1), "tokens_per_cpu_s": round(steps * tokens_per_batch / (cpu - first_cpu), 1),
            "steps": steps}


def translation_overrides(input_feeding: bool) -> list[str]:
    return [*rnnlab_translation_overrides(SHARED_DATA, input_feeding), f"data.cache_dir={PREPARED / 'cache'}"]


def lm_overrides(scratch: bool = False) -> list[str]:
    overrides = [*rnnlab_lm_overrides(PREPARED / "lm"), f"data.cache_dir={PREPARED / 'vocab_cache'}"]
    return [*overrides, "model.backend=scratch"] if scratch else overrides


# -- the comparisons ------------------------------------------------------------------------------------


def alternate(name: str, systems: dict, pairs: int, settings: dict, against_first: bool = False) -> dict:
    """Run each system once per pair, in turn; emit every measurement and the summary; return the summary. Ratios
    are the first system over each other one, or (against_first: allocators over glibc's default) the reverse."""
    rates: dict[str, dict[str, list[float]]] = {system: {"tokens_per_s": [], "tokens_per_cpu_s": []}
                                                for system in systems}
    for pair in range(pairs):
        for system, measure in systems.items():
            result = measure()
            for key in rates[system]:
                rates[system][key].append(result[key])
            emit({"name": f"{name}/{system}", "pair": pair, **result, **settings})
    first, *others = systems
    summary = {}
    for other in others:
        ours, theirs = (other, first) if against_first else (first, other)
        for key in ("tokens_per_s", "tokens_per_cpu_s"):
            summary[f"{ours}_over_{theirs}/{key}"] = ratio_summary(rates[ours][key], rates[theirs][key])
            emit({"name": f"{name}/{ours}_over_{theirs}/{key}", **summary[f"{ours}_over_{theirs}/{key}"], **settings,
                  "unit": "ratio"})
    return summary


PEERS = {"translation": "joeynmt", "lm": "example"}
# each system's fastest allocator setting in `alloc` (README, "The allocator"): the comparisons' defaults; where a
# peer's library is absent, glibc's tunables stand in
BEST_ALLOCATOR = {"rnnlab": "retain", "example": "tcmalloc", "joeynmt": "glibc_tuned"}
STAND_IN = "glibc_tuned"


def runner(workload: str, system: str, steps: int, allocator: str = "glibc", input_feeding: bool = True):
    """A callable measuring one run of `system` (rnnlab or a peer's name) on `workload` (translation, lm, or scratch:
    the LM with rnnlab's scratch LSTM)."""
    env = environment(allocator, system)
    if system == "rnnlab":
        overrides = translation_overrides(input_feeding) if workload == "translation" else lm_overrides(
            scratch=workload == "scratch")
        return lambda: rnnlab_rate([*overrides, f"allocator={rnnlab_allocator(allocator)}"], steps, env)
    if system == "joeynmt":
        return lambda: joeynmt_rate(input_feeding, steps, env)
    return lambda: example_rate(steps, env)


def command_train(args) -> None:
    for input_feeding in args.input_feeding:
        on = input_feeding == "on"
        systems = {system: runner("translation", system, args.steps, allocator_of(args, system), on)
                   for system in ("rnnlab", "joeynmt")}
        alternate(f"translation_train_if_{input_feeding}", systems, args.pairs,
                  {"unit": "target tokens/s", **allocators(args, "joeynmt"), "input_feeding": on})


def command_lm(args) -> None:
    systems = {system: runner("lm", system, args.steps, allocator_of(args, system)) for system in ("rnnlab", "example")}
    emit({"name": "word_lm_train/settings", "example_defaults": EXAMPLE_DEFAULTS, "rnnlab_overrides": lm_overrides()})
    alternate("word_lm_train", systems, args.pairs, {"unit": "tokens/s", **allocators(args, "example")})


def allocator_of(args, system: str) -> str:
    """The setting `system` runs with: --allocator (rnnlab) / --peer-allocator, `best` = its BEST_ALLOCATOR."""
    chosen = args.allocator if system == "rnnlab" else args.peer_allocator
    return best_allocator(system) if chosen == "best" else chosen


def best_allocator(system: str) -> str:
    best = BEST_ALLOCATOR[system]
    return best if allocator_env(best) is not None else STAND_IN


def allocators(args, peer: str) -> dict[str, str]:
    """How the summaries name the settings: rnnlab's and the peer's."""
    return {"allocator": allocator_of(args, "rnnlab"), "peer_allocator": allocator_of(args, peer)}


def command_alloc(args) -> None:
    """Each workload under every installed allocator, alternating the allocators within a pair; ratios are over the
    first (glibc's default)."""
    allocators = [name for name in args.allocators if allocator_env(name) is not None]
    for name in args.allocators:
        if name not in allocators:
            emit({"name": f"allocator/{name}", "skipped": "library not installed"})
    for workload in args.workloads:
        for system in ("rnnlab", PEERS.get(workload)):  # the scratch cell is rnnlab's own: no peer runs it
            if system is None or (system != "rnnlab" and "peer" not in args.systems) or \
                    (system == "rnnlab" and "rnnlab" not in args.systems):
                continue
            runs = {allocator: runner(workload, system, args.steps, allocator) for allocator in allocators
                    if system == "rnnlab" or allocator not in RNNLAB_ONLY}
            alternate(f"allocator/{workload}/{system}", runs, args.pairs, {"workload": workload, "system": system},
                      against_first=True)


def command_lm_epochs(args) -> None:
    """Both LMs for the same epochs on the same corpus: validation perplexity after each epoch, and wall time."""
    corpus = PREPARED / args.corpus
    out = HERE / "runs" / f"lm_epochs_{args.corpus}_{args.epochs}"
    out.mkdir(parents=True, exist_ok=True)
    rnnlab = [PYTHON, "train.py", *rnnlab_lm_overrides(corpus), f"trainer.max_epochs={args.epochs}",
              f"allocator={rnnlab_allocator(allocator_of(args, 'rnnlab'))}",
              f"data.cache_dir={PREPARED / 'vocab_cache'}", "callbacks.early_stopping=null", "logger=csv",
              "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false", f"hydra.run.dir={out / 'rnnlab'}"]
    example = [PYTHON, "main.py", *example_lm_args(corpus, 200, args.epochs, save=out / "example_model.pt")]
    for system, command, cwd in (("rnnlab", rnnlab, ROOT), ("example", example, EXAMPLE_DIR)):
        started = time.perf_counter()
        with open(out / f"{system}.log", "w", encoding="utf-8") as log:
            subprocess.run(command, cwd=cwd, env=environment(allocator_of(args, system), system), stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        wall = round(time.perf_counter() - started, 1)
        if system == "rnnlab":
            latest = max((out / "rnnlab").rglob("metrics.csv"), key=lambda path: path.stat().st_mtime)  # a rerun's
            curve = rnnlab_valid_ppl(latest.read_text(encoding="utf-8"))
        else:
            curve = example_valid_ppl((out / "example.log").read_text(encoding="utf-8"))
        emit({"name": f"word_lm_epochs/{system}", "corpus": args.corpus, "epochs": args.epochs, "wall_s": wall,
              "valid_ppl": [round(ppl, 2) for _, ppl in curve], "allocator": allocator_of(args, system)})


def command_decode(args) -> None:
    """Beam-5 decoding speed of one checkpoint each, alternating in --pairs pairs, with each run's BLEU."""
    results: dict[str, list[float]] = {"rnnlab": [], "joeynmt": []}
    checkpoints = {"rnnlab": args.rnnlab_ckpt, "joeynmt": args.joeynmt_dir}
    for pair in range(args.pairs):
        for system, checkpoint in checkpoints.items():
            result = decode_once(system, checkpoint, args.sentences, allocator_of(args, system))
            results[system].append(result["sentences_per_s"])
            emit({"name": f"decode_beam5/{system}", "pair": pair, **result, "unit": "sentences/s",
                  "allocator": allocator_of(args, system)})
    emit({"name": "decode_beam5/rnnlab_over_joeynmt", "unit": "ratio",
          **ratio_summary(results["rnnlab"], results["joeynmt"])})


def decode_once(system: str, checkpoint: Path, sentences: int, allocator: str) -> dict:
    """One process of `system` decodes the first `sentences` of test_2016 with beam 5 from `checkpoint` (rnnlab: a
    .ckpt; JoeyNMT: a .ckpt, or its model_dir for best.ckpt as `joeynmt test` takes), timing the decoding alone;
    scored here with the same sacreBLEU for both."""
    from rnnlab.data.translation import read_lines

    WORK.mkdir(parents=True, exist_ok=True)
    references = read_lines(SHARED_DATA / f"{SPLIT_FILES['test']}.en.gz")[:sentences]
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        tmp, hypotheses_file = Path(tmp), Path(tmp) / "hypotheses"
        if system == "rnnlab":
            sources = read_lines(SHARED_DATA / f"{SPLIT_FILES['test']}.de.gz")[:sentences]
            (tmp / "sources.de").write_text("".join(f"{s}\n" for s in sources), encoding="utf-8")
            command = [PYTHON, str(HERE / "rnnlab_side.py"), "decode", "--allocator", rnnlab_allocator(allocator),
                       "--ckpt", str(checkpoint), "--sources", str(tmp / "sources.de"),
                       "--hypotheses", str(hypotheses_file)]
        else:  # JoeyNMT decodes its config's test set: the same first sentences, as pieces
            for suffix in ("de", "en"):
                lines = (PREPARED / "bpe" / f"test.{suffix}").read_text(encoding="utf-8").splitlines()[:sentences]
                (tmp / f"test.{suffix}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            model_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
            config = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
            config["data"]["test"] = str(tmp / "test")
            config["training"]["model_dir"] = str(model_dir.resolve())
            if not checkpoint.is_dir():
                config["testing"]["load_model"] = str(checkpoint.resolve())
            (tmp / "joeynmt.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            command = [str(JOEYNMT_PYTHON), str(HERE / "joeynmt_decode.py"), str(tmp / "joeynmt.yaml"),
                       str(hypotheses_file)]
        done = subprocess.run(command, cwd=ROOT, env=environment(allocator, system), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"measure.py: {system} decoding of {checkpoint} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        hypotheses = hypotheses_file.read_text(encoding="utf-8").splitlines()
    if system == "joeynmt":
        hypotheses = [detokenize(h) for h in hypotheses]
    return {**result, **score(hypotheses, references)}


def score(hypotheses: list[str], references: list[str]) -> dict:
    """Cased sacreBLEU (13a) of detokenized hypotheses against the raw references, the same for both systems."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    bleu = metric.corpus_score(hypotheses, [references])
    return {"bleu": round(bleu.score, 2), "bleu_signature": str(metric.get_signature()),
            "mean_hypothesis_words": round(sum(len(h.split()) for h in hypotheses) / len(hypotheses), 2)}


def command_budget(args) -> None:
    """Each system trains for the same wall-clock budget (seed 42), keeping a checkpoint at each of its validations
    (rnnlab: every epoch; JoeyNMT: every --joeynmt-validation-freq steps, and at the budget). Every checkpoint then
    decodes test_2016 with beam 5 and is scored with the same sacreBLEU: BLEU against wall-clock time since each
    process started, compared at every point. Then the checkpoint each system's own test would take (rnnlab: best
    val BLEU, else the last; JoeyNMT: best.ckpt) is timed decoding in --pairs pairs (`decode`)."""
    out = HERE / "runs" / f"budget_{args.minutes:g}min"
    out.mkdir(parents=True, exist_ok=True)
    seconds = round(args.minutes * 60)
    rnnlab_dir, joeynmt_dir = out / "rnnlab", out / "joeynmt"
    budget = f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"  # DD:HH:MM:SS
    points = ",".join([  # Hydra's dict override: one more callback, a checkpoint at every epoch's validation
        "_target_:lightning.pytorch.callbacks.ModelCheckpoint", f"dirpath:'{rnnlab_dir / 'points'}'",
        "filename:'step{step}'", "auto_insert_metric_name:false", "monitor:null", "save_top_k:-1",
        "every_n_epochs:1", "save_weights_only:true"])
    # max_cpu_time too: the recipe's cosine decay spends it, so that the decay ends with the budget
    rnnlab = [PYTHON, "train.py", "experiment=multi30k_best", f"data.root={SHARED_DATA}", "data.download=false",
              f"data.cache_dir={PREPARED / 'cache'}", f"trainer.max_time={budget}", f"trainer.max_cpu_time={budget}",
              "seed=42", "logger=csv", "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false",
              "test=false", f"+callbacks.budget_points={{{points}}}",
              f"allocator={rnnlab_allocator(allocator_of(args, 'rnnlab'))}", f"hydra.run.dir={rnnlab_dir}"]
    config = joeynmt_config(PREPARED / "bpe", joeynmt_dir, True, logging_freq=100,
                            validation_freq=args.joeynmt_validation_freq)
    config["training"]["keep_best_ckpts"] = -1  # every validation's checkpoint: the points of its curve
    (out / "joeynmt.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    # SIGINT at the budget: JoeyNMT catches it, ends training and saves the current weights
    joeynmt = ["timeout", "-s", "INT", f"{seconds}s", str(JOEYNMT_PYTHON), "-m", "joeynmt", "train",
               str(out / "joeynmt.yaml"), "--skip-test"]
    # when each process started (the zero of its curve), kept so that one side can be trained again alone
    starts = out / "started.json"
    started: dict[str, float] = json.loads(starts.read_text(encoding="utf-8")) if starts.is_file() else {}
    for system, command in (("rnnlab", rnnlab), ("joeynmt", joeynmt)):
        if system not in args.train:
            if system not in started:
                raise SystemExit(f"measure.py: no earlier {system} run in {out} (started.json): train it too")
            continue
        shutil.rmtree(out / system, ignore_errors=True)  # no checkpoint of an earlier run on the curve
        started[system], clock = time.time(), time.perf_counter()
        starts.write_text(json.dumps(started), encoding="utf-8")
        with open(out / f"{system}.log", "w", encoding="utf-8") as log:
            done = subprocess.run(command, cwd=ROOT, env=environment(allocator_of(args, system), system), stdout=log,
                                  stderr=subprocess.STDOUT)
        if done.returncode not in (0, 124):  # 124: `timeout` ended it at the budget
            raise SystemExit(f"measure.py: {system} failed (exit {done.returncode}); see {out / f'{system}.log'}")
        emit({"name": f"budget/{system}", "minutes": args.minutes, "wall_s": round(time.perf_counter() - clock, 1)})
    checkpoints = {"rnnlab": (rnnlab_dir / "points").glob("step*.ckpt"),
                   "joeynmt": (p for p in joeynmt_dir.glob("*.ckpt") if p.stem.isdigit())}
    curves: dict[str, list[tuple[float, float]]] = {}
    for system, paths in checkpoints.items():
        curves[system] = []
        for path in sorted(paths, key=lambda p: p.stat().st_mtime):
            moment = path.stat().st_mtime - started[system]
            result = decode_once(system, path, args.sentences, allocator_of(args, system))
            curves[system].append((moment, result["bleu"]))
            emit({"name": f"budget_point/{system}", "checkpoint": path.name, "minutes": round(moment / 60, 2),
                  **result, "allocator": allocator_of(args, system)})
    emit({"name": "budget_curve/rnnlab_vs_joeynmt", "unit": "BLEU", "budget_minutes": args.minutes,
          **equal_time_points(curves["rnnlab"], curves["joeynmt"])})
    checkpoint = best_checkpoint(rnnlab_dir / "checkpoints")
    command_decode(argparse.Namespace(rnnlab_ckpt=checkpoint, joeynmt_dir=joeynmt_dir, sentences=args.sentences,
                                      pairs=args.pairs, allocator=args.allocator, peer_allocator=args.peer_allocator))


def best_checkpoint(directory: Path) -> Path:
    """The checkpoint rnnlab's own test would use: ModelCheckpoint's best (by val BLEU), as last.ckpt records it;
    last.ckpt itself when none was validated."""
    import torch

    last = directory / "last.ckpt"
    if not last.is_file():
        raise SystemExit(f"measure.py: the rnnlab run left no {last}; see its log beside {directory.parent}")
    states = torch.load(last, map_location="cpu", weights_only=False)["callbacks"]
    best = [Path(state["best_model_path"]) for name, state in states.items()
            if name.startswith("ModelCheckpoint") and state.get("best_model_path")]
    return best[0] if best and best[0].is_file() else last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="translation training tokens/s, rnnlab vs JoeyNMT")
    train.add_argument("--input-feeding", nargs="+", choices=("on", "off"), default=["on", "off"])
    lm = commands.add_parser("lm", help="word LM training tokens/s, rnnlab vs pytorch/examples")
    alloc = commands.add_parser("alloc", help="allocators: glibc, glibc tunables, rnnlab's retain, jemalloc, tcmalloc")
    alloc.add_argument("--workloads", nargs="+", choices=("lm", "translation", "scratch"),
                       default=["lm", "translation", "scratch"])
    alloc.add_argument("--systems", nargs="+", choices=("rnnlab", "peer"), default=["rnnlab", "peer"])
    alloc.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=list(ALLOCATORS))
    for command, steps in ((train, 20), (lm, 50), (alloc, 20)):
        command.add_argument("--pairs", type=int, default=3)
        command.add_argument("--steps", type=int, default=steps, help="warm-up steps, then as many timed steps")
    epochs = commands.add_parser("lm-epochs", help="word LM validation perplexity after the same epochs")
    epochs.add_argument("--epochs", type=int, default=6)
    epochs.add_argument("--corpus", choices=("lm", "lm_smoke"), default="lm", help="prepare.py's folder")
    decode = commands.add_parser("decode", help="beam-5 sentences/s on test_2016, rnnlab vs JoeyNMT")
    decode.add_argument("--rnnlab-ckpt", required=True, type=Path)
    decode.add_argument("--joeynmt-dir", required=True, type=Path, help="a trained JoeyNMT model_dir")
    budget = commands.add_parser("budget", help="train each for the same minutes, then decode and score")
    budget.add_argument("--minutes", type=float, default=30)
    budget.add_argument("--joeynmt-validation-freq", type=int, default=400,
                        help="steps (one epoch is 453), a multiple of its logging_freq 100")
    budget.add_argument("--train", nargs="+", choices=("rnnlab", "joeynmt"), default=["rnnlab", "joeynmt"],
                        help="train these again; the other's checkpoints and start time are taken from the last run")
    for command in (decode, budget):
        command.add_argument("--sentences", type=int, default=1000, help="decode the first N test sentences")
        command.add_argument("--pairs", type=int, default=3, help="timed decoding runs of each system")
    for command in (train, lm, epochs, decode, budget):  # each system's best setting by default (README)
        command.add_argument("--allocator", choices=[*ALLOCATORS, "best"], default="best", help="rnnlab's")
        command.add_argument("--peer-allocator", choices=[a for a in (*ALLOCATORS, "best") if a not in RNNLAB_ONLY],
                             default="best", help="the peer's; best: its fastest in `alloc`")
    args = parser.parse_args()
    {"train": command_train, "lm": command_lm, "lm-epochs": command_lm_epochs, "alloc": command_alloc,
     "decode": command_decode, "budget": command_budget}[args.command](args)


if __name__ == "__main__":
    main()
