"""`task=translation`: an encoder–decoder (rnnlab/models/seq2seq.py) trained on sentence pairs, scored by BLEU.

Training minimises the token-level cross-entropy of the target given the source, padding ignored, with
optional label smoothing ε (`task.label_smoothing`): the target distribution puts 1 − ε on the gold token
and spreads ε uniformly over the vocabulary, as torch's cross_entropy does.

Metrics, per split (`val`, `test`):

  loss, ppl   teacher-forced: the decoder reads the gold previous tokens, and loss is the token-weighted
              mean NLL over the whole split, ppl = exp(loss). Never label-smoothed, never measured on the
              model's own (free-running) outputs, which would not be a perplexity of the data.
  bleu        sacreBLEU corpus BLEU of the detokenized hypotheses against the raw references: cased,
              tokenize 13a (the signature is logged as the MLflow tag `bleu_signature`)
  bleu_lc     the same, lowercased (published Multi30k numbers are mostly lowercased)
  chrf        sacreBLEU chrF
  bleu_by_len/<lo>-<hi>
              BLEU of the sentences whose source has lo..hi words (whitespace-separated, raw text), one
              metric per bucket of `task.length_buckets` (upper edges; the last bucket is open, `<lo>-inf`):
              where attention should matter most, on long sentences. Empty buckets are not logged.

`train/loss` is the NLL too, so it compares with `val/loss`; with label smoothing the objective itself is
logged as `train/smoothed_loss`.

Hypotheses come from `task.decode` (greedy | sample, with temperature, top_k and top_p | beam, with beam_size and
length_penalty α; all with the length cap ⌊max_len_a · S + max_len_b⌋; rnnlab/decoding.py). Evaluation
batches come sorted by source length, so each hypothesis is put back at its pair's `index` before it is
compared with `references[index]`.

When BLEU is computed. Decoding a whole validation split costs far more than its teacher-forced loss, so
during fit BLEU is computed every `bleu_every_n_epochs` epochs and always on the last one (of
trainer.max_epochs / max_steps, or the one run when a spent time budget stops training), and always on test and
outside fit (eval.py). val/loss and val/ppl come every epoch. On an epoch without BLEU, `val/bleu` keeps the last
measured value (0 before the first) for the callbacks only, not for the loggers: ModelCheckpoint and EarlyStopping
with `monitor.metric=val/bleu` then neither crash on a missing metric nor mistake the old value for progress.
Patience is therefore counted in epochs since the best BLEU, so give early stopping (and a plateau scheduler) a
patience of at least bleu_every_n_epochs.

Artifacts, after every validation with BLEU (rank 0 only; into the run directory and every MLflow logger):
`translations/val_epoch_<e>.md`, a table of source, reference and hypothesis for `num_samples` fixed
validation sentences (evenly spaced through the split), and `attention/val_epoch_<e>_sentence_<i>.png`,
attention heatmaps (source pieces × hypothesis pieces) for the first `num_heatmaps` of them (none without
attention). After test: `translations/test.md` and every hypothesis in `translations/test_hypotheses.txt`.

Under DDP each process decodes its own share of the evaluation batches (disjoint, see rnnlab/data/translation.py);
the hypotheses (and heatmap attention) of all processes are merged by index before scoring, so BLEU is computed on
the whole split, once per sentence, and is the same number on every process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import MeanMetric

from rnnlab import decoding, distributed
from rnnlab.data.subwords import Subwords
from rnnlab.data.translation import collate_pairs
from rnnlab.errors import ConfigError
from rnnlab.sampling import check_sampling
from rnnlab.tasks.base import Task
from rnnlab.tracking.artifacts import write_text
from rnnlab.tracking.plots import attention_heatmap

log = logging.getLogger(__name__)

DECODERS = ("greedy", "sample", "beam")
STAGES = ("val", "test")
DATA_INPUTS = ("src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id")
DECODING_KEYS = ("decode", "beam_size", "length_penalty", "max_len_a", "max_len_b", "temperature",
                 "top_k", "top_p")  # translate.py, eval.py override


# --- scores ---------------------------------------------------------------------------------------
def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """sacreBLEU corpus scores of detokenized hypotheses against one raw reference each (same order), and
    each score's signature, e.g. bleu_signature = nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0."""
    from sacrebleu.metrics import BLEU, CHRF

    metrics = {"bleu": BLEU(tokenize="13a"), "bleu_lc": BLEU(tokenize="13a", lowercase=True), "chrf": CHRF()}
    scores = {name: metric.corpus_score(list(hypotheses), [list(references)]).score
              for name, metric in metrics.items()}
    return scores, {f"{name}_signature": str(metric.get_signature()) for name, metric in metrics.items()}


