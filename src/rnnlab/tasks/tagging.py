"""`task=tagging`: one tag per word (part of speech, BIO slots), the many-to-many synchronised shape.

The network is the `model=` family's tagger (rnnlab/models/tagger.py: a recurrent stack, bidirectional by default,
and a linear layer per word, scoring each word's tags; or `model=hmm`, counted, rnnlab/tasks/hmm.py). The output
layer over those scores (rnnlab/nn/crf.py) is the task's:

  task.crf=false   each word's tag on its own: training minimises the cross-entropy of each word's gold tag, and a
                   word's predicted tag is the argmax of its scores
  task.crf=true    a linear-chain CRF, p(y | x) ∝ exp(Σ_i scores[i, y_i] + transitions of y): training minimises
                   −log p(gold tags | sentence), the forward algorithm's log Z minus the gold path's score, and the
                   predicted tags are the Viterbi sequence; its transition scores are learned with the network

Either way the loss is summed over the sentences and divided by the batch's real words (padding is never scored: its
tag is IGNORE); train/loss_epoch weighs every word once. (The HMM decodes its own chain: its predicted tags are its
Viterbi sequence, `predict`, and task.crf does not apply.) `tag(sentences)` tags new sentences as evaluation
predicts them (tag.py).

Data that labels each sentence as a whole (data=snips_slots: each utterance's intent) can train the tagger to
classify the sentence too, the joint intent detection and slot filling of spoken language understanding:

  task.intent=none         the tags only (the default; the only choice for data without intents)
  task.intent=joint        an intent classifier over the same states (their max over the words), trained beside
                           the tags: loss = tag loss per word + task.intent_weight × intent cross-entropy per sentence
  task.intent=conditioned  joint, and each word's tag scores also read the predicted intent distribution
                           (rnnlab/models/tagger.py), so a slot's type can depend on what the request is for

Metrics, per split (`val`, `test`), over every word of the split once (summed exactly across DDP processes):

  loss           the negative log-likelihood of the gold tags per word: the mean cross-entropy per word, or with
                 task.crf=true −Σ log p(gold tag sequence | sentence) / words
  acc            token accuracy: the share of words tagged right
  acc_unseen     the same over the words the training split never has (logged when the split has one)
  sentence_acc   the share of sentences with every word right
  macro_f1       the unweighted mean over the tags of their F1, so a rare tag counts as much as a frequent one
  f1/<tag>       each tag's F1 (a character MLflow refuses in a name is spelled out: PRP$ → PRP_dollar_sign)
  span_precision, span_recall, span_f1
                 for a BIO tag set (every tag O, B-x or I-x): the spans (chunks) as conlleval finds them, a span
                 counting as right only with its exact extent and type (seqeval's default mode, which follows
                 conlleval: an I-x after O or after another type starts a span)
  intent_acc, intent_loss, frame_acc
                 with task.intent=joint|conditioned: the share of sentences whose intent is right, its cross-entropy,
                 and the share with the intent AND every tag right (the "sentence accuracy" or "overall accuracy"
                 of joint intent and slot papers: the whole semantic frame right)
  acc_optimal, acc_left_to_right_optimal
                 the Bayes-optimal token accuracy and the best a left-to-right tagger can reach, when the data knows
                 them (data=synthetic_tagging)

Artifacts after every validation (not the sanity check) and after test, into the run directory and MLflow:
`confusion/<split>[_epoch_NNN].png`, the confusion matrix of the `confusion_tags` tags most often confused (rows:
gold, columns: predicted; the other tags summed into "(other)") and `examples/<split>[_epoch_NNN].md`, the split's
first `num_examples` sentences tagged, each wrong tag marked with the gold one; with task.crf=true also
`transitions/<split>[_epoch_NNN].png`, the CRF's transition scores (rows: a tag or the start, columns: the next tag
or the end). Checkpointing follows `monitor` (conf/task/tagging.yaml: val/acc).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn

from rnnlab import distributed
from rnnlab.data.tagging import PAD_ID as UNK_ID  # <unk>, whose id the padding shares
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.nn.crf import CRF, PerWordSoftmax
from rnnlab.nn.dropout import check_word_dropout, drop_words
from rnnlab.tasks.base import Task
from rnnlab.tasks.classification import class_scores
from rnnlab.tracking.artifacts import write_text
from rnnlab.tracking.plots import plot_confusion, plot_transitions

STAGES = ("val", "test")
IGNORE = -100  # the tag of padding (rnnlab.data.tagging), which cross-entropy skips
COUNTS = ("nll", "words", "correct", "unseen", "unseen_correct", "sentences", "sentences_correct")
INTENT_COUNTS = ("intent_nll", "intent_correct", "frames_correct")
INTENTS = ("none", "joint", "conditioned")


class TaggingTask(Task):
    shape, option = "tagger", "task=tagging"
    data_inputs = ("vocab_size", "num_tags", "pad_id", "num_chars", "num_intents")
    takes_tokenizer = True
    summary_metrics = ("val/loss", "val/acc", "val/acc_unseen", "val/sentence_acc", "val/macro_f1", "val/span_f1",
                       "val/intent_acc", "val/frame_acc", "test/acc", "fit_seconds")
    report_metrics = ("val/acc", "val/acc_unseen", "val/span_f1", "val/intent_acc", "test/acc")

    def __init__(self, vocab_size: int, num_tags: int, pad_id: int, num_chars: int, model: dict[str, Any],
                 optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None, crf: bool = False,
                 word_dropout: float = 0.0, num_examples: int = 20, confusion_tags: int = 15,
                 tokenizer: dict | None = None, num_intents: int = 0, intent: str = "none",
                 intent_weight: float = 1.0):
        """model/optimizer/scheduler are the config groups as dicts and tokenizer the data's `tokenizer_state()`
        (its words, characters and tags): all hyperparameters, so a checkpoint alone rebuilds the tagger."""
        super().__init__()
        for key, value in (("num_examples", num_examples), ("confusion_tags", confusion_tags)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"task.{key}={value!r} is invalid: must be an integer ≥ 0")
        check_word_dropout(word_dropout)
        if not isinstance(crf, bool):
            raise ConfigError(f"task.crf={crf!r} is invalid: true (a CRF over the tags) or false (softmax per word)")
        check_intent(intent, intent_weight, num_intents)
        if intent != "none" and not registry.trains(model):
            raise ConfigError(f"task.intent={intent} trains an intent classifier beside the tagger, and "
                              f"model={registry.family(model)} is counted, with none: set task.intent=none")
        self.save_hyperparameters(logger=False)
        intents = {} if intent == "none" else {"num_intents": num_intents,
                                               "condition_on_intent": intent == "conditioned"}
        self.model = self.build_encoder(model, (tokenizer or {}).get("words"), vocab_size=vocab_size,
                                        num_tags=num_tags, pad_id=pad_id, num_chars=num_chars, **intents)
        self.intents = [str(name) for name in (tokenizer or {}).get("intents") or range(num_intents)] if intents \
            else []
        self.output = self.output_layer(crf, num_tags)
        self.tags = [str(tag) for tag in (tokenizer or {}).get("tags") or range(num_tags)]
        self.bio = is_bio(self.tags)
        self._totals: dict[str, torch.Tensor] = {}
        self._tagged: dict[int, tuple[list[str], list[int], list[int]]] = {}  # index → (words, gold, predicted)

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], ckpt: str, device: str = "cpu", **settings: Any):
        hparams = checkpoint.get("hyper_parameters") or {}
        for key in ("num_chars", "num_intents"):  # a checkpoint written before character features or intents
            if "num_tags" in hparams and key not in hparams:
                hparams = {**hparams, key: 0}
        checkpoint = {**checkpoint, "hyper_parameters": hparams}
        return super().from_checkpoint_dict(checkpoint, ckpt, device, **settings)

    def output_layer(self, crf: bool, num_tags: int) -> CRF | PerWordSoftmax:
        """What reads the network's scores: a CRF over the tag sequence, or each word's softmax."""
        return CRF(num_tags) if crf else PerWordSoftmax()

    # --- the network's scores and the predicted tags --------------------------------------------------
    def scores(self, batch: dict) -> torch.Tensor:
        """(B, T, K) each word's tag scores (per word: their softmax is p(tag | the sentence); CRF: emissions)."""
        return self.model(batch["tokens"], batch["tokens_lengths"], batch.get("chars"))

    def scores_and_intents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """scores, and with task.intent the intent logits (B, I) of the same forward pass (else None)."""
        if not self.intents:
            return self.scores(batch), None
        return self.model(batch["tokens"], batch["tokens_lengths"], batch.get("chars"), intents=True)

    def predict(self, batch: dict, scores: torch.Tensor) -> torch.Tensor:
        """(B, T) the tags: each word's most probable one, or with a CRF the most probable sequence (Viterbi)."""
        return self.output.decode(scores, batch["tokens_lengths"])

    def nll(self, batch: dict, scores: torch.Tensor) -> torch.Tensor:
        """−log p(gold tags | sentence), summed over the batch's sentences."""
        return self.output.nll(scores, batch["tags"], batch["tokens_lengths"]).sum()

    # --- inference ----------------------------------------------------------------------------------
    def tag(self, sentences: list[list[str]], batch_size: int = 64) -> list[list[str]]:
        """Each sentence's tags, one per word, predicted as evaluation predicts them (`scores`, then `predict`); a
        sentence with no word gets none. Words are read as the training data read them (the checkpoint's
        vocabulary and lowercasing): any other word is <unk> (the HMM reads the words themselves)."""
        return self.tag_and_classify(sentences, batch_size)[0]

    @torch.no_grad()
    def tag_and_classify(self, sentences: list[list[str]], batch_size: int = 64
                         ) -> tuple[list[list[str]], list[str] | None]:
        """`tag`, and with task.intent each sentence's predicted intent ("" for a sentence with no word), from the
        same forward pass; None for a tagger without intents."""
        from lightning.pytorch.utilities import move_data_to_device

        from rnnlab.data.tagging import collate_tagged, untagged

        if not self.hparams.tokenizer:
            raise ConfigError("this checkpoint holds no vocabulary (tokenizer), so text cannot be read; retrain it")
        dataset = untagged(sentences, self.hparams.tokenizer)
        todo = [k for k, words in enumerate(sentences) if words]
        out: list[list[str]] = [[] for _ in sentences]
        intents: list[str] | None = [""] * len(sentences) if self.intents else None
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                batch = move_data_to_device(collate_tagged([dataset[k] for k in chunk]), self.device)
                scores, intent_logits = self.scores_and_intents(batch)
                predicted = self.predict(batch, scores.float())  # (B, T)
                for k, row in zip(chunk, predicted.tolist()):
                    out[k] = [self.tags[tag] for tag in row[:len(sentences[k])]]
                if intents is not None:
                    for k, intent in zip(chunk, intent_logits.argmax(-1).tolist()):
                        intents[k] = self.intents[intent]
        finally:
            self.train(was_training)
        return out, intents

    # --- training -----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if self.hparams.word_dropout:  # words (not their characters) read as <unk> now and then: rnnlab/nn/dropout.py
            batch = {**batch, "tokens": drop_words(batch["tokens"], self.hparams.word_dropout, UNK_ID)}
        scores, intent_logits = self.scores_and_intents(batch)
        words = int(batch["tokens_lengths"].sum())
        loss = self.nll(batch, scores) / words  # mean over the real words
        self.train_epoch.log_step(self, loss.detach(), words)
        if intent_logits is not None:  # + the intent's cross-entropy, a mean over the sentences
            intent_loss = F.cross_entropy(intent_logits.float(), batch["intent"])
            self.log("train/intent_loss", intent_loss.detach(), on_step=True, on_epoch=False)
            loss = loss + self.hparams.intent_weight * intent_loss
        return loss

    # --- evaluation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._start_evaluation()

    def on_test_epoch_start(self) -> None:
        self._start_evaluation()

    def _start_evaluation(self) -> None:
        K = len(self.tags)
        self._totals = {name: torch.zeros((), dtype=torch.float64)
                        for name in COUNTS + (INTENT_COUNTS if self.intents else ())}
        self._totals["confusion"] = torch.zeros(K, K, dtype=torch.float64)
        self._tagged = {}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def _eval_step(self, batch: dict) -> None:
        scores, intent_logits = self.scores_and_intents(batch)
        scores = scores.float()
        predicted, gold, lengths = self.predict(batch, scores), batch["tags"], batch["tokens_lengths"]
        real = gold != IGNORE
        right = (predicted == gold) & real
        unseen = batch["unseen"] & real
        K = len(self.tags)
        all_right = right.sum(1) == lengths.to(right.device)  # (B,) every tag of the sentence right
        counts = {"nll": self.nll(batch, scores),
                  "words": real.sum(), "correct": right.sum(), "unseen": unseen.sum(),
                  "unseen_correct": (right & unseen).sum(), "sentences": torch.tensor(len(lengths)),
                  "sentences_correct": all_right.sum(),
                  "confusion": torch.bincount(gold[real] * K + predicted[real], minlength=K * K).view(K, K)}
        if intent_logits is not None:
            intent_logits, intent = intent_logits.float(), batch["intent"]
            intent_right = intent_logits.argmax(-1) == intent
            counts |= {"intent_nll": F.cross_entropy(intent_logits, intent, reduction="sum"),
                       "intent_correct": intent_right.sum(), "frames_correct": (intent_right & all_right).sum()}
        for name, value in counts.items():
            self._totals[name] += value.detach().double().cpu()
        for row, index in enumerate(batch["index"].tolist()):
            n = int(lengths[row])
            self._tagged[index] = (batch["words"][row], gold[row, :n].tolist(), predicted[row, :n].tolist())

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def _finish(self, stage: str) -> None:
        totals = distributed.sum_by_key(self._totals, self.device)  # every process's words
        tagged = dict(sorted(distributed.merge_dicts(self._tagged).items()))
        metrics = self._metrics(stage, totals, tagged)
        for name, method in (("acc_optimal", "optimal_accuracy"),
                             ("acc_left_to_right_optimal", "left_to_right_optimal_accuracy")):
            optimal = self.datamodule_answer(method, stage)  # generated data knows how well one can do
            if optimal is not None:
                metrics[f"{stage}/{name}"] = torch.tensor(float(optimal))
        self.log_dict(metrics, sync_dist=True)  # already equal on every process
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._write_artifacts(stage, totals["confusion"], tagged)

    def _metrics(self, stage: str, totals: dict[str, torch.Tensor], tagged: dict) -> dict[str, torch.Tensor]:
        words = totals["words"].clamp(min=1)
        metrics = {f"{stage}/loss": totals["nll"] / words, f"{stage}/acc": totals["correct"] / words,
                   f"{stage}/sentence_acc": totals["sentences_correct"] / totals["sentences"].clamp(min=1)}
        if totals["unseen"] > 0:
            metrics[f"{stage}/acc_unseen"] = totals["unseen_correct"] / totals["unseen"]
        if "intent_correct" in totals:
            sentences = totals["sentences"].clamp(min=1)
            metrics |= {f"{stage}/intent_acc": totals["intent_correct"] / sentences,
                        f"{stage}/intent_loss": totals["intent_nll"] / sentences,
                        f"{stage}/frame_acc": totals["frames_correct"] / sentences}
        scores = class_scores(totals["confusion"].cpu(), [metric_name(tag) for tag in self.tags], stage)
        metrics |= {key: value for key, value in scores.items() if key == f"{stage}/macro_f1"
                    or key.startswith(f"{stage}/f1/")}
        if self.bio and tagged:
            gold = [[self.tags[k] for k in g] for _, g, _ in tagged.values()]
            predicted = [[self.tags[k] for k in p] for _, _, p in tagged.values()]
            metrics |= {f"{stage}/span_{name}": torch.tensor(value)
                        for name, value in span_scores(gold, predicted).items()}
        return {key: torch.as_tensor(value).float().to(self.device) for key, value in metrics.items()}  # NCCL syncs

    # --- artifacts ----------------------------------------------------------------------------------
    def _write_artifacts(self, stage: str, confusion: torch.Tensor, tagged: dict) -> None:
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        name = f"{stage}_epoch_{self.current_epoch:03d}" if fitting else stage
        directory = Path(self.trainer.default_root_dir)
        when = f"epoch {self.current_epoch}, step {self.global_step}"
        if self.hparams.confusion_tags:
            matrix, names = most_confused(confusion.cpu(), self.tags, self.hparams.confusion_tags)
            shown = len(names) - (names[-1] == "(other)")
            plot = plot_confusion(matrix, names, directory / "confusion" / f"{name}.png",
                                  title=f"{stage}: the {shown} most confused tags, {when}")
            self.log_files([plot], "confusion")
        if self.hparams.num_examples:
            page = tagged_examples(list(tagged.values())[: self.hparams.num_examples], self.tags,
                                   title=f"{stage}: tagged sentences, {when}")
            self.log_files([write_text(directory / "examples" / f"{name}.md", page)], "examples")
        if isinstance(self.output, CRF):
            plot = plot_transitions(self.output.transitions.detach().float().cpu(), self.tags,
                                    directory / "transitions" / f"{name}.png",
                                    title=f"CRF transition scores, {when}")
            self.log_files([plot], "transitions")


