"""`task=classification`: one label per text (sentiment, a chatbot's intents), the many-to-one shape.

Training minimises the cross-entropy of the gold class, averaged over the texts of a batch (train/loss; its epoch
mean train/loss_epoch weighs every text once; train/tokens_per_s counts the words read). The network is the
`model=` family's classifier (rnnlab/models/classifier.py: a recurrent encoder pooled by `task.pooling`, or the
bag of words); `model.init_from` starts the recurrent encoder from a task=lm run's weights (models/transfer.py).

Metrics, per split (`val`, `test`), over every text of the split once (also under DDP: torchmetrics syncs them):

  loss          the mean cross-entropy
  acc           accuracy
  macro_f1      the unweighted mean of the classes' F1, so a rare class counts as much as a frequent one
  precision/<class>, recall/<class>, f1/<class>
  acc_optimal   the Bayes-optimal accuracy on the same texts, when the data knows it (generated data)
  acc_bow_optimal  the best accuracy any bag-of-words classifier can reach on them, likewise

Artifacts after every validation (not the sanity check) and after test, into the run directory and MLflow:
`confusion/<split>[_epoch_NNN].png` (rows: gold, columns: predicted) and `misclassified/<split>[_epoch_NNN].md`, the
`num_misclassified` wrong predictions the model was surest of (text, gold, predicted, its probability); with
`task.pooling=attention` also `attention/<split>[_epoch_NNN].html`, the split's first `num_attention_examples` texts
with each word shaded by its attention weight.
Checkpointing follows `monitor` (conf/task/classification.yaml: val/acc).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from rnnlab import distributed
from rnnlab.data.classification import UNK_ID
from rnnlab.errors import ConfigError
from rnnlab.nn.dropout import check_word_dropout, drop_words
from rnnlab.tasks.base import Task
from rnnlab.tracking.artifacts import write_text
from rnnlab.tracking.plots import plot_confusion, shaded_words

STAGES = ("val", "test")


class ClassificationTask(Task):
    shape, option = "classifier", "task=classification"
    data_inputs = ("vocab_size", "num_classes", "pad_id")
    takes_tokenizer = True
    summary_metrics = ("val/loss", "val/acc", "val/macro_f1", "test/acc", "fit_seconds")
    report_metrics = ("val/acc", "val/macro_f1", "test/acc")

    def __init__(self, vocab_size: int, num_classes: int, pad_id: int, model: dict[str, Any],
                 optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None, pooling: str = "last",
                 word_dropout: float = 0.0, num_misclassified: int = 50, num_attention_examples: int = 20,
                 tokenizer: dict | None = None):
        """model/optimizer/scheduler are the config groups as dicts and tokenizer the data's `tokenizer_state()`
        (vocabulary and classes): all hyperparameters, so a checkpoint alone reads and classifies text."""
        super().__init__()
        for key, value in (("num_misclassified", num_misclassified),
                           ("num_attention_examples", num_attention_examples)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"task.{key}={value!r} is invalid: must be an integer ≥ 0")
        check_word_dropout(word_dropout)
        self.save_hyperparameters(logger=False)
        self.model = self.build_encoder(model, (tokenizer or {}).get("vocab"), vocab_size=vocab_size,
                                        num_classes=num_classes, pad_id=pad_id, pooling=pooling)
        self.classes = list((tokenizer or {}).get("classes") or range(num_classes))
        self.nll = torch.nn.ModuleDict({stage: MeanMetric() for stage in STAGES})
        self.confusion = torch.nn.ModuleDict({stage: MulticlassConfusionMatrix(num_classes) for stage in STAGES})
        self._predictions: dict[int, tuple[int, float]] = {}  # index → (predicted class, its probability)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, lengths)

    # --- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def classify(self, texts: list[str], batch_size: int = 64) -> list[list[float] | None]:
        """Each text's class probabilities, in the order of `self.classes` (None for a text with no word)."""
        from rnnlab.data.batching import pad_sequences
        from rnnlab.data.classification import PAD_ID, reader_from_state

        if not self.hparams.tokenizer:
            raise ConfigError("this checkpoint holds no vocabulary (tokenizer), so text cannot be read; retrain it")
        reader = reader_from_state(self.hparams.tokenizer)
        ids = [reader.encode(text) for text in texts]
        todo = [i for i, tokens in enumerate(ids) if tokens]
        out: list[list[float] | None] = [None] * len(texts)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                tokens, lengths = pad_sequences([ids[i] for i in chunk], PAD_ID)
                probabilities = self.model(tokens.to(self.device), lengths).float().softmax(-1)
                for i, row in zip(chunk, probabilities.tolist()):
                    out[i] = row
        finally:
            self.train(was_training)
        return out

    # --- training -----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if getattr(self.model, "weighting", None) == "tfidf" and not self.model.idf_fitted:  # resumed: kept
            train = self.datamodule_answer("bucket_dataset", "train")
            if train is None:
                raise ConfigError("model.weighting=tfidf counts document frequencies in the training split: fit "
                                  "with a classification data module (trainer.fit(task, datamodule=...))")
            self.model.fit_idf(train.token_ids)

    def training_step(self, batch, batch_idx):
        tokens = drop_words(batch["tokens"], self.hparams.word_dropout, UNK_ID)
        logits = self.model(tokens, batch["tokens_lengths"])
        loss = F.cross_entropy(logits, batch["label"])  # the mean over the batch's texts
        self.train_epoch.log_step(self, loss.detach(), int(batch["tokens_lengths"].sum()), weight=len(logits))
        return loss

    # --- evaluation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._predictions = {}

    def on_test_epoch_start(self) -> None:
        self._predictions = {}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_step(self, batch, stage: str) -> None:
        logits = self.model(batch["tokens"], batch["tokens_lengths"])
        self.nll[stage].update(F.cross_entropy(logits, batch["label"]), weight=len(logits))
        probability, predicted = logits.float().softmax(-1).max(-1)
        self.confusion[stage].update(predicted, batch["label"])
        for index, k, p in zip(batch["index"].tolist(), predicted.tolist(), probability.tolist()):
            self._predictions[index] = (k, p)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def _finish(self, stage: str) -> None:
        confusion = self.confusion[stage].compute().double()  # (gold, predicted), every process's texts
        self.confusion[stage].reset()
        metrics = {f"{stage}/loss": self.nll[stage].compute(), **class_scores(confusion, self.classes, stage)}
        self.nll[stage].reset()
        for name, method in (("acc_optimal", "optimal_accuracy"), ("acc_bow_optimal", "bow_optimal_accuracy")):
            optimal = self.datamodule_answer(method, stage)  # generated data knows how well one can do
            if optimal is not None:
                metrics[f"{stage}/{name}"] = torch.tensor(float(optimal))
        self.log_dict(metrics, sync_dist=True)  # already equal on every process
        predictions = distributed.merge_dicts(self._predictions)
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._write_artifacts(stage, confusion, predictions)

    # --- artifacts ----------------------------------------------------------------------------------
    def _write_artifacts(self, stage: str, confusion: torch.Tensor, predictions: dict[int, tuple[int, float]]):
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        name = f"{stage}_epoch_{self.current_epoch:03d}" if fitting else stage
        directory = Path(self.trainer.default_root_dir)
        plot = plot_confusion(confusion, self.classes, directory / "confusion" / f"{name}.png",
                              title=f"{stage}, epoch {self.current_epoch}, step {self.global_step}")
        self.log_files([plot], "confusion")
        texts, gold = self.datamodule_answer("texts", stage), self.datamodule_answer("labels", stage)
        if texts is not None and self.hparams.num_misclassified:
            table = misclassified_table(texts, gold, predictions, self.classes, self.hparams.num_misclassified,
                                        title=f"{stage}: the most confident mistakes, epoch {self.current_epoch}")
            self.log_files([write_text(directory / "misclassified" / f"{name}.md", table)], "misclassified")
        if texts is not None and getattr(self.model, "pooling", None) == "attention" and \
                self.hparams.num_attention_examples:
            page = self._attention_page(stage, texts, gold, predictions,
                                        title=f"{stage}: attention over the words, epoch {self.current_epoch}")
            self.log_files([write_text(directory / "attention" / f"{name}.html", page)], "attention")

    @torch.no_grad()
    def _attention_page(self, stage: str, texts: list[str], gold: list[int],
                        predictions: dict[int, tuple[int, float]], title: str) -> str:
        """The first num_attention_examples texts of the split, each word shaded by its attention weight."""
        from rnnlab.data.batching import pad_sequences
        from rnnlab.data.classification import PAD_ID

        dataset = self.datamodule_answer("bucket_dataset", stage)
        shown = [i for i in range(min(self.hparams.num_attention_examples, len(texts))) if i in predictions]
        tokens, lengths = pad_sequences([dataset[i]["tokens"] for i in shown], PAD_ID)
        _, weights = self.model(tokens.to(self.device), lengths.to(self.device), return_attention=True)
        rows = [(texts[i].split(), weights[row, : int(lengths[row])].tolist(),  # the words are the tokens read
                 f"gold {self.classes[gold[i]]}, predicted {self.classes[predictions[i][0]]}")
                for row, i in enumerate(shown)]
        return shaded_words(title, rows)


