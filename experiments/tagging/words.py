"""On which words the lecture's HMM loses to the BiLSTM recipe: UD EWT dev, by word class, gold tag and confusion.

    python experiments/tagging/words.py [--experiment tagging-targets] [--recipe ud_ewt_upos] [--data-root DIR]
                                        [--out experiments/tagging/results/words] [--examples 4] [--words 15]

Picks the runs from the MLflow store (never by id): in the experiment, the finished runs on data=ud_ewt; per
data.tagset the latest first-order HMM (`model=hmm`, model.order=1: the lecture's) and the latest run of each seed
of the recipe (`experiment=<recipe>`, any model but the HMM). Loads each best checkpoint as tag.py does
(rnnlab.cli.load_task) and tags the dev sentences with `TaggingTask.tag`; each model's dev accuracy is printed
beside the store's `test/acc` (the dev score of the same checkpoint) as a check. A tag set with an HMM but no
recurrent run is reported for the HMM alone; one without an HMM is left out.

Each dev word is classed by the training split's counts (rnnlab.tasks.word_classes: seen with one tag, with several,
unseen, and an unseen word's shape; seen words also by training count). The BiLSTM's numbers are the mean over its
seeds (an error share or a confusion count: the mean of the seeds' own). "gap" is how many points of all-word
accuracy a class is worth: (BiLSTM right − HMM right in the class) / all dev words × 100, so the classes' gaps sum
to the whole difference. The words on which the HMM loses most: each dev word (as written) by HMM errors − the
seeds' mean errors. Example sentences: dev sentences of 6–25 words with a word the HMM tags wrong and every
BiLSTM seed right (and the reverse), spread evenly over the dev order.

Writes words.md (the tables and examples), classes.csv, tags.csv, top_words.csv and confusions.csv to --out, and
prints the tables. Dev only: the UD EWT test split is held back in this project.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# experiments/tagging/tables.py, beside this script (on sys.path when it runs)
from tables import by_seed, escape, finished_runs, markdown_table, percent, write_csv

from rnnlab.errors import ConfigError
from rnnlab.tasks.word_classes import (
    BANDS,
    CLASSES,
    SHAPES,
    UNSEEN,
    error_shares,
    frequency_band,
    tally,
    training_tags,
    unseen_shape,
    word_class,
)

ROOT = Path(__file__).resolve().parents[2]
TAGSETS = ("upos", "xpos")
HMM, RNN = "HMM", "BiLSTM"


@dataclass
class Run:
    run_id: str
    seed: str
    logged: float | None  # the store's test/acc: the dev accuracy of the best checkpoint
    predicted: list[str] = field(default_factory=list)  # every dev word's tag, sentence after sentence


@dataclass
class Runs:
    hmm: Run | None = None
    rnn: list[Run] = field(default_factory=list)  # one per seed


def select_runs(client, experiment: str, recipe: str, uri: str) -> dict[str, Runs]:
    """Per tag set, the latest first-order HMM and the latest run of each seed of the recipe (see the docstring)."""
    runs = finished_runs(client, experiment, uri, "bash experiments/tagging/run.sh targets")
    chosen = {tagset: Runs() for tagset in TAGSETS}
    for run in runs:  # latest first: the first of a kind is kept
        tags, params = run.data.tags, run.data.params
        tagset = params.get("data.tagset")
        if tags.get("data") != "ud_ewt" or tagset not in chosen or "test/acc" not in run.data.metrics:
            continue
        picked = Run(run.info.run_id, params.get("seed", "?"), run.data.metrics.get("test/acc"))
        if tags.get("model") == "hmm":
            if params.get("model.order") == "1" and chosen[tagset].hmm is None:
                chosen[tagset].hmm = picked
        elif tags.get("experiment") == recipe and picked.seed not in {r.seed for r in chosen[tagset].rnn}:
            chosen[tagset].rnn.append(picked)
    # a tag set is compared where the store has its HMM (tagging-targets: UPOS and XPOS; tagging-xpos: XPOS)
    chosen = {tagset: runs_of for tagset, runs_of in chosen.items() if runs_of.hmm is not None}
    if not chosen:
        raise ConfigError(f"no finished first-order HMM run on UD EWT (tags model=hmm data=ud_ewt, model.order=1) "
                          f"in experiment {experiment!r} of {uri}: run `bash experiments/tagging/run.sh hmm` (or "
                          f"`xpos` for tagging-xpos) first")
    if not any(runs_of.rnn for runs_of in chosen.values()):
        raise ConfigError(f"no finished run of experiment={recipe} on UD EWT beside the HMM in experiment "
                          f"{experiment!r} of {uri}: run `bash experiments/tagging/run.sh target {recipe} ud_ewt` "
                          f"(or `xpos` for tagging-xpos) first")
    for runs_of in chosen.values():
        runs_of.rnn.sort(key=by_seed)
    return chosen


def tag_dev(run: Run, sentences: list[list[str]], tagset: str, uri: str) -> None:
    """The run's best checkpoint, loaded as tag.py loads it, tags the dev sentences (into run.predicted)."""
    from omegaconf import OmegaConf

    from rnnlab.cli import load_task
    from rnnlab.tasks.tagging import TaggingTask

    task = load_task(TaggingTask, OmegaConf.create({"ckpt": run.run_id, "tracking_uri": uri, "device": "cpu"}))
    trained_on = (task.hparams.tokenizer or {}).get("tagset")
    if trained_on != tagset:
        raise ConfigError(f"run {run.run_id} logs data.tagset={tagset} but its checkpoint was trained on "
                          f"{trained_on}")
    run.predicted = [tag for tags in task.tag(sentences, batch_size=128) for tag in tags]