def check_intent(intent: object, weight: object, num_intents: int) -> None:
    """Raise ConfigError naming the first invalid intent setting."""
    if intent not in INTENTS:
        raise ConfigError(f"task.intent={intent!r} is invalid: choose one of {', '.join(INTENTS)}")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ConfigError(f"task.intent_weight={weight!r} is invalid: must be a number > 0")
    if intent != "none" and num_intents < 2:
        raise ConfigError(f"task.intent={intent} classifies each sentence's intent, and this data gives "
                          + ("none" if not num_intents else "only one") + " (data=snips_slots gives SNIPS's 7); "
                          "set task.intent=none, or use data with an intent per sentence")


def is_bio(tags: list[str]) -> bool:
    """A BIO tag set: every tag O, B-<type> or I-<type>, and some B-."""
    return any(tag.startswith("B-") for tag in tags) and all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tags)


def span_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """conlleval's overall span precision, recall and F1 (fractions, not percentages): a predicted span is right
    when a gold span has its type, start and end. Spans are found as conlleval finds them (seqeval's default mode:
    a span starts at B-x, or at I-x after O or after another type, and ends where the next tag does not continue
    it)."""
    from seqeval.metrics.sequence_labeling import get_entities

    gold_spans = {(k, *span) for k, sentence in enumerate(gold) for span in get_entities(sentence)}
    found = {(k, *span) for k, sentence in enumerate(predicted) for span in get_entities(sentence)}
    right = len(gold_spans & found)
    precision = right / len(found) if found else 0.0
    recall = right / len(gold_spans) if gold_spans else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def metric_name(tag: str) -> str:
    """The tag as an MLflow metric name: ASCII letters, digits, _, - and space kept, any other character spelled out
    by its Unicode name (PRP$ → PRP_dollar_sign, `.` → full_stop), so that no two tags collide (Lightning would
    delete the character) and no name ends in a path's `.`."""
    pieces, run = [], ""
    for character in tag:
        if character.isascii() and (character.isalnum() or character in "_- "):
            run += character
            continue
        pieces += [run] if run else []
        run = ""
        pieces.append(unicodedata.name(character, f"U{ord(character):04X}").lower().replace(" ", "_").replace("-", "_"))
    return "_".join([*pieces, run] if run else pieces)