def class_scores(confusion: torch.Tensor, classes: list, stage: str) -> dict[str, torch.Tensor]:
    """acc, macro_f1 and each class's precision, recall and F1 from a confusion matrix (rows gold, columns
    predicted). A class never predicted has precision 0, one never present recall 0 (and F1 0), as sklearn's
    zero_division=0."""
    true_positive = confusion.diagonal()
    predicted, present = confusion.sum(0), confusion.sum(1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), 0.0)
    recall = torch.where(present > 0, true_positive / present.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    scores = {f"{stage}/acc": true_positive.sum() / confusion.sum().clamp(min=1), f"{stage}/macro_f1": f1.mean()}
    for k, name in enumerate(classes):
        scores |= {f"{stage}/precision/{name}": precision[k], f"{stage}/recall/{name}": recall[k],
                   f"{stage}/f1/{name}": f1[k]}
    return {key: value.float() for key, value in scores.items()}


def misclassified_table(texts: list[str], gold: list[int], predictions: dict[int, tuple[int, float]], classes: list,
                        count: int, title: str) -> str:
    """A markdown table of the `count` wrong predictions with the highest probability."""
    wrong = sorted(((p, i, k) for i, (k, p) in predictions.items() if k != gold[i]), reverse=True)[:count]
    lines = [f"# {title}", "", "| # | text | gold | predicted | probability |", "|---|---|---|---|---|"]
    for p, i, k in wrong:
        lines.append(f"| {i} | {texts[i].replace('|', chr(92) + '|')} | {classes[gold[i]]} | {classes[k]} | {p:.3f} |")
    return "\n".join(lines) + "\n"