# --- the tables -------------------------------------------------------------------------------------------------



def class_rows(tagset: str, keys: dict[str, list[str]], order: dict[str, tuple[str, ...]], gold: list[str],
               runs: Runs) -> list[dict]:
    """One row per class of each grouping (class, unseen shape, training count) and one for all words."""
    total = len(gold)
    rows = []
    hmm_right = [p == g for p, g in zip(runs.hmm.predicted, gold)] if runs.hmm else None
    rnn_right = [[p == g for p, g in zip(run.predicted, gold)] for run in runs.rnn]
    for grouping, labels in keys.items():
        hmm = tally(labels, hmm_right) if hmm_right else {}
        hmm_shares = error_shares(hmm)
        rnn = [tally(labels, right) for right in rnn_right]
        rnn_shares = [error_shares(counts) for counts in rnn]
        for label in order[grouping]:
            n = sum(1 for key in labels if key == label)
            if not n:
                continue
            row = {"tagset": tagset, "grouping": grouping, "words": label, "dev_words": n,
                   "share_of_dev": percent(n, total)}
            if hmm:
                row |= {"hmm_acc": percent(hmm[label][1], n), "hmm_error_share": 100 * hmm_shares[label]}
            if rnn:
                accs = [percent(counts[label][1], n) for counts in rnn]
                row |= {"rnn_acc": statistics.mean(accs), "rnn_acc_std": std(accs),
                        "rnn_acc_seeds": " ".join(f"{acc:.2f}" for acc in accs),
                        "rnn_error_share": statistics.mean(100 * shares[label] for shares in rnn_shares)}
            if hmm and rnn:
                row["gap_points"] = statistics.mean(percent(counts[label][1] - hmm[label][1], total)
                                                    for counts in rnn)
            rows.append(row)
    return rows


