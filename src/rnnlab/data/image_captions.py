"""`data=image_captions`: your own folder of images and a captions file, in the Flickr8k layout.

The captions file (`data.captions`) is either

- a CSV with the header `image,caption` and one caption per row (a caption with commas may be quoted, or not:
  everything after the first comma is the caption), or
- Flickr8k's token file (`Flickr8k.token.txt`): one caption per line, `<image>#<k><TAB><caption>`.

An image may have any number of captions; all of them are references. Images are files under `data.images_dir`
(the names as the captions file gives them, subfolders allowed), of any size and mode Pillow reads (JPEG, PNG, ...;
grey, RGBA, palette: all read as RGB, turned upright by their EXIF orientation), resized to `image_size` square
pixels (`resize: stretch | crop`) and normalised by the base (rnnlab/data/captions.py), which also owns the
vocabulary, empty captions and batching. Every image is decoded once, at setup, and kept in memory as uint8
(64 × 64: 12 KB an image).

Splits: files listing image names, one per line (`train_split`, `val_split`, optional `test_split`: Flickr8k's
`Flickr_8k.trainImages.txt`, ...; only the images they list are read), or, without them, fractions of the
captions file's images (`val_fraction`, `test_fraction`) after one fixed shuffle, the same for every `seed`.

Bad input is one line naming the file and the fix: a captions file in neither layout, a row without a caption, a
split file naming an image the captions file does not, an image named but absent from the folder or unreadable.
With `skip_bad_images: true` the absent and unreadable images are skipped instead, counted and logged.
"""

from __future__ import annotations

import csv
import logging
import random
from pathlib import Path

import torch

from rnnlab.data.captions import CaptionDataModule, CaptionedImages
from rnnlab.data.download import DataError
from rnnlab.data.translation import read_lines
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

CSV_HEADER = ["image", "caption"]


def read_captions(path: Path) -> dict[str, list[str]]:
    """Image name → its captions, in the file's order (either layout of the module docstring)."""
    lines = read_lines(path)
    first = next((line for line in lines if line.strip()), "")
    if [field.strip().lower() for field in first.split(",")] == CSV_HEADER:
        rows = [(number, row) for number, row in enumerate(csv.reader(lines), start=1) if any(row)][1:]
        layout = "CSV"
    elif "\t" in first and "#" in first.split("\t")[0]:
        rows = [(number, line.split("\t", 1)) for number, line in enumerate(lines, start=1) if line.strip()]
        rows = [(number, [fields[0].rsplit("#", 1)[0], *fields[1:]]) for number, fields in rows]
        layout = "token"
    else:
        raise DataError(f"data.captions={path} is neither a CSV with the header image,caption nor Flickr8k's token "
                        f"file (<image>#<k><TAB><caption> per line); convert it to one of them")
    captions: dict[str, list[str]] = {}
    for number, fields in rows:
        if len(fields) < 2 or not fields[0].strip():
            expected = "image,caption" if layout == "CSV" else "<image>#<k><TAB><caption>"
            raise DataError(f"data.captions={path} line {number} is not {expected} (its {layout} layout); fix or "
                            f"remove the line")
        captions.setdefault(fields[0].strip(), []).append(",".join(fields[1:]) if layout == "CSV" else fields[1])
    return captions


def read_split(path: Path, key: str, captions: dict[str, list[str]], captions_path: Path) -> list[str]:
    """The image names a split file lists, each checked to have captions."""
    names = [line.strip() for line in read_lines(path) if line.strip()]
    for number, name in enumerate(names, start=1):
        if name not in captions:
            raise DataError(f"data.{key}={path} names {name} (entry {number}), which data.captions={captions_path} "
                            f"has no caption for; caption it or remove it from the split")
    return names


