"""What a captioning run gets wrong on the synthetic scenes, by kind of assertion and by how many clauses it writes.

    python experiments/captioning/errors.py <run dir> [<run dir> ...] [--split test] > errors.md

Reads each run's `captions/<split>_captions.tsv` (written after test) and regenerates the split's scenes from the
data options the run recorded (`run.json`), so nothing but the run directory is needed. Each clause of a caption is
read as `check_caption` reads it (its noun phrases refer to the objects that make the most of it true); the table
counts how often each kind of assertion is false, and whether the captions of n-object scenes have as many clauses
as they need (n − 1 relation clauses, or one place clause when n = 1) — what assertion accuracy, a precision,
does not see: a caption that leaves an object out asserts nothing false.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from itertools import permutations
from pathlib import Path

from rnnlab.data.synthetic_scenes import PLACES, SyntheticScenesDataModule, _matches, holds, parse_clause

KINDS = ("size", "colour", "shape", "relation", "place", "unparsed")


def scenes_of(run_dir: Path, split: str):
    trained = json.loads((run_dir / "run.json").read_text())["trained"]
    options = {key.removeprefix("data."): value for key, value in trained.items()
               if key.startswith("data.") and key != "data._target_"}
    data = SyntheticScenesDataModule(**options)
    data.load_splits()
    return data.scenes[split]


def count(run_dir: Path, split: str) -> tuple[Counter, Counter, Counter]:
    scenes = scenes_of(run_dir, split)
    made, wrong, clauses = Counter(), Counter(), Counter()
    for line in (run_dir / "captions" / f"{split}_captions.tsv").read_text().splitlines():
        name, caption = line.split("\t")[:2]
        scene = scenes[int(name.rsplit("_", 1)[1])]
        n, written = len(scene), caption.count(" and ") + 1
        needed = max(n - 1, 1)
        clauses[n, "fewer" if written < needed else "more" if written > needed else "as many"] += 1
        clauses[n, "all"] += 1
        if n > 1 and any(parse_clause(c) and parse_clause(c)[2] is None for c in caption.split(" and ")):
            clauses[n, "place"] += 1  # a place phrase: the caption speaks of the scene as of one object
        for clause in caption.split(" and "):
            parsed = parse_clause(clause)
            if parsed is None:
                made["unparsed"] += 1
                wrong["unparsed"] += 1
                continue
            first, link, second = parsed
            if second is None:  # a place: the object that best fits it, as check_caption reads it
                _, thing = max(((_matches(first, o) + (PLACES[link] == (o.row, o.col)), o) for o in scene),
                               key=lambda scored: scored[0])
                referents = [(first, thing)]
                made["place"] += 1
                wrong["place"] += PLACES[link] != (thing.row, thing.col)
            elif len(scene) == 1:  # a relation in a scene of one object is false
                referents = [(first, scene[0]), (second, scene[0])]
                made["relation"] += 1
                wrong["relation"] += 1
            else:
                _, a, b = max(((_matches(first, a) + _matches(second, b) + holds(link, a, b), a, b)
                               for a, b in permutations(scene, 2)), key=lambda scored: scored[0])
                referents = [(first, a), (second, b)]
                made["relation"] += 1
                wrong["relation"] += not holds(link, a, b)
            for phrase, thing in referents:
                for kind, said, seen in zip(("size", "colour", "shape"), phrase, thing.looks):
                    made[kind] += 1
                    wrong[kind] += said != seen
    return made, wrong, clauses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (logs/runs/<date>/<time>)")
    parser.add_argument("--split", default="test", help="test | test_unseen (default: test)")
    args = parser.parse_args()
    made, wrong, clauses = Counter(), Counter(), Counter()
    for run_dir in args.runs:
        for total, part in zip((made, wrong, clauses), count(run_dir, args.split)):
            total.update(part)
    print(f"{len(args.runs)} run(s), split {args.split}\n")
    print("| assertion | made | false | false % |\n|---|---|---|---|")
    for kind in KINDS:
        if made[kind]:
            print(f"| {kind} | {made[kind]} | {wrong[kind]} | {100 * wrong[kind] / made[kind]:.1f} |")
    print("\n| objects | captions | clauses needed | fewer clauses | as many | more | with a place phrase |")
    print("|---|---|---|---|---|---|---|")
    for n in sorted({n for n, _ in clauses}):
        print(f"| {n} | {clauses[n, 'all']} | {max(n - 1, 1)} | {clauses[n, 'fewer']} | {clauses[n, 'as many']} | "
              f"{clauses[n, 'more']} | {clauses[n, 'place'] if n > 1 else '(needed)'} |")


if __name__ == "__main__":
    main()