def std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def tag_rows(tagset: str, gold: list[str], unseen: list[bool], runs: Runs) -> list[dict]:
    """One row per gold tag: its words, how many unseen, each model's accuracy on all and on the unseen ones."""
    total = len(gold)
    rows = []
    for tag in sorted(set(gold)):
        at = [k for k, g in enumerate(gold) if g == tag]
        new = [k for k in at if unseen[k]]
        row = {"tagset": tagset, "gold": tag, "dev_words": len(at), "unseen_words": len(new)}
        if runs.hmm:
            right = sum(runs.hmm.predicted[k] == tag for k in at)
            row |= {"hmm_acc": percent(right, len(at)), "hmm_errors": len(at) - right,
                    "hmm_acc_unseen": percent(sum(runs.hmm.predicted[k] == tag for k in new), len(new))}
        if runs.rnn:
            rights = [sum(run.predicted[k] == tag for k in at) for run in runs.rnn]
            row |= {"rnn_acc": percent(statistics.mean(rights), len(at)),
                    "rnn_errors": len(at) - float(statistics.mean(rights)),
                    "rnn_acc_unseen": statistics.mean(percent(sum(run.predicted[k] == tag for k in new), len(new))
                                                      for run in runs.rnn)}
        if runs.hmm and runs.rnn:
            row["gap_points"] = percent(row["hmm_errors"] - row["rnn_errors"], total)
        rows.append(row)
    key = "gap_points" if runs.hmm and runs.rnn else "hmm_errors" if runs.hmm else "rnn_errors"
    return sorted(rows, key=lambda row: -row[key])


def word_rows(tagset: str, words: list[str], gold: list[str], kinds: list[str], runs: Runs, top: int) -> list[dict]:
    """The `top` dev words (as written) on which the HMM loses most to the BiLSTM (HMM errors − the seeds' mean
    errors; with the HMM alone, its most errors): their class, dev count, gold tags and each model's usual mistake."""
    at: dict[str, list[int]] = {}
    for k, word in enumerate(words):
        at.setdefault(word, []).append(k)
    total, rows = len(gold), []
    for word, places in at.items():
        row = {"tagset": tagset, "word": word, "class": kinds[places[0]], "dev_words": len(places),
               "gold_tags": " ".join(f"{tag} {n}" for tag, n in Counter(gold[k] for k in places).most_common(3))}
        for group, key in (([runs.hmm] if runs.hmm else [], "hmm"), (runs.rnn, "rnn")):
            if not group:
                continue
            mistakes = Counter((gold[k], run.predicted[k]) for run in group for k in places
                               if run.predicted[k] != gold[k])
            row[f"{key}_errors"] = sum(mistakes.values()) / len(group)
            row[f"{key}_usual_mistake"] = ""
            if mistakes:
                (right, said), n = mistakes.most_common(1)[0]
                row[f"{key}_usual_mistake"] = f"{right} → {said} ({n / len(group):.3g})"
        if runs.hmm and runs.rnn:
            row["gap_points"] = percent(row["hmm_errors"] - row["rnn_errors"], total)
        rows.append(row)
    key = "gap_points" if runs.hmm and runs.rnn else "hmm_errors" if runs.hmm else "rnn_errors"
    return sorted(rows, key=lambda row: -row[key])[:top]


def confusion_rows(tagset: str, gold: list[str], runs: Runs, top: int) -> list[dict]:
    """Each model's `top` most frequent confusions gold → predicted (the BiLSTM's: mean count over seeds)."""
    rows = []
    for model, group in ((HMM, [runs.hmm] if runs.hmm else []), (RNN, runs.rnn)):
        if not group:
            continue
        counts = Counter()
        for run in group:
            counts.update((g, p) for g, p in zip(gold, run.predicted) if g != p)
        errors = sum(counts.values())
        for (g, p), n in counts.most_common(top):
            rows.append({"tagset": tagset, "model": model, "gold": g, "predicted": p, "count": n / len(group),
                         "share_of_errors": percent(n, errors)})
    return rows


def one_sided(gold: list[str], runs: Runs) -> tuple[list[bool], list[bool]]:
    """Per word: the HMM wrong and every BiLSTM seed right; the HMM right and every seed wrong."""
    hmm = [p == g for p, g in zip(runs.hmm.predicted, gold)]
    rnn = [all(run.predicted[k] == g for run in runs.rnn) for k, g in enumerate(gold)]
    rnn_wrong = [all(run.predicted[k] != g for run in runs.rnn) for k, g in enumerate(gold)]
    return [not h and r for h, r in zip(hmm, rnn)], [h and w for h, w in zip(hmm, rnn_wrong)]


