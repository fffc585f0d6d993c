"""Where the SNIPS slot recipe loses its span F1: valid, by slot type, error kind, word novelty and intent.

    python experiments/tagging/slots.py [--experiment tagging-targets] [--recipe snips_slots] [--runs ID,ID,...]
                                        [--data-root DIR] [--out experiments/tagging/results/slots] [--examples 12]

Picks the runs from the MLflow store (never by id unless --runs names them): in the experiment, the finished runs
on data=snips_slots of `experiment=<recipe>`, the latest of each seed. Loads each best checkpoint as tag.py does
(rnnlab.cli.load_task), tags the valid utterances (each run's span F1 is printed beside the store's `test/span_f1`,
the valid score of the same checkpoint, as a check) and counts its span errors as conlleval finds spans.

Lost points: 100 − F1 = 100 · (missed gold spans + wrong predicted spans) / (gold spans + predicted spans), so each
error span (a gold span not predicted exactly: FN; a predicted span not in gold: FP) is worth 100 / (gold +
predicted) points of F1, and the tables split the lost points by the error span's slot type, kind, novelty and the
utterance's intent; they sum to 100 − F1.

Kinds of error span: `type` (a span of the other side has its exact boundaries, another type), `boundary` (an
overlapping span of the other side has its type, other boundaries), `boundary+type` (only overlapping spans of
other types and boundaries), `missed` (FN, no predicted span overlaps it), `spurious` (FP, no gold span overlaps).
Novelty of a span (the training split's spans and words): `seen span` (the same words are a span of this type in
training), `seen words` (every word occurs in training, not as such a span), `unseen word` (some word never does).

Intent: the `label` file's intent of each utterance. The slot types each intent has in training (the intent's
schema) say what an oracle intent could fix: an error span whose predicted type is outside the gold intent's schema
(FP, or the predicted span of a `type` / `boundary+type` FN). The oracle is also run: Viterbi with every tag whose
type is outside the gold intent's schema forbidden (an upper bound for hard intent constraints, not a model).

Writes slots.md, types.csv, kinds.csv, novelty.csv, intents.csv, confusions.csv to --out and prints the tables.
Valid only: the SNIPS test split is held back in this project.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# experiments/tagging/tables.py, beside this script (on sys.path when it runs)
from tables import by_seed, cell, finished_runs, markdown_table, percent, write_csv

from rnnlab.errors import ConfigError
from rnnlab.tasks.word_classes import CLASSES, training_tags, word_class

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("type", "boundary", "boundary+type", "missed", "spurious")
NOVELTY = ("seen span", "seen words", "unseen word")
ARTICLES = ("the", "a", "an")


@dataclass
class Run:
    run_id: str
    seed: str
    logged: float | None  # the store's test/span_f1: the valid span F1 of the best checkpoint
    predicted: list[list[str]] = field(default_factory=list)
    oracle: list[list[str]] = field(default_factory=list)  # decoded within the gold intent's schema


def select_runs(client, experiment: str, recipe: str, uri: str, ids: list[str] | None) -> list[Run]:
    """The latest finished run of each seed of the recipe on data=snips_slots (or the runs `ids` names)."""
    if ids:
        runs = [client.get_run(run_id) for run_id in ids]
    else:
        runs = finished_runs(client, experiment, uri, "bash experiments/tagging/run.sh target snips_slots snips")
        runs = [run for run in runs if run.data.tags.get("data") == "snips_slots"
                and run.data.tags.get("experiment") == recipe and run.data.tags.get("model") != "hmm"]
    chosen: list[Run] = []
    for run in runs:  # latest first: the first of a seed is kept
        seed = run.data.params.get("seed", "?")
        if ids or seed not in {r.seed for r in chosen}:
            chosen.append(Run(run.info.run_id, seed, run.data.metrics.get("test/span_f1")))
    if not chosen:
        raise ConfigError(f"no finished run of experiment={recipe} on data=snips_slots in experiment {experiment!r} "
                          f"of {uri}: run `bash experiments/tagging/run.sh target snips_slots snips` first")
    return sorted(chosen, key=by_seed)


def tag_valid(run: Run, sentences: list[list[str]], intents: list[str], schema: dict[str, set[str]],
              uri: str) -> None:
    """The run's best checkpoint tags the valid utterances: freely (run.predicted) and with every tag outside the
    gold intent's schema forbidden (run.oracle), both by the checkpoint's own decoding (its CRF's Viterbi)."""
    import torch
    from lightning.pytorch.utilities import move_data_to_device
    from omegaconf import OmegaConf

    from rnnlab.cli import load_task
    from rnnlab.data.tagging import collate_tagged, untagged
    from rnnlab.tasks.tagging import TaggingTask

    task = load_task(TaggingTask, OmegaConf.create({"ckpt": run.run_id, "tracking_uri": uri, "device": "cpu"}))
    dataset = untagged(sentences, task.hparams.tokenizer)
    allowed = {intent: torch.tensor([tag == "O" or tag[2:] in types for tag in task.tags])
               for intent, types in schema.items()}
    free, oracle = [], []
    with torch.no_grad():
        for start in range(0, len(sentences), 128):
            chunk = range(start, min(start + 128, len(sentences)))
            batch = move_data_to_device(collate_tagged([dataset[k] for k in chunk]), task.device)
            scores = task.scores(batch).float()  # (B, T, K)
            mask = torch.stack([allowed[intents[k]] for k in chunk])[:, None, :]  # (B, 1, K)
            for out, decoded in ((free, task.predict(batch, scores)),
                                 (oracle, task.predict(batch, scores.masked_fill(~mask, -1e4)))):
                out += [[task.tags[tag] for tag in row[:len(sentences[k])]]
                        for k, row in zip(chunk, decoded.tolist())]
    run.predicted, run.oracle = free, oracle


# --- spans and their errors --------------------------------------------------------------------------------------

def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each span, as conlleval finds them (seqeval's default mode, as task=tagging scores)."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [tuple(span) for span in get_entities(tags)]


def span_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    """conlleval's span F1 in %, as task=tagging scores it."""
    from rnnlab.tasks.tagging import span_scores

    return 100 * span_scores(gold, predicted)["f1"]


@dataclass
class Error:
    sentence: int
    side: str  # FN (a gold span not predicted) or FP (a predicted span not in gold)
    type: str  # the span's own type
    other: str  # FN: the type of the overlapping predicted span (type / boundary+type), else ""; FP: the gold one's
    kind: str
    words: str
    novelty: str
    article: bool = False  # a boundary error whose spans differ only by a leading the / a / an


def errors_of(gold: list[list[str]], predicted: list[list[str]], words: list[list[str]],
              novelty_of) -> tuple[list[Error], int, int]:
    """Every error span of a run, and the number of gold and predicted spans."""
    errors, n_gold, n_pred = [], 0, 0
    for k, (g_tags, p_tags) in enumerate(zip(gold, predicted, strict=True)):
        g, p = set(spans(g_tags)), set(spans(p_tags))
        n_gold, n_pred = n_gold + len(g), n_pred + len(p)
        for side, own, others in (("FN", g - p, p), ("FP", p - g, g)):
            for span in sorted(own, key=lambda s: s[1]):
                kind, other = classify(span, others, "missed" if side == "FN" else "spurious")
                text = " ".join(words[k][span[1]:span[2] + 1])
                article = kind == "boundary" and any(
                    o[0] == span[0] and o[2] == span[2] and abs(o[1] - span[1]) == 1
                    and words[k][min(o[1], span[1])] in ARTICLES for o in others)
                errors.append(Error(k, side, span[0], other, kind, text, novelty_of(span[0], text), article))
    return errors, n_gold, n_pred


def classify(span: tuple[str, int, int], others: set[tuple[str, int, int]], alone: str) -> tuple[str, str]:
    """The error kind of `span` (not among `others`, the other side's spans) and the other side's type it met."""
    kind, first, last = span
    overlapping = sorted(o for o in others if o[1] <= last and first <= o[2])  # sorted: ties broken alike each run
    same_bounds = [o for o in overlapping if (o[1], o[2]) == (first, last)]
    if same_bounds:
        return "type", same_bounds[0][0]
    if any(o[0] == kind for o in overlapping):
        return "boundary", kind
    if overlapping:
        return "boundary+type", max(overlapping, key=lambda o: min(last, o[2]) - max(first, o[1]))[0]
    return alone, ""


# --- the tables -------------------------------------------------------------------------------------------------

def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def points_rows(per_run: list[tuple[list[Error], int, int]], key, labels, extra=None) -> list[dict]:
    """Per label of `key(error)`: its FN, FP (mean per run) and lost F1 points (mean ± std over runs)."""
    rows = []
    for label in labels:
        fn, fp, pts = [], [], []
        for errors, n_gold, n_pred in per_run:
            mine = [e for e in errors if key(e) == label]
            fn.append(sum(e.side == "FN" for e in mine))
            fp.append(sum(e.side == "FP" for e in mine))
            pts.append(100 * len(mine) / (n_gold + n_pred))
        mean, std = mean_std(pts)
        row = {"label": label, "fn": statistics.mean(fn), "fp": statistics.mean(fp), "lost_points": mean,
               "lost_points_std": std}
        if extra:
            row |= extra(label)
        rows.append(row)
    return sorted(rows, key=lambda row: -row["lost_points"])


def type_rows(gold: list[list[str]], runs: list[Run], per_run, train_types: Counter) -> list[dict]:
    """Per gold slot type: valid spans, training spans, span P/R/F1 (mean over runs), lost points."""
    gold_spans = Counter(s[0] for tags in gold for s in spans(tags))
    types = sorted(set(gold_spans) | {e.type for errors, _, _ in per_run for e in errors})

    def extra(t: str) -> dict:
        p_, r_, f_ = [], [], []
        for run in runs:
            g = {(k, *s) for k, tags in enumerate(gold) for s in spans(tags) if s[0] == t}
            p = {(k, *s) for k, tags in enumerate(run.predicted) for s in spans(tags) if s[0] == t}
            right = len(g & p)
            p_.append(100 * right / len(p) if p else 0.0)
            r_.append(100 * right / len(g) if g else 0.0)
            f_.append(200 * right / (len(g) + len(p)) if g or p else 0.0)
        return {"valid_spans": gold_spans[t], "train_spans": train_types[t], "precision": statistics.mean(p_),
                "recall": statistics.mean(r_), "f1": statistics.mean(f_)}

    return points_rows(per_run, lambda e: e.type, types, extra)










def pm(row: dict) -> str:
    return f"{row['lost_points']:.2f} ± {row['lost_points_std']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="tagging-targets", help="the MLflow experiment holding the runs")
    parser.add_argument("--recipe", default="snips_slots", help="the recipe (its `experiment` tag)")
    parser.add_argument("--runs", help="comma-separated run ids to analyse instead (e.g. pilots)")
    parser.add_argument("--tracking-uri", help="the MLflow store (default: MLFLOW_TRACKING_URI, else logs/mlflow.db)")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared/data/snips",
                        help="the folder of train/ and valid/ (default: ../shared/data/snips)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/tagging/results/slots")
    parser.add_argument("--examples", type=int, default=12, help="error spans listed per table (default 12)")
    args = parser.parse_args()

    from rnnlab.cli import one_line_errors

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.time()
    with one_line_errors():
        import mlflow

        from rnnlab.data.snips import read_split
        from rnnlab.tracking.mlflow_store import default_tracking_uri, require_store

        uri = args.tracking_uri or default_tracking_uri()
        require_store(uri, "slots.py")
        runs = select_runs(mlflow.MlflowClient(uri), args.experiment, args.recipe, uri,
                           args.runs.split(",") if args.runs else None)
        train = read_split(args.data_root / "train", slots=True)
        valid = read_split(args.data_root / "valid", slots=True)
        train_words = [u.split() for u in train.utterances]
        words = [u.split() for u in valid.utterances]
        gold, intents = valid.slots, valid.intents

        schema: dict[str, set[str]] = {}
        train_spans: dict[str, set[str]] = {}  # type → the word strings it spans in training
        train_types: Counter = Counter()
        span_intents: dict[str, Counter] = {}  # a training span's words → Counter((intent, type))
        for ws, tags, intent in zip(train_words, train.slots, train.intents, strict=True):
            for t, first, last in spans(tags):
                text = " ".join(ws[first:last + 1])
                schema.setdefault(intent, set()).add(t)
                train_spans.setdefault(t, set()).add(text)
                train_types[t] += 1
                span_intents.setdefault(text, Counter())[(intent, t)] += 1
        vocabulary = {w for ws in train_words for w in ws}

        def novelty_of(t: str, text: str) -> str:
            if text in train_spans.get(t, ()):
                return NOVELTY[0]
            return NOVELTY[1] if all(w in vocabulary for w in text.split()) else NOVELTY[2]

        per_run = []
        for run in runs:
            tag_valid(run, words, intents, schema, uri)
            per_run.append(errors_of(gold, run.predicted, words, novelty_of))
            logged = "—" if run.logged is None else f"{100 * run.logged:.2f}"
            print(f"seed {run.seed} ({run.run_id}): valid span F1 {span_f1(gold, run.predicted):.2f} (the store's "
                  f"test/span_f1, valid: {logged}); gold intent's schema imposed: "
                  f"{span_f1(gold, run.oracle):.2f}; {time.time() - started:.0f} s", file=sys.stderr)

    f1s = [span_f1(gold, run.predicted) for run in runs]
    oracle_f1s = [span_f1(gold, run.oracle) for run in runs]
    n_gold = per_run[0][1]
    types = type_rows(gold, runs, per_run, train_types)
    kinds = points_rows(per_run, lambda e: e.kind, KINDS)
    articles = points_rows(per_run, lambda e: "boundary: a leading the / a / an only" if e.article else "",
                           ("boundary: a leading the / a / an only",))
    article_spans = {t: Counter() for t in ("inside", "before")}  # training: a span's article inside it or before
    for ws, tags in zip(train_words, train.slots, strict=True):
        for t, first, _ in spans(tags):
            if ws[first] in ARTICLES:
                article_spans["inside"][t] += 1
            elif first and ws[first - 1] in ARTICLES:
                article_spans["before"][t] += 1
    gold_novelty = Counter(novelty_of(s[0], " ".join(words[k][s[1]:s[2] + 1]))
                           for k, tags in enumerate(gold) for s in spans(tags))

    def recall_of(label: str) -> dict:
        hits = []
        for run in runs:
            g = [(k, *s) for k, tags in enumerate(gold) for s in spans(tags)
                 if novelty_of(s[0], " ".join(words[k][s[1]:s[2] + 1])) == label]
            p = {(k, *s) for k, tags in enumerate(run.predicted) for s in spans(tags)}
            hits.append(percent(sum(span in p for span in g), len(g)))
        return {"valid_gold_spans": gold_novelty[label], "recall": statistics.mean(hits)}

    novelty = points_rows(per_run, lambda e: e.novelty, NOVELTY, recall_of)
    intent_count = Counter(intents)
    gold_per_intent = Counter(intents[k] for k, tags in enumerate(gold) for _ in spans(tags))

    def intent_extra(intent: str) -> dict:
        at = [k for k, i in enumerate(intents) if i == intent]
        sub_f1 = [span_f1([gold[k] for k in at], [run.predicted[k] for k in at]) for run in runs]
        sub_or = [span_f1([gold[k] for k in at], [run.oracle[k] for k in at]) for run in runs]
        return {"utterances": intent_count[intent], "gold_spans": gold_per_intent[intent],
                "schema_types": len(schema.get(intent, ())), "f1": statistics.mean(sub_f1),
                "f1_oracle_schema": statistics.mean(sub_or)}

    by_intent = points_rows(per_run, lambda e: intents[e.sentence], sorted(intent_count), intent_extra)

    # outside the gold intent's schema: a FP of such a type, or a FN met by a span of such a type
    def outside(e: Error) -> bool:
        t = e.type if e.side == "FP" else e.other
        return bool(t) and t not in schema.get(intents[e.sentence], set())

    outside_rows = points_rows(per_run, lambda e: "outside the gold intent's schema" if outside(e) else "within",
                               ("outside the gold intent's schema", "within"))
    # the same words a span of another type under another intent in training: is the span's text ambiguous?
    ambiguous = points_rows(
        per_run, lambda e: "span text in training under ≥ 2 types" if len({t for (_, t) in span_intents.get(
            e.words, {})}) > 1 else "one type or unseen as a span",
        ("span text in training under ≥ 2 types", "one type or unseen as a span"))

    confusions = Counter()
    for errors, _, _ in per_run:
        confusions.update((e.type, e.other, intents[e.sentence]) for e in errors
                          if e.side == "FN" and e.kind in ("type", "boundary+type"))
    confusion_rows = [{"gold": g, "predicted": p, "intent": i, "count": n / len(runs),
                       "predicted_in_schema": p in schema.get(i, set())}
                      for (g, p, i), n in confusions.most_common(15)]

    # word level: each valid word's class (the training split's counts), tag accuracy per class
    lexicon = training_tags(train_words, train.slots)
    flat_words = [w for ws in words for w in ws]
    flat_gold = [t for tags in gold for t in tags]
    classes = [word_class(w, lexicon) for w in flat_words]
    word_rows = []
    for label in CLASSES:
        at = [j for j, c in enumerate(classes) if c == label]
        accs, shares = [], []
        for run in runs:
            flat_pred = [t for tags in run.predicted for t in tags]
            wrong = [j for j, (p, g) in enumerate(zip(flat_pred, flat_gold)) if p != g]
            accs.append(percent(sum(flat_pred[j] == flat_gold[j] for j in at), len(at)))
            shares.append(percent(sum(classes[j] == label for j in wrong), len(wrong)))
        word_rows.append({"label": label, "valid_words": len(at), "share": percent(len(at), len(flat_words)),
                          "acc": statistics.mean(accs), "error_share": statistics.mean(shares)})

    # --- the page --------------------------------------------------------------------------------------------
    f1, f1_std = mean_std(f1s)
    of1, of1_std = mean_std(oracle_f1s)
    lines = ["# Where the SNIPS slot recipe loses (valid)", "",
             f"Written by `python experiments/tagging/slots.py` (`bash experiments/tagging/run.sh slots`) from "
             f"MLflow experiment `{args.experiment}`; every number is on the **valid** split (700 utterances, "
             f"{n_gold} gold spans; test is held back). Runs: "
             + ", ".join(f"seed {r.seed} `{r.run_id}` ({f:.2f})" for r, f in zip(runs, f1s))
             + f". Span F1 {f1:.2f} ± {f1_std:.2f}; lost points (100 − F1 = {100 - f1:.2f}) are split by each "
             "error span's worth, 100 / (gold + predicted spans); mean over the runs (± std).", "",
             f"**Oracle intent** (Viterbi with every tag outside the gold intent's training schema forbidden; no "
             f"retraining): {of1:.2f} ± {of1_std:.2f} (" + ", ".join(f"{f:.2f}" for f in oracle_f1s) + ").", ""]
    lines += ["## By slot type (largest loss first)", ""]
    lines += markdown_table(["slot type", "valid spans", "train spans", "P", "R", "F1", "FN", "FP", "lost points"],
                            [[r["label"], r["valid_spans"], r["train_spans"], r["precision"], r["recall"], r["f1"],
                              r["fn"], r["fp"], pm(r)] for r in types if r["lost_points"] > 0]) + [""]
    lines += ["## By error kind", ""]
    lines += markdown_table(["kind", "FN", "FP", "lost points"],
                            [[r["label"], r["fn"], r["fp"], pm(r)] for r in kinds + articles]) + [""]
    lines += ["Training spans with an article: " + "; ".join(
        f"{t} {article_spans['inside'][t]} inside (“the x” a span) / {article_spans['before'][t]} just before"
        for t in ("playlist", "object_name", "movie_name", "restaurant_name", "artist")) + ": the annotation "
        "itself is inconsistent for playlist.", ""]
    lines += ["## By novelty of the span (training split)", ""]
    lines += markdown_table(["span", "valid gold spans", "recall", "FN", "FP", "lost points"],
                            [[r["label"], r["valid_gold_spans"], r["recall"], r["fn"], r["fp"], pm(r)]
                             for r in novelty]) + [""]
    lines += ["Word level (the slot tag of each valid word, by what the training split says of the word):", ""]
    lines += markdown_table(["valid words", "count", "share %", "tag acc %", "share of tag errors %"],
                            [[r["label"], r["valid_words"], r["share"], r["acc"], r["error_share"]]
                             for r in word_rows]) + [""]
    lines += ["## By intent", ""]
    lines += markdown_table(["intent", "utterances", "gold spans", "slot types in schema", "F1",
                             "F1, oracle schema", "FN", "FP", "lost points"],
                            [[r["label"], r["utterances"], r["gold_spans"], r["schema_types"], r["f1"],
                              r["f1_oracle_schema"], r["fn"], r["fp"], pm(r)] for r in by_intent]) + [""]
    lines += ["## Would the intent disambiguate?", "",
              "An error span is *outside the schema* when its predicted type (FP) or the type that met it (FN of "
              "kind type / boundary+type) never occurs in training with the utterance's gold intent.", ""]
    lines += markdown_table(["error spans", "FN", "FP", "lost points"],
                            [[r["label"], r["fn"], r["fp"], pm(r)] for r in outside_rows + ambiguous]) + [""]
    lines += ["Most frequent type confusions (FN of kind type / boundary+type: gold → predicted, mean count over "
              "runs):", ""]
    lines += markdown_table(["gold", "predicted", "intent", "count", "predicted type in the intent's schema"],
                            [[r["gold"], r["predicted"], r["intent"], r["count"],
                              "yes" if r["predicted_in_schema"] else "no"] for r in confusion_rows]) + [""]
    first = per_run[0][0]
    lines += [f"Error spans of seed {runs[0].seed}, the first {args.examples} of each kind (utterance; side; "
              "span type ← other side's type; words):", ""]
    for kind in KINDS:
        some = [e for e in first if e.kind == kind][:args.examples]
        lines += [f"- **{kind}**: " + "; ".join(
            f"{e.sentence + 1} {e.side} {e.type}{' ← ' + e.other if e.other else ''} “{cell(e.words)}” "
            f"({intents[e.sentence]})" for e in some)]
    lines.append("")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slots.md").write_text("\n".join(lines))
    write_csv(args.out / "types.csv", types)
    write_csv(args.out / "kinds.csv", kinds + articles)
    write_csv(args.out / "novelty.csv", novelty + word_rows)
    write_csv(args.out / "intents.csv", by_intent + outside_rows + ambiguous)
    write_csv(args.out / "confusions.csv", confusion_rows)
    print("\n".join(lines))
    print(f"\nwritten to {args.out}: slots.md, types.csv, kinds.csv, novelty.csv, intents.csv, confusions.csv "
          f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