def most_confused(confusion: torch.Tensor, tags: list[str], count: int) -> tuple[torch.Tensor, list[str]]:
    """The confusion matrix of the (at most) `count` tags with the most errors, gold or predicted, in tag order (with
    no error at all, the most frequent tags), and an "(other)" row and column summing every other tag, so that each
    gold row still sums to its tag's words."""
    errors = confusion - torch.diag(confusion.diagonal())
    by_errors = errors.sum(0) + errors.sum(1)
    ranking = by_errors if by_errors.any() else confusion.sum(1)
    chosen = sorted(k for k in ranking.argsort(descending=True)[:count].tolist() if ranking[k] > 0)
    rest = [k for k in range(len(tags)) if k not in chosen]
    groups = [[k] for k in chosen] + ([rest] if rest else [])
    matrix = torch.tensor([[float(confusion[g][:, h].sum()) for h in groups] for g in groups])
    return matrix, [tags[k] for k in chosen] + (["(other)"] if rest else [])


def tagged_examples(tagged: list[tuple[list[str], list[int], list[int]]], tags: list[str], title: str) -> str:
    """Markdown: each sentence as word/TAG, a wrong tag in bold followed by the gold one (word/**PRED**≠GOLD)."""
    lines = [f"# {title}", "", "A wrong tag is **bold**, the gold one after ≠.", ""]
    for k, (words, gold, predicted) in enumerate(tagged, start=1):
        errors = sum(g != p for g, p in zip(gold, predicted))
        shown = [f"{word}/{tags[p]}" if g == p else f"{word}/**{tags[p]}**≠{tags[g]}"
                 for word, g, p in zip(words, gold, predicted)]
        escaped = " ".join(shown).replace("|", "\\|")
        lines.append(f"{k}. {escaped}  ({errors} wrong)" if errors else f"{k}. {escaped}")
    return "\n".join(lines) + "\n"
