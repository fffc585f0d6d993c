"""`make bench`'s peers section: short alternating throughput runs against the peers, as JSON lines with the ratios.

  translation: rnnlab vs JoeyNMT 2.3.0, input feeding on (needs experiments/peers/.venv-joeynmt: run.sh setup)
  word LM:     rnnlab vs pytorch/examples word_language_model (needs ../shared/peers/...)

A peer that is absent is skipped with a line saying so and how to get it; the inputs are prepared first if missing
(prepare.py, seconds). The study's longer runs, decoding and BLEU: experiments/peers/run.sh.

    python experiments/peers/bench.py [--pairs 3] [--translation-steps 10] [--lm-steps 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measure  # noqa: E402

GOALS = {"translation_train_if_on": ">= 1.5", "word_lm_train": ">= 1.0"}


def missing_peers() -> dict[str, str]:
    """Why each absent peer is absent, by the comparison it would have run."""
    missing = {}
    if not measure.SHARED_DATA.joinpath("train.de.gz").is_file():
        reason = f"no Multi30k in {measure.SHARED_DATA}"
        return {"translation_train_if_on": reason, "word_lm_train": reason}
    if not measure.JOEYNMT_PYTHON.is_file():
        venv = measure.JOEYNMT_PYTHON.parent.parent
        missing["translation_train_if_on"] = f"JoeyNMT's virtualenv {venv} is absent; create it: run.sh setup"
    if not measure.EXAMPLE_DIR.joinpath("main.py").is_file():
        missing["word_lm_train"] = f"pytorch/examples word_language_model is absent ({measure.EXAMPLE_DIR})"
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--translation-steps", type=int, default=10)
    parser.add_argument("--lm-steps", type=int, default=20)
    args = parser.parse_args()
    missing = missing_peers()
    for name, reason in missing.items():
        measure.emit({"name": f"peers/{name}", "skipped": reason})
    if len(missing) == len(GOALS):
        return
    if not (measure.PREPARED / "prepared.json").is_file():
        subprocess.run([sys.executable, str(HERE / "prepare.py")], check=True, stdout=subprocess.DEVNULL)
    best = measure.best_allocator  # each system's fastest setting
    comparisons = {
        "translation_train_if_on": ("joeynmt", lambda: {
            system: measure.runner("translation", system, args.translation_steps, best(system))
            for system in ("rnnlab", "joeynmt")}),
        "word_lm_train": ("example", lambda: {system: measure.runner("lm", system, args.lm_steps, best(system))
                                              for system in ("rnnlab", "example")}),
    }
    for name, (peer, systems) in comparisons.items():
        if name not in missing:
            measure.alternate(f"peers/{name}", systems(), args.pairs, {"unit": "tokens/s", "goal": GOALS[name],
                                                                       "allocator": best("rnnlab"),
                                                                       "peer_allocator": best(peer)})


if __name__ == "__main__":
    main()
