"""`task=captioning`: an image in, a sentence out, the one-to-many shape (rnnlab/models/captioner.py: a CNN's grid of
regions, read by translation's recurrent decoder, which may attend over them).

Training minimises the token-level cross-entropy of each caption given its image, teacher-forced, padding ignored;
every caption of every image is a training example (rnnlab/data/captions.py).

Metrics, per split (`val`, `test`, and a data set's extra test splits, e.g. `test_unseen`):

  loss, ppl     teacher-forced over every reference caption of every image: the token-weighted mean NLL over the
                split, ppl = exp(loss)
  bleu          sacreBLEU corpus BLEU-4 of the generated captions, each against all the references of its image
                (multi-reference; tokenize 13a; the signature is logged as the MLflow tag `bleu_signature`)
  bleu1..bleu3  the same with n-grams up to 1, 2, 3
  cider         CIDEr-D of the generated captions against their images' references, the idf from the split's
                references (rnnlab/tasks/cider.py: coco-caption's CiderD), ×100: the scale papers print (coco-caption's
                1.179 is 117.9); what was computed is logged as the MLflow tag `cider_signature`
  bleu/<group>, cider/<group>   BLEU and CIDEr-D of each group of images the data names (synthetic scenes:
                objects_1 .. objects_4; CIDEr-D with the whole split's idf, the mean of its images' scores)
  and the data's own scores of the captions (synthetic scenes: assertion_acc, object_recall, caption_acc, also
  per group; rnnlab/data/synthetic_scenes.py).

Captions come from `task.decode` over the image's regions (greedy | sample, with temperature, top_k and top_p |
beam, with beam_size and length_penalty; rnnlab/decoding.py, as for translation), at most ⌊max_len_a · R +
max_len_b⌋ tokens with R the number of regions (max_len_a is 0 by default: a caption's length does not grow with
the image). Every validation decodes the whole validation split (not the sanity check): val/bleu is what
checkpointing follows. Evaluation batches are not in split order: each caption is put back at its image's `index`.

Artifacts after every validation and after test (rank 0; into the run directory and every MLflow logger):
`captions/<split>[_epoch_NNN].png`, `num_samples` fixed images (evenly spaced through the split) with the generated
caption and the references, and the same as a table (`.md`); with attention, `attention/<split>[_epoch_NNN]_image_
<IIII>.png` for the first `num_attention_images` of them, one panel per generated word, its weights over the
regions upsampled over the image. After test also `captions/<split>_captions.tsv`: every image's name and caption.

Under DDP each process captions its share of the images; the captions (and attention) of all processes are merged
by index before scoring, so the scores cover the whole split once and are equal on every process.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn

from rnnlab import decoding, distributed
from rnnlab.data.captions import IMAGENET_MEAN, IMAGENET_STD, ImageSettings
from rnnlab.data.subwords import Subwords
from rnnlab.errors import ConfigError, check_integer
from rnnlab.tasks.base import Task
from rnnlab.tasks.cider import CIDER_D_SIGNATURE, cider_d_per_image
from rnnlab.tasks.translation import DECODING_KEYS, check_decoding, decoder_name
from rnnlab.tracking.artifacts import write_text
from rnnlab.tracking.plots import attention_over_image, captioned_images

log = logging.getLogger(__name__)


def bleu_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]
                ) -> tuple[dict[str, float], dict[str, str]]:
    """sacreBLEU corpus BLEU-1..4 (bleu1, bleu2, bleu3, bleu) of hypotheses against any number of references each
    (same order), and the signature of BLEU-4, e.g. nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0."""
    from sacrebleu.metrics import BLEU

    most = max(map(len, references), default=1)
    # sacreBLEU wants one stream per reference rank; an image with fewer references has None there
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(most)]
    metrics = {"bleu": BLEU(tokenize="13a"), **{f"bleu{n}": BLEU(tokenize="13a", max_ngram_order=n) for n in (1, 2, 3)}}
    scores = {name: metric.corpus_score(list(hypotheses), streams).score for name, metric in metrics.items()}
    return scores, {"bleu_signature": str(metrics["bleu"].get_signature())}


def cider_percent(per_image: Iterable[float]) -> float:
    """The mean of images' CIDEr-D scores ×100, as papers print CIDEr-D (and as BLEU is logged)."""
    scores = list(per_image)
    return 100 * sum(scores) / len(scores) if scores else 0.0


