"""Captioned images → batches for `task=captioning`, shared by every captioning data set (the images' counterpart of
rnnlab/data/translation.py).

A data module says where its images and captions come from (`load_splits`: per split, uint8 images
(N, 3, S, S) of `image_size` pixels and one or more raw captions each); this base does the rest alike for all:

1. Captions: whitespace collapsed, lowercased when `lowercase`; an empty caption is skipped and counted, and so is
   an image left without any (logged per split). These normalised captions are the references BLEU scores against.
2. Vocabulary: trained on the training captions alone (rnnlab/data/subwords.py: whole words by default; `tokenizer`,
   `vocab_size`, `min_frequency`; pad=0, bos=1, eos=2, unk=3). A training caption of more than `max_length` tokens
   is dropped (counted); validation and test captions are kept whole.
3. Images: kept as uint8; a batch's images are normalised per channel, (x / 255 − mean) / std.
4. Batches:

       image          (B, 3, S, S)  float, normalised
       tgt_in         (N, T)        bos y_1 … y_n, right-padded          N captions of the B images
       tgt_out        (N, T)        y_1 … y_n eos, right-padded
       caption_image  (N,)          the image (row of `image`) each caption belongs to
       index          (B,)          the image's position in its split: references(split)[index] are its captions

   An example is one image with all its captions, so the CNN reads each image once per batch, for all of them (as
   neuraltalk2's seq_per_img does): an epoch trains on every caption of every image once, `batch_size` images a
   batch from length buckets (by the longest caption; rnnlab/data/batching.py), and evaluation (`eval_batch_size`
   images a batch) scores the loss of every reference and captions each image once.

Splits beyond train/val/test that a subclass gives (synthetic scenes' `test_unseen`) are scored by the test loop as
dataloaders of their own, under their own names. Without a test split the test split is the validation split.
`tokenizer_state()` keeps the vocabulary and how images are read (`ImageSettings`), so a checkpoint alone captions
an image file (caption.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.data.batching import LengthBucketedData, pad_sequences
from rnnlab.data.download import DataError
from rnnlab.data.subwords import BOS_ID, EOS_ID, PAD_ID, Subwords, SubwordSettings
from rnnlab.errors import ConfigError, check_integer, refuse_unknown_data_options

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # what torchvision's weights expect
RESIZES = ("stretch", "crop")


# -- images ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSettings:
    """How an image file becomes the model's input: `size` × `size` pixels (stretched, or its centre cropped to a
    square first), RGB, each channel normalised as (x / 255 − mean) / std."""

    size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str = "stretch"

    def __post_init__(self) -> None:
        check_integer("data.image_size", self.size, least=8)
        for key, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"data.{key}={list(values)} is invalid: give three numbers, one per channel (RGB)")
        if min(self.std) <= 0:
            raise ConfigError(f"data.std={list(self.std)} is invalid: each must be positive")
        if self.resize not in RESIZES:
            raise ConfigError(f"data.resize={self.resize!r} is invalid: choose stretch (the whole image, squeezed "
                              f"to a square) or crop (its centre square)")

    def read(self, path: Path) -> torch.Tensor:
        """The image file at path as uint8 (3, size, size); a DataError naming the file if it cannot be read."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image.draft("RGB", (self.size, self.size))  # JPEG: decode at a reduced scale, much faster
                image = ImageOps.exif_transpose(image).convert("RGB")  # a phone's photo the right way up
                square = (self.size, self.size)
                image = (image.resize(square, Image.Resampling.BILINEAR) if self.resize == "stretch"
                         else ImageOps.fit(image, square, Image.Resampling.BILINEAR))
                pixels = np.asarray(image, dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"{path}: no such image file") from None
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"{path} cannot be read as an image ({error})") from None
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()

    @property
    def imagenet_normalised(self) -> bool:
        """Whether mean and std are ImageNet's, as torchvision's pretrained weights expect."""
        return np.allclose([*self.mean, *self.std], [*IMAGENET_MEAN, *IMAGENET_STD], rtol=0, atol=1e-3)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (..., 3, S, S) → float (x / 255 − mean) / std."""
        mean = torch.tensor(self.mean, device=images.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(3, 1, 1)
        return (images.float() / 255 - mean) / std

    def state(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_state(cls, state: dict) -> ImageSettings:
        return cls(state["size"], tuple(state["mean"]), tuple(state["std"]), state["resize"])


@dataclass
class CaptionedImages:
    """A split as read: images, their captions (raw text, one or more each) and names (files, or ids), aligned."""

    images: torch.Tensor  # uint8 (N, 3, S, S)
    captions: list[list[str]]
    names: list[str]

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.captions) == len(self.names):
            raise DataError(f"{len(self.images)} images, {len(self.captions)} caption lists and {len(self.names)} "
                            f"names: every image needs its captions and a name")

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, kept: Sequence[int]) -> CaptionedImages:
        return CaptionedImages(self.images[list(kept)], [self.captions[k] for k in kept],
                               [self.names[k] for k in kept])


# -- batches --------------------------------------------------------------------------------------------------
class CaptionDataset(Dataset):
    """Examples (image index, its captions' ids)."""

    def __init__(self, images: torch.Tensor, examples: list[tuple[int, list[list[int]]]]):
        self.images, self.examples = images, examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, item: int) -> dict:
        index, captions = self.examples[item]
        return {"image": self.images[index], "captions": captions, "index": index}

    def lengths(self) -> np.ndarray:
        """Per example, its longest caption with bos (or eos): what sizes the padded batch."""
        return np.array([max(map(len, captions)) + 1 for _, captions in self.examples], dtype=np.int64)