class ImageCaptionsDataModule(CaptionDataModule):
    """The folder and captions file of the module docstring; the captioning options are CaptionDataModule's."""

    option = "image_captions"

    def __init__(self, images_dir: str | None = None, captions: str | None = None, train_split: str | None = None,
                 val_split: str | None = None, test_split: str | None = None, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, skip_bad_images: bool = False, **common: object):
        super().__init__(**common)
        for key, value, kind in (("images_dir", images_dir, "folder"), ("captions", captions, "file")):
            if value is None:
                raise ConfigError(f"data.{key} is not set: give your images' {kind}, e.g. data.images_dir=~/flickr8k/"
                                  f"Images data.captions=~/flickr8k/Flickr8k.token.txt")
            if not (Path(value).expanduser().is_dir() if kind == "folder" else Path(value).expanduser().is_file()):
                raise ConfigError(f"data.{key}={value}: no such {kind}")
        split_files = {"train_split": train_split, "val_split": val_split, "test_split": test_split}
        if any(split_files.values()) and not (train_split and val_split):
            raise ConfigError("data.train_split and data.val_split go together (data.test_split is optional); give "
                              "both, or neither to split by data.val_fraction and data.test_fraction")
        for key, path in split_files.items():
            if path is not None and not Path(path).expanduser().is_file():
                raise ConfigError(f"data.{key}={path}: no such file; give a file of image names, one per line")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"data.{key}={value!r} is invalid: must be in [0, 1)")
        if not train_split and (val_fraction <= 0 or val_fraction + test_fraction >= 1):
            raise ConfigError(f"data.val_fraction={val_fraction}, data.test_fraction={test_fraction} are invalid: "
                              f"need val_fraction > 0 and val_fraction + test_fraction < 1, so that every split has "
                              f"images")
        self.images_dir, self.captions_path = Path(images_dir).expanduser(), Path(captions).expanduser()
        self.split_files = {key.removesuffix("_split"): Path(path).expanduser()
                            for key, path in split_files.items() if path}
        self.val_fraction, self.test_fraction, self.skip_bad_images = val_fraction, test_fraction, skip_bad_images

    def load_splits(self) -> dict[str, CaptionedImages | None]:
        captions = read_captions(self.captions_path)
        names = self._split_names(captions)
        return {split: self._read(split, split_names, captions) if split_names else None
                for split, split_names in names.items()}

    def _split_names(self, captions: dict[str, list[str]]) -> dict[str, list[str]]:
        if self.split_files:
            return {split: read_split(path, f"{split}_split", captions, self.captions_path)
                    for split, path in self.split_files.items()}
        names = list(captions)
        random.Random(0).shuffle(names)  # fixed: every seed trains and scores on the same split
        val, test = round(self.val_fraction * len(names)), round(self.test_fraction * len(names))
        if val < 1 or len(names) - val - test < 1:
            raise DataError(f"data.captions={self.captions_path} captions {len(names)} images: too few for a "
                            f"training and a validation split at data.val_fraction={self.val_fraction}; caption "
                            f"more images")
        return {"train": names[val + test:], "val": names[:val], "test": names[val: val + test]}

    def _read(self, split: str, names: list[str], captions: dict[str, list[str]]) -> CaptionedImages:
        """The split's images, read and resized; a bad one is an error, or skipped and counted."""
        images, kept, bad = [], [], []
        for name in names:
            try:
                images.append(self.image_settings.read(self.images_dir / name))
                kept.append(name)
            except DataError as error:
                if not self.skip_bad_images:
                    raise DataError(f"{error}, named in data.captions={self.captions_path}: add or replace it, fix "
                                    f"its name, or set data.skip_bad_images=true to skip such images") from None
                bad.append(str(error))
        self._count(split, "images that could not be read", len(bad))
        if bad:
            log.warning("data=%s %s: the first image skipped: %s", self.option, split, bad[0])
        if not kept:
            raise DataError(f"data.images_dir={self.images_dir}: not one image of the {split} split could be read")
        return CaptionedImages(torch.stack(images), [captions[name] for name in kept], kept)