def length_buckets(lengths: Sequence[int], edges: Sequence[int]) -> dict[str, list[int]]:
    """Positions of `lengths` grouped by the buckets that upper `edges` cut: edges (10, 20) give "1-10",
    "11-20" and the open "21-inf"; empty buckets are left out."""
    bounds = [(lo + 1, hi) for lo, hi in zip([0, *edges], edges)] + [(edges[-1] + 1 if edges else 1, None)]
    buckets = {}
    for lo, hi in bounds:
        members = [k for k, n in enumerate(lengths) if lo <= n and (hi is None or n <= hi)]
        if members:
            buckets[f"{lo}-{hi if hi is not None else 'inf'}"] = members
    return buckets


def check_decoding(settings: dict[str, Any], prefix: str = "task.") -> None:
    """ConfigError naming the first invalid decoding setting among those given (keys of conf/task/translation.yaml:
    decode, beam_size, length_penalty, max_len_a, max_len_b, and temperature, top_k, top_p: rnnlab.sampling)."""
    def is_number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    decode = settings.get("decode", "beam")
    if decode not in DECODERS:
        raise ConfigError(f"{prefix}decode={decode!r} is invalid: choose one of {', '.join(DECODERS)}")
    beam_size = settings.get("beam_size", 1)
    if not isinstance(beam_size, int) or isinstance(beam_size, bool) or beam_size < 1:
        raise ConfigError(f"{prefix}beam_size={beam_size} is invalid: must be a positive integer")
    length_penalty = settings.get("length_penalty", 0)
    if not is_number(length_penalty) or length_penalty < 0:
        raise ConfigError(f"{prefix}length_penalty={length_penalty} is invalid: must be ≥ 0 (α in score / length^α)")
    max_len_a = settings.get("max_len_a", 0)
    if not is_number(max_len_a) or max_len_a < 0:
        raise ConfigError(f"{prefix}max_len_a={max_len_a} is invalid: must be ≥ 0 (output tokens per source token)")
    max_len_b = settings.get("max_len_b", 0)
    if not isinstance(max_len_b, int) or isinstance(max_len_b, bool) or max_len_b < 0:
        raise ConfigError(f"{prefix}max_len_b={max_len_b} is invalid: must be an integer ≥ 0 (tokens added to "
                          f"the cap max_len_a · source length)")
    check_sampling(settings.get("temperature", 1.0), settings.get("top_k"), settings.get("top_p"), prefix)


def decoder_name(settings: dict[str, Any]) -> str:
    """A short label of a decoding setting, e.g. "greedy", "beam5_lp1.0" or "sample_t0.7_k10_p0.9" (no _k, _p
    without a limit)."""
    if settings["decode"] == "greedy":
        return "greedy"
    if settings["decode"] == "sample":
        top_k, top_p = settings["top_k"], settings["top_p"]
        return (f"sample_t{settings['temperature']}" + (f"_k{top_k}" if top_k else "")
                + (f"_p{top_p}" if top_p is not None and top_p < 1 else ""))
    return f"beam{settings['beam_size']}_lp{settings['length_penalty']}"