class CaptioningTask(Task):
    shape, option = "captioner", "task=captioning"
    data_inputs = ("vocab_size", "pad_id", "bos_id", "eos_id", "image_size")
    takes_tokenizer = True
    settings = DECODING_KEYS
    summary_metrics = ("val/loss", "val/ppl", "val/bleu", "test/bleu", "test/cider", "test/assertion_acc",
                       "fit_seconds")
    report_metrics = ("val/bleu", "test/bleu", "test/cider", "test/assertion_acc", "test/ppl")

    def __init__(self, vocab_size: int, pad_id: int, bos_id: int, eos_id: int, image_size: int,
                 model: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any] | None = None,
                 decode: str = "beam", beam_size: int = 3, length_penalty: float = 1.0, max_len_a: float = 0.0,
                 max_len_b: int = 40, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 num_samples: int = 8, num_attention_images: int = 4, tokenizer: dict | None = None):
        """model/optimizer/scheduler are the config groups as dicts (model.attention is the `attention` group) and
        tokenizer the data's `tokenizer_state()` (vocabulary, how images are read): all hyperparameters, so a
        checkpoint alone captions an image file (caption.py)."""
        super().__init__()
        check_decoding(dict(decode=decode, beam_size=beam_size, length_penalty=length_penalty, max_len_a=max_len_a,
                            max_len_b=max_len_b, temperature=temperature, top_k=top_k, top_p=top_p))
        for key, value in (("num_samples", num_samples), ("num_attention_images", num_attention_images)):
            check_integer(f"task.{key}", value, least=0)
        self.save_hyperparameters(logger=False)
        self.model = self.build_network(model, vocab_size=vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id,
                                        image_size=image_size)
        if self.model.freeze_encoder:  # Lightning warns of modules in eval mode as training starts: these are frozen
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        self.subwords = Subwords.from_state(tokenizer["vocabulary"]) if tokenizer else None
        self.image_settings = ImageSettings.from_state(tokenizer["image"]) if tokenizer else None
        if model.get("encoder_weights") and self.image_settings and not self.image_settings.imagenet_normalised:
            raise ConfigError(f"model.encoder_weights expects images normalised as ImageNet's were, and the data "
                              f"normalises by mean {list(self.image_settings.mean)}, std "
                              f"{list(self.image_settings.std)}: set data.mean={list(IMAGENET_MEAN)} "
                              f"data.std={list(IMAGENET_STD)}")
        self.captions: dict[str, dict[int, str]] = {}  # split → {image index: caption} of its last scoring
        self.signatures: dict[str, str] = {}  # of the scores, once computed: MLflow tags
        self.artifact_root = ""  # a prefix for the artifact paths (eval.py keeps its outputs apart)
        self._nll: dict[str, torch.Tensor] = {}  # split → [Σ NLL, tokens] of this evaluation
        self._hypotheses: dict[str, dict[int, list[int]]] = {}  # split → {image index: token ids}
        self._attention: dict[str, dict[int, tuple[list[int], torch.Tensor]]] = {}  # ... → (ids, a (T, R))
        self._test_splits: tuple[str, ...] = ("test",)

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], ckpt: str, device: str = "cpu",
                             **settings: Any) -> CaptioningTask:
        # a pretrained encoder's weights are in the checkpoint's state dict: their file is not read again (nor needed)
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        if isinstance(hparams.get("model"), dict):
            hparams["model"] = {**hparams["model"], "encoder_weights": None}
        task = super().from_checkpoint_dict({**checkpoint, "hyper_parameters": hparams}, ckpt, device, **settings)
        if task.subwords is None:
            raise ConfigError(f"ckpt={ckpt} holds no vocabulary (tokenizer), so its captions cannot be written as "
                              f"words; retrain it")
        return task

    def evaluation_label(self) -> str:
        return decoder_name(self.hparams)

    # --- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, images: torch.Tensor, return_attention: bool = False) -> decoding.Hypotheses:
        """Captions (token ids) of normalised images (B, 3, S, S) by the configured decoder (eval mode)."""
        return self._decode_regions(self.model.regions(images), return_attention)

    def _decode_regions(self, regions: torch.Tensor, return_attention: bool = False) -> decoding.Hypotheses:
        return decoding.decode(self.model, regions, self.model.region_lengths(regions), self.hparams,
                               return_attention)

    @torch.no_grad()
    def caption(self, paths: Sequence[Path], batch_size: int = 32) -> list[str]:
        """Image files → their captions, in order (read as the training images were: size, resize, normalisation)."""
        was_training = self.training
        self.eval()
        try:
            captions = []
            for start in range(0, len(paths), batch_size):
                images = torch.stack([self.image_settings.read(Path(path)) for path in paths[start:start + batch_size]])
                hypotheses = self.decode(self.image_settings.normalise(images).to(self.device))
                captions += [self.subwords.decode_target(tokens) for tokens in hypotheses.tokens]
        finally:
            self.train(was_training)
        return captions

    # --- training -----------------------------------------------------------------------------------
    def forward(self, images, tgt_in, caption_image=None):
        return self.model(images, tgt_in, caption_image)

    def training_step(self, batch, batch_idx):
        logits = self.model(batch["image"], batch["tgt_in"], batch["caption_image"]).logits  # (N, T, V)
        targets = batch["tgt_out"]
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.hparams.pad_id)
        self.train_epoch.log_step(self, loss.detach(), int((targets != self.hparams.pad_id).sum()))
        return loss

    # --- evaluation ---------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def on_test_epoch_start(self) -> None:
        self._test_splits = tuple(getattr(self._datamodule(), "test_splits", ("test",)))
        for split in self._test_splits:
            self._start(split)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._eval_step(batch, self._test_splits[dataloader_idx])

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        for split in self._test_splits:
            self._finish(split)

    def _start(self, split: str) -> None:
        self._nll[split] = torch.zeros(2, device=self.device)
        self._hypotheses[split], self._attention[split] = {}, {}

    def _eval_step(self, batch, split: str) -> None:
        regions = self.model.regions(batch["image"])  # (B, R, C), once for the loss and the captions
        logits = self.model.captions(regions, batch["tgt_in"], batch["caption_image"]).logits
        targets = batch["tgt_out"]
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=self.hparams.pad_id,
                              reduction="sum")
        self._nll[split] += torch.stack([nll, (targets != self.hparams.pad_id).sum().float()])
        if self.trainer.sanity_checking:
            return
        indices = batch["index"].tolist()
        pictured = set(self._attention_indices(split)) & set(indices) if self.model.attention is not None else set()
        hypotheses = self._decode_regions(regions, return_attention=bool(pictured))
        for row, index in enumerate(indices):
            self._hypotheses[split][index] = hypotheses.tokens[row]
            if index in pictured and hypotheses.attention is not None:
                self._attention[split][index] = (hypotheses.tokens[row], hypotheses.attention[row].float().cpu())

    def _finish(self, split: str) -> None:
        nll, tokens = distributed.sum_by_key({split: self._nll[split]}, self.device)[split]
        loss = nll / tokens.clamp(min=1)
        metrics = {f"{split}/loss": loss, f"{split}/ppl": loss.exp()}
        if not self.trainer.sanity_checking:
            hypotheses = distributed.merge_dicts(self._hypotheses[split])  # every process's share of the split
            attention = distributed.merge_dicts(self._attention[split])
            metrics |= {f"{split}/{name}": value for name, value in self._score(split, hypotheses).items()}
            if self.trainer.is_global_zero:
                self._write_artifacts(split, attention)
        self.log_dict(metrics, sync_dist=True)  # equal on every process already; sync_dist tells Lightning so

    def _score(self, split: str, hypotheses: dict[int, list[int]]) -> dict[str, float]:
        """Decode the split's captions, in index order, and score them against every image's references."""
        datamodule = self._datamodule()
        references = datamodule.references(split)
        captions = {i: self.subwords.decode_target(hypotheses[i]) for i in sorted(hypotheses)}
        if len(captions) < len(references):
            log.warning("%s: %d of %d images were captioned (limited batches?): the scores cover those only", split,
                        len(captions), len(references))
        self.captions[split] = captions
        texts, image_references = list(captions.values()), [references[i] for i in captions]
        scores, self.signatures = bleu_scores(texts, image_references)
        cider = dict(zip(captions, cider_d_per_image(texts, image_references)))
        scores["cider"] = cider_percent(cider.values())
        self.signatures["cider_signature"] = f"{CIDER_D_SIGNATURE}|scale:100"
        for group, members in datamodule.groups(split).items():
            members = [i for i in members if i in captions]
            if members:
                scores[f"bleu/{group}"] = bleu_scores([captions[i] for i in members],
                                                      [references[i] for i in members])[0]["bleu"]
                scores[f"cider/{group}"] = cider_percent(cider[i] for i in members)
        return scores | datamodule.caption_scores(split, captions)

    def _datamodule(self):
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None or not hasattr(datamodule, "references"):
            raise RuntimeError("CaptioningTask scores against the references of a captioning datamodule: pass "
                               "datamodule= to trainer.fit/validate/test")
        return datamodule

    # --- artifacts ----------------------------------------------------------------------------------
    def _sample_indices(self, split: str) -> list[int]:
        """num_samples fixed images of the split, evenly spaced through it (the same every epoch)."""
        count, wanted = len(self._datamodule().references(split)), self.hparams.num_samples
        step = max(count / wanted, 1) if wanted else 1
        return sorted({int(k * step) for k in range(min(wanted, count))})

    def _attention_indices(self, split: str) -> list[int]:
        return self._sample_indices(split)[: self.hparams.num_attention_images]

    def _write_artifacts(self, split: str, attention: dict[int, tuple[list[int], torch.Tensor]]) -> None:
        """The sample pictures and table (attention panels; after test every caption), into the run directory and
        every MLflow logger."""
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        name = f"{split}_epoch_{self.current_epoch:03d}" if fitting else split
        directory = Path(self.trainer.default_root_dir) / self.artifact_root
        datamodule, captions = self._datamodule(), self.captions[split]
        references, names, images = datamodule.references(split), datamodule.names(split), datamodule.images(split)
        shown = [i for i in self._sample_indices(split) if i in captions]
        title = f"{split}, epoch {self.current_epoch}, step {self.global_step}, {decoder_name(self.hparams)}"
        files = []
        if shown:
            files += [(captioned_images([images[i] for i in shown],
                                        [(f"{i}: {names[i]}", captions[i], references[i]) for i in shown],
                                        directory / "captions" / f"{name}.png", title), "captions"),
                      (write_text(directory / "captions" / f"{name}.md",
                                  caption_table(title, shown, names, references, captions)), "captions")]
        if not fitting:  # a final score (test, eval.py): every caption, in the split's order
            text = "".join(f"{names[i]}\t{captions[i]}\n" for i in sorted(captions))
            files.append((write_text(directory / "captions" / f"{split}_captions.tsv", text), "captions"))
        for index, (tokens, weights) in sorted(attention.items()):
            words = [piece.lstrip("▁") or piece for piece in self.subwords.target_tokens(tokens)]
            path = directory / "attention" / f"{name}_image_{index:04d}.png"
            attention_over_image(images[index], words, weights.view(len(tokens), *self.model.grid), path,
                                 title=f"{split} image {index} ({names[index]}), epoch {self.current_epoch}")
            files.append((path, "attention"))
        for logger in self.trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "set_tag"):
                for key, value in self.signatures.items():
                    logger.experiment.set_tag(logger.run_id, key, value)
        for path, folder in files:
            self.log_files([path], str(Path(self.artifact_root) / folder))


def caption_table(title: str, indices: Sequence[int], names: Sequence[str], references: Sequence[Sequence[str]],
                  captions: dict[int, str]) -> str:
    """A markdown table of image, generated caption and references for the images `indices` of a split."""
    lines = [f"# {title}", "", "| # | image | caption | references |", "|---|---|---|---|"]
    for i in indices:
        cells = (names[i], captions[i], "<br>".join(references[i]))
        lines.append(f"| {i} | " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