def collate_captions(examples: Sequence[dict], images: ImageSettings) -> dict[str, torch.Tensor]:
    """Examples → the batch dict of the module docstring."""
    captions = [caption for example in examples for caption in example["captions"]]
    tgt_in, _ = pad_sequences([[BOS_ID, *caption] for caption in captions], PAD_ID)
    tgt_out, _ = pad_sequences([[*caption, EOS_ID] for caption in captions], PAD_ID)
    return {"image": images.normalise(torch.stack([example["image"] for example in examples])),
            "tgt_in": tgt_in, "tgt_out": tgt_out,
            "caption_image": torch.tensor([k for k, example in enumerate(examples) for _ in example["captions"]]),
            "index": torch.tensor([example["index"] for example in examples])}


# -- the data module ------------------------------------------------------------------------------------------
class CaptionDataModule(LengthBucketedData, L.LightningDataModule):
    option = "captions"  # the data= name, for messages
    noun = "images"

    def __init__(self, *, image_size: int = 64, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, resize: str = "stretch", tokenizer: str = "word",
                 vocab_size: int = 10000, min_frequency: int = 1, lowercase: bool = True, max_length: int = 50,
                 batch_size: int = 32, eval_batch_size: int = 128, max_eval_images: int | None = None, seed: int = 0,
                 **unknown: object):
        super().__init__()
        refuse_unknown_data_options(self, CaptionDataModule, unknown)
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                           ("max_length", max_length)):
            check_integer(f"data.{key}", value)
        check_integer("data.max_eval_images", max_eval_images, optional=True)
        check_integer("data.seed", seed, least=0)
        if not isinstance(lowercase, bool):
            raise ConfigError(f"data.lowercase={lowercase!r} is invalid: must be true or false")
        self.image_settings = ImageSettings(image_size, tuple(mean), tuple(std), resize)
        self.subword_settings = SubwordSettings(tokenizer, vocab_size, True, min_frequency)
        self.image_size, self.lowercase, self.max_length = image_size, lowercase, max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.max_tokens = None  # batches count images (data/batching.py reads it)
        self.max_eval_images, self.seed = max_eval_images, seed
        self.subwords: Subwords | None = None
        self.skipped: dict[str, dict[str, int]] = {}  # split → what was left out, counted
        self._raw: dict[str, CaptionedImages] = {}
        self._datasets: dict[str, CaptionDataset] = {}

    # --- what a subclass supplies -----------------------------------------------------------------
    def load_splits(self) -> dict[str, CaptionedImages | None]:
        """The images and raw captions of "train", "val", "test" (None: no test split) and any extra test splits."""
        raise NotImplementedError

    def caption_scores(self, split: str, hypotheses: dict[int, str]) -> dict[str, float]:
        """Scores of generated captions (by image index) that this data can give beyond BLEU (synthetic scenes:
        how many of their assertions hold)."""
        return {}

    def groups(self, split: str) -> dict[str, list[int]]:
        """Named groups of a split's images to score apart (synthetic scenes: by number of objects)."""
        return {}

    # --- Lightning ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._datasets:  # train.py and Trainer.fit both call it
            return
        splits = self.splits_with_test()
        for split, images in splits.items():
            if split != "train" and self.max_eval_images is not None:
                images = images.subset(range(min(self.max_eval_images, len(images))))
            self._raw[split] = self._cleaned(split, images)
        captions = [caption for captions in self._raw["train"].captions for caption in captions]
        if not captions:
            raise DataError(f"data={self.option}: the training split holds no caption")
        self.subwords = Subwords.train([], captions, self.subword_settings)
        for split, images in self._raw.items():
            ids = iter(self.subwords.encode_targets([c for captions in images.captions for c in captions]))
            examples = [(k, [next(ids) for _ in captions]) for k, captions in enumerate(images.captions)]
            if split == "train":
                examples = self._short_enough(examples)
            self._datasets[split] = CaptionDataset(images.images, examples)
            log.info("data=%s %s: %d images, %d captions", self.option, split, len(images),
                     sum(map(len, images.captions)))

    def _cleaned(self, split: str, images: CaptionedImages) -> CaptionedImages:
        """Captions normalised; empty ones, and images left without a caption, skipped and counted."""
        captions = [[self._normalised(caption) for caption in image_captions] for image_captions in images.captions]
        self._count(split, "empty captions", sum(not caption for image_captions in captions
                                                  for caption in image_captions))
        kept = [k for k, image_captions in enumerate(captions) if any(image_captions)]
        self._count(split, "images without a caption", len(images) - len(kept))
        images = CaptionedImages(images.images, [[c for c in image_captions if c] for image_captions in captions],
                                 images.names)
        return images.subset(kept)

    def _short_enough(self, examples: list[tuple[int, list[list[int]]]]) -> list[tuple[int, list[list[int]]]]:
        """Training captions of at most max_length tokens; those over it, and images left without any, counted."""
        kept = [(k, [c for c in captions if len(c) <= self.max_length]) for k, captions in examples]
        self._count("train", "captions over data.max_length tokens",
                    sum(len(captions) for _, captions in examples) - sum(len(captions) for _, captions in kept))
        self._count("train", "images whose every caption is over data.max_length tokens",
                    sum(not captions for _, captions in kept))
        return [(k, captions) for k, captions in kept if captions]

    def _normalised(self, caption: str) -> str:
        caption = " ".join(str(caption).split())
        return caption.lower() if self.lowercase else caption

    def _count(self, split: str, what: str, count: int) -> None:
        if count:
            self.skipped.setdefault(split, {})[what] = count
            log.warning("data=%s %s: %d %s skipped", self.option, split, count, what)

    # the loaders (data/batching.py); every extra split is a test dataloader of its own
    def collate(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        return collate_captions(examples, self.image_settings)

    def test_dataloader(self):
        loaders = [self._eval_loader(split) for split in self.test_splits]
        return loaders if len(loaders) > 1 else loaders[0]

    # --- what the task asks --------------------------------------------------------------------------
    @property
    def test_splits(self) -> tuple[str, ...]:
        """The splits the test loop scores, in dataloader order: test, then any extras."""
        return ("test", *(split for split in self._raw if split not in ("train", "val", "test")))

    @property
    def task_inputs(self) -> dict[str, int]:
        return {"vocab_size": self.subwords.tgt_vocab_size, "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
                "image_size": self.image_size}

    def references(self, split: str) -> list[list[str]]:
        """Every image's captions, normalised (the references of BLEU), by image index."""
        return self._raw[split].captions

    def images(self, split: str) -> torch.Tensor:
        """uint8 (N, 3, S, S), as read (for pictures)."""
        return self._raw[split].images

    def names(self, split: str) -> list[str]:
        return self._raw[split].names

    def tokenizer_state(self) -> dict:
        """The vocabulary and how images are read: what captioning an image file needs."""
        return {"vocabulary": self.subwords.state(), "image": self.image_settings.state()}