class TranslationTask(Task):
    shape, option = "seq2seq", "task=translation"
    data_inputs = DATA_INPUTS
    takes_tokenizer = True
    settings = DECODING_KEYS
    summary_metrics = ("val/loss", "val/ppl", "test/ppl", "val/bleu", "test/bleu", "fit_seconds")
    report_metrics = ("val/bleu", "test/bleu", "test/chrf", "test/ppl")

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 model: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None,
                 label_smoothing: float = 0.0, decode: str = "beam", beam_size: int = 5, length_penalty: float = 1.0,
                 max_len_a: float = 1.5, max_len_b: int = 10, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, bleu_every_n_epochs: int = 1, num_samples: int = 10,
                 num_heatmaps: int = 4, length_buckets: Sequence[int] | None = (10, 20, 30),
                 tokenizer: dict | None = None):
        """model/optimizer/scheduler are plain config dicts (the `model`, `optimizer`, `scheduler` groups;
        model.attention is the `attention` group), and tokenizer the data's `tokenizer_state()`: all kept
        as hyperparameters, so a checkpoint alone rebuilds the task and reads and writes text (translate.py)."""
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing < 1:
            raise ConfigError(f"task.label_smoothing={label_smoothing} is invalid: must be in [0, 1)")
        check_decoding(dict(decode=decode, beam_size=beam_size, length_penalty=length_penalty,
                            max_len_a=max_len_a, max_len_b=max_len_b, temperature=temperature, top_k=top_k,
                            top_p=top_p))
        for key, value, least in (("bleu_every_n_epochs", bleu_every_n_epochs, 1), ("num_samples", num_samples, 0),
                                  ("num_heatmaps", num_heatmaps, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"task.{key}={value} is invalid: must be an integer ≥ {least}")
        edges = list(length_buckets or [])
        if not all(isinstance(e, int) and not isinstance(e, bool) and e > 0 for e in edges) \
                or edges != sorted(set(edges)):
            raise ConfigError(f"task.length_buckets={length_buckets} is invalid: must be increasing positive "
                              "integers (upper edges in source words), e.g. [10, 20, 30], or null")
        self.save_hyperparameters(logger=False)
        self.model = self.build_network(model, src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                                        pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        self.subwords = Subwords.from_state(tokenizer) if tokenizer else None
        self.nll = torch.nn.ModuleDict({stage: MeanMetric() for stage in STAGES})  # token-weighted, per split
        self.translations: dict[str, dict[int, str]] = {}  # stage → {index: hypothesis} of its last scoring
        self.artifact_root = ""  # a prefix for the artifact paths (eval.py keeps its outputs apart)
        self._last_val_bleu = 0.0
        self._scoring = False  # whether this evaluation decodes and scores BLEU
        self._hypotheses: dict[int, list[int]] = {}  # index → hypothesis ids of this evaluation
        self._samples: list[int] = []  # the sentences of the sample table
        self._heatmaps: set[int] = set()  # ... and of the attention heatmaps
        self._attention: dict[int, tuple[list[int], list[int], torch.Tensor]] = {}  # index → src, hyp, a (T, S)
        self.signatures: dict[str, str] = {}  # of the scores, once computed: MLflow tags

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], ckpt: str, device: str = "cpu",
                             **settings: Any) -> TranslationTask:
        task = super().from_checkpoint_dict(checkpoint, ckpt, device, **settings)
        if task.subwords is None:
            raise ConfigError(f"ckpt={ckpt} holds no vocabulary (tokenizer), so text cannot be turned into its ids; "
                              f"retrain it")
        return task

    def evaluation_label(self) -> str:
        return decoder_name(self.hparams)

    # --- decoding -----------------------------------------------------------------------------------
    def decode(self, src: torch.Tensor, src_lengths: torch.Tensor, return_attention: bool = False
               ) -> decoding.Hypotheses:
        """Hypotheses for a batch with the configured decoder (the model must be in eval mode)."""
        return decoding.decode(self.model, src, src_lengths, self.hparams, return_attention)

    @torch.no_grad()
    def translate(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """Raw source sentences → detokenized translations, in order; an empty line stays empty."""
        subwords = self._vocabulary()
        outputs = [""] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        source_ids = {i: subwords.encode_source(texts[i]) for i in todo}
        todo.sort(key=lambda i: -len(source_ids[i]))  # similar lengths share a batch: less padding
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start: start + batch_size]
                batch = collate_pairs([(i, source_ids[i], []) for i in chunk])
                hypotheses = self.decode(batch["src"].to(self.device), batch["src_lengths"].to(self.device))
                for i, tokens in zip(chunk, hypotheses.tokens):
                    outputs[i] = subwords.decode_target(tokens)
        finally:
            self.train(was_training)
        return outputs

    def _vocabulary(self) -> Subwords:
        """The checkpoint's own vocabulary, or (a task built without one) the data's."""
        return self.subwords if self.subwords is not None else self._datamodule().subwords

    def _datamodule(self):
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "references"):
            raise RuntimeError("TranslationTask scores against the references of a translation datamodule: pass "
                               "datamodule= to trainer.fit/validate/test")
        return datamodule

    # --- training -----------------------------------------------------------------------------------
    def forward(self, src, src_lengths, tgt_in):
        return self.model(src, src_lengths, tgt_in)

    def training_step(self, batch, batch_idx):
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt_in"]).logits  # (B, T, V)
        targets = batch["tgt_out"]
        tokens = int((targets != self.hparams.pad_id).sum())
        smoothing = self.hparams.label_smoothing
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.hparams.pad_id,
                               label_smoothing=smoothing)  # mean over the real target tokens
        if smoothing:
            with torch.no_grad():
                nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.hparams.pad_id)
            self.log("train/smoothed_loss", loss, on_step=True, on_epoch=False, batch_size=tokens)
        else:
            nll = loss.detach()
        self.train_epoch.log_step(self, nll, tokens)  # token-weighted over the epoch and all processes
        return loss

    # a resumed run also knows the last measured BLEU
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["last_val_bleu"] = float(self._last_val_bleu)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._last_val_bleu = checkpoint.get("last_val_bleu", 0.0)

    # --- evaluation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def _start(self, stage: str) -> None:
        self._scoring = self._bleu_due(stage)
        self._hypotheses, self._attention = {}, {}
        self._samples = self._sample_indices(stage) if self._scoring else []
        with_heatmaps = stage == "val" and self.model.attention is not None
        self._heatmaps = set(self._samples[: self.hparams.num_heatmaps]) if with_heatmaps else set()

    def _bleu_due(self, stage: str) -> bool:
        """Whether this evaluation decodes: see "When BLEU is computed" in the module docstring."""
        trainer = self.trainer
        if stage == "test" or trainer.state.fn != TrainerFn.FITTING:
            return True
        if trainer.sanity_checking:
            return False
        epoch = trainer.current_epoch
        last_epoch = trainer.max_epochs not in (None, -1) and epoch + 1 >= trainer.max_epochs
        last_step = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
        stopping = trainer.should_stop  # a time budget (max_time, max_cpu_time) spent mid-epoch: the last one
        return (epoch + 1) % self.hparams.bleu_every_n_epochs == 0 or last_epoch or last_step or stopping

    def _eval_step(self, batch, stage: str) -> None:
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt_in"]).logits  # teacher-forced (B, T, V)
        targets = batch["tgt_out"]
        tokens = (targets != self.hparams.pad_id).sum()
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.hparams.pad_id,
                              reduction="sum")
        self.nll[stage].update(nll / tokens, weight=tokens)
        if self._scoring:
            self._decode_batch(batch)

    def _decode_batch(self, batch) -> None:
        indices = batch["index"].tolist()
        heatmaps = self._heatmaps & set(indices)
        hypotheses = self.decode(batch["src"], batch["src_lengths"], return_attention=bool(heatmaps))
        for row, index in enumerate(indices):
            self._hypotheses[index] = hypotheses.tokens[row]
            if index in heatmaps and hypotheses.attention is not None:
                source = batch["src"][row, : int(batch["src_lengths"][row])].tolist()
                self._attention[index] = (source, hypotheses.tokens[row], hypotheses.attention[row].float().cpu())

    def _finish(self, stage: str) -> None:
        nll = self.nll[stage].compute()  # token-weighted over the split, synced across ranks
        self.nll[stage].reset()
        metrics = {f"{stage}/loss": nll, f"{stage}/ppl": nll.exp()}
        if self._scoring:  # every process's share of the split
            self._hypotheses = distributed.merge_dicts(self._hypotheses)
            self._attention = distributed.merge_dicts(self._attention)
        if self._scoring and self._hypotheses:
            metrics |= {f"{stage}/{name}": value for name, value in self._score(stage).items()}
        if stage == "val" and self.trainer.state.fn == TrainerFn.FITTING:
            # Lightning refuses one key logged with different arguments, so val/bleu always goes to the
            # callbacks (the last measured value on epochs without BLEU, as the module docstring says) and
            # a measured one goes to the loggers directly
            bleu = metrics.pop("val/bleu", None)
            if bleu is not None:
                self._last_val_bleu = bleu
                # at the step Lightning gives val/loss (its count of batches that stepped, one behind
                # global_step at an epoch's end), so val/bleu lines up with the other val/* in MLflow
                step = getattr(self.trainer.fit_loop.epoch_loop, "_batches_that_stepped", self.global_step)
                for logger in self.trainer.loggers:
                    logger.log_metrics({"val/bleu": bleu}, step=step)
            self.log("val/bleu", self._last_val_bleu, logger=False, sync_dist=True)
        # equal on every process already; sync_dist (a mean of equal values) only tells Lightning so
        self.log_dict(metrics, sync_dist=True)
        if self._scoring and self._hypotheses and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._write_artifacts(stage)

    def _score(self, stage: str) -> dict[str, float]:
        """Detokenize the split's hypotheses, put them in index order, and score them against the references."""
        subwords, datamodule = self._vocabulary(), self._datamodule()
        references = datamodule.references(stage)
        indices = sorted(self._hypotheses)
        if len(indices) < len(references):
            log.warning("%s: %d of %d sentences were decoded (limited batches?): BLEU covers those only", stage,
                        len(indices), len(references))
        self.translations[stage] = {i: subwords.decode_target(self._hypotheses[i]) for i in indices}
        scores, self.signatures = corpus_scores(list(self.translations[stage].values()),
                                                 [references[i] for i in indices])
        sources = datamodule.sources(stage)
        for bucket, members in length_buckets([len(sources[i].split()) for i in indices],
                                              self.hparams.length_buckets or ()).items():
            bucket_scores, _ = corpus_scores([self.translations[stage][indices[k]] for k in members],
                                             [references[indices[k]] for k in members])
            scores[f"bleu_by_len/{bucket}"] = bucket_scores["bleu"]
        return scores

    # --- artifacts ----------------------------------------------------------------------------------
    def _sample_indices(self, stage: str) -> list[int]:
        """num_samples fixed sentences of the split, evenly spaced through it (the same every epoch)."""
        count, wanted = len(self._datamodule().references(stage)), self.hparams.num_samples
        if wanted == 0 or count == 0:
            return []
        step = max(count / wanted, 1)
        return sorted({int(k * step) for k in range(min(wanted, count))})

    def _write_artifacts(self, stage: str) -> None:
        """The sample table (and heatmaps, test hypotheses) into the run directory and every MLflow logger."""
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        name = f"{stage}_epoch_{self.current_epoch:03d}" if fitting else stage
        directory = Path(self.trainer.default_root_dir) / self.artifact_root
        datamodule = self._datamodule()
        sources, references = datamodule.sources(stage), datamodule.references(stage)
        translations = self.translations[stage]
        shown = [i for i in self._samples if i in translations]
        title = (f"{stage} translations, epoch {self.current_epoch}, step {self.global_step}: "
                 f"{self._decoder_description()}")
        files = [(write_text(directory / "translations" / f"{name}.md",
                         translation_table(title, shown, sources, references, translations)), "translations")]
        if not fitting:  # a final score (test, eval.py): every hypothesis, in the split's order
            text = "".join(translations[i] + "\n" for i in sorted(translations))
            files.append((write_text(directory / "translations" / f"{stage}_hypotheses.txt", text), "translations"))
        subwords = self._vocabulary()
        for index, (source, hypothesis, attention) in sorted(self._attention.items()):
            path = directory / "attention" / f"{name}_sentence_{index:04d}.png"
            attention_heatmap(attention, subwords.source_tokens(source), subwords.target_tokens(hypothesis), path,
                           title=f"{stage} sentence {index}, epoch {self.current_epoch}")
            files.append((path, "attention"))
        for logger in self.trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "set_tag"):
                for key, value in self.signatures.items():
                    logger.experiment.set_tag(logger.run_id, key, value)
        for path, folder in files:
            self.log_files([path], str(Path(self.artifact_root) / folder))

    def _decoder_description(self) -> str:
        settings = self.hparams
        if settings.decode == "greedy":
            decoder = "greedy"
        elif settings.decode == "sample":
            decoder = f"sampling, temperature {settings.temperature}, top-k {settings.top_k}, top-p {settings.top_p}"
        else:
            decoder = f"beam search, beam {settings.beam_size}, length penalty α={settings.length_penalty}"
        return f"{decoder}, at most ⌊{settings.max_len_a}·S + {settings.max_len_b}⌋ tokens"


def translation_table(title: str, indices: Sequence[int], sources: Sequence[str], references: Sequence[str],
                      hypotheses: dict[int, str]) -> str:
    """A markdown table of source, reference and hypothesis for the sentences `indices` of a split."""
    lines = [f"# {title}", "", "| # | source | reference | hypothesis |", "|---|---|---|---|"]
    for i in indices:
        cells = (sources[i], references[i], hypotheses[i])
        lines.append(f"| {i} | " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