def examples(sentences: list[list[str]], gold: list[str], runs: Runs, flags: list[bool], count: int) -> list[str]:
    """`count` dev sentences of 6–25 words with a flagged word, spread evenly over the dev order; each word where
    a model errs as **word**/GOLD/HMM/BiLSTM (the BiLSTM: its seeds' most frequent tag), the others plain."""
    starts, start = [], 0
    for words in sentences:
        starts.append(start)
        start += len(words)
    chosen = [k for k, words in enumerate(sentences)
              if 6 <= len(words) <= 25 and any(flags[starts[k]:starts[k] + len(words)])]
    picks = [chosen[int(i * len(chosen) / count)] for i in range(min(count, len(chosen)))]
    lines = []
    for k in picks:
        shown = []
        for i, word in enumerate(sentences[k]):
            j = starts[k] + i
            h = runs.hmm.predicted[j]
            r = Counter(run.predicted[j] for run in runs.rnn).most_common(1)[0][0]
            shown.append(escape(word) if h == r == gold[j] else f"**{escape(word)}**/{gold[j]}/{h}/{r}")
        lines.append(f"- (dev sentence {k + 1}) " + " ".join(shown))
    return lines




# --- writing ----------------------------------------------------------------------------------------------------







def section(tagset: str, runs: Runs, gold: list[str], classes: list[dict], tags: list[dict], words: list[dict],
            confusions: list[dict],
            example_lines: dict[str, list[str]], counts: dict[str, int], total: int) -> list[str]:
    both = runs.hmm is not None and bool(runs.rnn)
    seeds = f"{len(runs.rnn)} seed{'s' * (len(runs.rnn) != 1)}"
    lines = [f"## {tagset.upper()}", ""]
    if runs.hmm:
        lines.append(f"- HMM, first order: run `{runs.hmm.run_id}`")
    lines += [f"- BiLSTM recipe, seed {run.seed}: run `{run.run_id}`" for run in runs.rnn]
    if not runs.rnn:
        lines.append(f"- no recurrent run on {tagset.upper()} in the store: the HMM alone")
    lines.append("")
    accs = []
    if runs.hmm:
        accs.append(f"HMM {percent(sum(map(str.__eq__, runs.hmm.predicted, gold)), total):.2f}")
    if runs.rnn:
        values = [percent(sum(map(str.__eq__, run.predicted, gold)), total) for run in runs.rnn]
        accs.append(f"BiLSTM {statistics.mean(values):.2f} ± {std(values):.2f} ({seeds}: "
                    + ", ".join(f"{value:.2f}" for value in values) + ")")
    lines += [f"Dev accuracy, {total} words: " + "; ".join(accs) + ".", ""]

    header = ["words", "dev words", "share of dev %"]
    if runs.hmm:
        header += ["HMM acc"]
    if runs.rnn:
        header += [f"BiLSTM acc ({seeds})"]
    if both:
        header += ["gap (points)"]
    if runs.hmm:
        header += ["share of HMM errors %"]
    if runs.rnn:
        header += ["share of BiLSTM errors %"]
    for grouping, title in (("class", "By what the training split says of the word"),
                            ("unseen shape", "Unseen words by shape (digit, then hyphen, then capital: the first "
                                             "that applies)"),
                            ("training count", "By the word's training count")):
        lines += [f"**{title}**", ""]
        body = []
        for row in classes:
            if row["grouping"] != grouping and not (grouping == "class" and row["grouping"] == "all"):
                continue
            values = [row["words"], row["dev_words"], row["share_of_dev"]]
            if runs.hmm:
                values.append(row["hmm_acc"])
            if runs.rnn:
                values.append(f"{row['rnn_acc']:.1f} ± {row['rnn_acc_std']:.1f}")
            if both:
                values.append(f"{row['gap_points']:.2f}")
            if runs.hmm:
                values.append(row["hmm_error_share"])
            if runs.rnn:
                values.append(row["rnn_error_share"])
            body.append(values)
        lines += markdown_table(header, body) + [""]

    shown = tags if both else tags[:15]
    lines += ["**By gold tag**" + (" (largest gap first)" if both else " (most HMM errors first; the 15 with most)"),
              ""]
    header = ["gold", "dev words", "unseen"]
    header += ["HMM acc", "HMM acc unseen", "HMM errors"] if runs.hmm else []
    header += ["BiLSTM acc", "BiLSTM acc unseen", "BiLSTM errors"] if runs.rnn else []
    header += ["gap (points)"] if both else []
    body = []
    for row in shown:
        values = [row["gold"], row["dev_words"], row["unseen_words"]]
        values += [row["hmm_acc"], row["hmm_acc_unseen"], row["hmm_errors"]] if runs.hmm else []
        values += [row["rnn_acc"], row["rnn_acc_unseen"], row["rnn_errors"]] if runs.rnn else []
        values += [f"{row['gap_points']:.2f}"] if both else []
        body.append(values)
    lines += markdown_table(header, body) + [""]

    lines += ["**The words on which the HMM loses most**" + (" (HMM errors − BiLSTM errors, largest first)" if both
              else " (most HMM errors first)") + "; usual mistake: the word's most frequent gold → predicted", ""]
    header = ["word", "class", "dev words", "gold tags in dev"]
    header += ["HMM errors", "HMM's usual mistake"] if runs.hmm else []
    header += ["BiLSTM errors", "BiLSTM's usual mistake"] if runs.rnn else []
    header += ["gap (points)"] if both else []
    body = []
    for row in words:
        values = [row["word"], row["class"], row["dev_words"], row["gold_tags"]]
        values += [row["hmm_errors"], row["hmm_usual_mistake"]] if runs.hmm else []
        values += [row["rnn_errors"], row["rnn_usual_mistake"]] if runs.rnn else []
        values += [f"{row['gap_points']:.2f}"] if both else []
        body.append(values)
    lines += markdown_table(header, body) + [""]

    lines += ["**Most frequent confusions, gold → predicted**" + (" (the BiLSTM's: mean count over its seeds)"
                                                                 if runs.rnn else ""), ""]
    by_model = {model: [row for row in confusions if row["model"] == model] for model in (HMM, RNN)}
    depth = max(len(rows) for rows in by_model.values())
    header = ["#"] + [f"{model}: gold → predicted (count, % of its errors)" for model in (HMM, RNN) if by_model[model]]
    body = [[k + 1] + [f"{rows[k]['gold']} → {rows[k]['predicted']} ({rows[k]['count']:.0f}, "
                       f"{rows[k]['share_of_errors']:.1f})" if k < len(rows) else "" for rows in by_model.values()
                       if rows] for k in range(depth)]
    lines += markdown_table(header, body) + [""]

    if both:
        lines += [f"**Where exactly one side errs**: {counts['hmm_only']} dev words the HMM tags wrong and every "
                  f"BiLSTM seed right ({counts['hmm_only_unseen']} of them unseen); {counts['rnn_only']} the HMM "
                  f"tags right and every seed wrong ({counts['rnn_only_unseen']} unseen).", "",
                  "A word either model gets wrong is **word**/GOLD/HMM/BiLSTM (the BiLSTM: its seeds' most "
                  "frequent tag); the others are plain.", "",
                  "HMM wrong, BiLSTM right:", "", *example_lines["hmm_only"], "",
                  "HMM right, BiLSTM wrong:", "", *example_lines["rnn_only"], ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="tagging-targets", help="the MLflow experiment holding the runs")
    parser.add_argument("--recipe", default="ud_ewt_upos", help="the recurrent recipe (its `experiment` tag)")
    parser.add_argument("--tracking-uri", help="the MLflow store (default: MLFLOW_TRACKING_URI, else logs/mlflow.db)")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared/data/ud_ewt",
                        help="the folder of en_ewt-ud-{train,dev}.conllu (default: ../shared/data/ud_ewt)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/tagging/results/words")
    parser.add_argument("--examples", type=int, default=4, help="example sentences each way (default 4)")
    parser.add_argument("--words", type=int, default=15, help="the words on which the HMM loses most (default 15)")
    args = parser.parse_args()

    from rnnlab.cli import one_line_errors

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.time()
    with one_line_errors():
        import mlflow

        from rnnlab.data.ud_ewt import UDEWTDataModule
        from rnnlab.tracking.mlflow_store import default_tracking_uri, require_store

        uri = args.tracking_uri or default_tracking_uri()
        require_store(uri, "words.py")
        chosen = select_runs(mlflow.MlflowClient(uri), args.experiment, args.recipe, uri)
        classes, tags, top_words, confusions, page = [], [], [], [], []
        for tagset, runs in chosen.items():
            splits = UDEWTDataModule(root=str(args.data_root), tagset=tagset).load_splits()
            train, dev = splits["train"], splits["val"]
            gold = [tag for sentence in dev.tags for tag in sentence]
            words = [word for sentence in dev.words for word in sentence]
            for name, run in [(HMM, runs.hmm)] * bool(runs.hmm) + [(f"{RNN} seed {r.seed}", r) for r in runs.rnn]:
                tag_dev(run, dev.words, tagset, uri)
                acc = percent(sum(map(str.__eq__, run.predicted, gold)), len(gold))
                logged = "—" if run.logged is None else f"{100 * run.logged:.2f}"
                print(f"{tagset} {name}: dev accuracy {acc:.2f} (the store's test/acc, dev: {logged}), "
                      f"{time.time() - started:.0f} s", file=sys.stderr)
            lexicon = training_tags(train.words, train.tags)
            kinds = [word_class(word, lexicon) for word in words]
            keys = {"class": kinds,
                    "unseen shape": [unseen_shape(w) if kind == UNSEEN else "seen" for w, kind in zip(words, kinds)],
                    "training count": [UNSEEN if kind == UNSEEN else frequency_band(sum(lexicon[w].values()))
                                       for w, kind in zip(words, kinds)],
                    "all": ["all words"] * len(words)}
            order = {"class": CLASSES, "unseen shape": SHAPES, "training count": (*BANDS, UNSEEN),
                     "all": ("all words",)}
            classes_here = class_rows(tagset, keys, order, gold, runs)
            tags_here = tag_rows(tagset, gold, [kind == UNSEEN for kind in kinds], runs)
            words_here = word_rows(tagset, words, gold, kinds, runs, top=args.words)
            confusions_here = confusion_rows(tagset, gold, runs, top=12)
            counts, example_lines = {}, {}
            if runs.hmm and runs.rnn:
                for side, flags in zip(("hmm_only", "rnn_only"), one_sided(gold, runs)):
                    counts[side] = sum(flags)
                    counts[f"{side}_unseen"] = sum(f and kind == UNSEEN for f, kind in zip(flags, kinds))
                    example_lines[side] = examples(dev.words, gold, runs, flags, args.examples)
            page += section(tagset, runs, gold, classes_here, tags_here, words_here, confusions_here, example_lines,
                            counts, len(gold))
            classes += classes_here
            tags += tags_here
            top_words += words_here
            confusions += confusions_here
            if not runs.rnn:
                print(f"{tagset}: no run of experiment={args.recipe} on {tagset.upper()} in the store: the HMM "
                      f"alone", file=sys.stderr)
    intro = ["# On which words the lecture's HMM loses to the BiLSTM (UD EWT, dev)", "",
             f"Written by `python experiments/tagging/words.py` (`bash experiments/tagging/run.sh "
             f"{'words_xpos' if args.experiment.endswith('-xpos') else 'words'}`) from the "
             f"runs of MLflow experiment `{args.experiment}`; every number is on the **dev** split (test is held "
             "back). Word classes are what the training split says of each dev word, as written (no lowercasing). "
             "The BiLSTM's figures are the mean over its seeds (± their std); \"gap\" is the class's worth in "
             "points of all-word accuracy, (BiLSTM right − HMM right) / all dev words × 100, summing to the whole "
             "difference.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "words.md").write_text("\n".join(intro + page))
    write_csv(args.out / "classes.csv", classes)
    write_csv(args.out / "tags.csv", tags)
    write_csv(args.out / "top_words.csv", top_words)
    write_csv(args.out / "confusions.csv", confusions)
    text = "\n".join(page)
    print(re.sub(r"HMM wrong, BiLSTM right:.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip())
    print(f"\nwritten to {args.out}: words.md, classes.csv, tags.csv, top_words.csv, confusions.csv "
          f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
