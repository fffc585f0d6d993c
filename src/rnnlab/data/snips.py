"""`data=snips`: intents of the SNIPS NLU benchmark (Coucke et al., 2018), in the split of Goo et al. (2018).

Voice-assistant requests ("add step to me to the 50 clásicos playlist"), each with one of 7 intents
(AddToPlaylist, BookRestaurant, GetWeather, PlayMusic, RateBook, SearchCreativeWork, SearchScreeningEvent).
Files under `data.root`, one folder per split, `train/`, `valid/` and (when present) `test/`, each holding
three aligned files, line i of each about utterance i:

- `seq.in`: the utterance, lowercased and split into space-separated tokens;
- `label`: its intent;
- `seq.out`: one BIO slot tag per token (`B-playlist I-playlist O`), for slot filling; intent classification
  does not read it, `read_split(folder, slots=True)` does.

13,084 / 700 / 700 utterances; the folders of data/snips in https://github.com/MiuLab/SlotGated-SLU (CC0 1.0).
Nothing is downloaded: no checksum of those files is published to pin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rnnlab.data.classification import ClassificationDataModule, Labelled
from rnnlab.data.download import DataError, find_local
from rnnlab.data.translation import read_lines

log = logging.getLogger(__name__)

FOLDERS = {"train": "train", "val": "valid", "test": "test"}
SOURCE = "the folders of data/snips in https://github.com/MiuLab/SlotGated-SLU"
UTTERANCES = {"train": 13084, "val": 700, "test": 700}  # Goo et al. (2018)'s split


@dataclass
class SnipsSplit:
    """A split's utterances (space-separated tokens), their intents and, when read, one slot tag per token."""

    utterances: list[str]
    intents: list[str]
    slots: list[list[str]] | None = None

    def labelled(self) -> Labelled:
        return Labelled(self.utterances, self.intents)


def read_split(folder: Path, slots: bool = False) -> SnipsSplit:
    """`folder`'s seq.in and label (and seq.out with `slots`), checked to align line by line."""
    utterances = [line.strip() for line in read_lines(folder / "seq.in")]
    intents = [line.strip() for line in read_lines(folder / "label")]
    if len(intents) != len(utterances):
        raise DataError(f"{folder / 'seq.in'} has {len(utterances)} lines but {folder / 'label'} has {len(intents)}: "
                        f"line i of label is the intent of line i of seq.in; restore the folder from {SOURCE}")
    if "" in intents:
        raise DataError(f"{folder / 'label'} line {intents.index('') + 1} is empty: every utterance needs an intent")
    if not slots:
        return SnipsSplit(utterances, intents)
    tags = [line.split() for line in read_lines(folder / "seq.out")]
    for number, (utterance, line_tags) in enumerate(zip(utterances, tags, strict=False), start=1):
        if len(utterance.split()) != len(line_tags):
            raise DataError(f"{folder / 'seq.out'} line {number} has {len(line_tags)} tags for the "
                            f"{len(utterance.split())} tokens of seq.in's line {number}: one BIO tag per token")
    if len(tags) != len(utterances):
        raise DataError(f"{folder / 'seq.in'} has {len(utterances)} lines but {folder / 'seq.out'} has {len(tags)}: "
                        f"line i of seq.out tags line i of seq.in; restore the folder from {SOURCE}")
    return SnipsSplit(utterances, intents, tags)


class SnipsDataModule(ClassificationDataModule):
    """The 7 intents of SNIPS, train/valid(/test) from `root`; classes in sorted order."""

    option = "snips"

    def __init__(self, root: str = "data/snips", **options: object):
        super().__init__(**options)
        self.root = Path(root).expanduser()

    def load_splits(self) -> dict[str, Labelled | None]:
        wanted = {f"{folder}/{name}": (f"{folder}/{name}",) for folder in FOLDERS.values()
                  for name in ("seq.in", "label")}
        found = find_local(wanted, self.root, "data=snips", SOURCE, optional=("test/seq.in", "test/label"))
        if (found["test/seq.in"] is None) != (found["test/label"] is None):
            have, lack = ("seq.in", "label") if found["test/label"] is None else ("label", "seq.in")
            raise DataError(f"data=snips: {self.root / 'test'} holds {have} but not {lack}: put both there (from "
                            f"{SOURCE}), or neither")
        return {split: None if found[f"{folder}/label"] is None else self._read(split, folder)
                for split, folder in FOLDERS.items()}

    def _read(self, split: str, folder: str) -> Labelled:
        read = read_split(self.root / folder)
        if len(read.intents) != UTTERANCES[split]:
            log.warning("data=snips: %s holds %d utterances, Goo et al.'s %s split %d: another version, whose scores "
                        "do not compare with published ones", self.root / folder, len(read.intents), split,
                        UTTERANCES[split])
        return read.labelled()
