"""`data=snips_slots`: the slot tags of the SNIPS NLU benchmark (Coucke et al., 2018), in the split of Goo et al.
(2018): the same utterances as `data=snips` (its intents), read by the same reader (rnnlab.data.snips.read_split).

Each word of a voice-assistant request has a BIO slot tag, `seq.out` aligned with `seq.in` word by word:

    add  step          to            me            to  the  50          clásicos    playlist
    O    B-entity_name I-entity_name I-entity_name O   O    B-playlist  I-playlist  O

(72 tags in train: B- begins a slot, I- continues it, O is outside any slot). task=tagging scores the slots as
conlleval does (span precision, recall, F1) besides the per-word metrics. A line of seq.out with another number of
tags than its utterance has words is an error naming the line (the reader's check). Each utterance's intent
(`label`) comes with it, for `task.intent=joint|conditioned`: a tagger that also classifies the intent.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rnnlab.data.download import DataError, find_local
from rnnlab.data.snips import FOLDERS, SOURCE, UTTERANCES, read_split
from rnnlab.data.tagging import Tagged, TaggingDataModule

log = logging.getLogger(__name__)

FILES = ("seq.in", "label", "seq.out")


class SnipsSlotsDataModule(TaggingDataModule):
    """The BIO slot tags of SNIPS, train/valid(/test) from `root`."""

    option = "snips_slots"

    def __init__(self, root: str = "data/snips", **options: object):
        super().__init__(**options)
        self.root = Path(root).expanduser()

    def load_splits(self) -> dict[str, Tagged | None]:
        wanted = {f"{folder}/{name}": (f"{folder}/{name}",) for folder in FOLDERS.values() for name in FILES}
        found = find_local(wanted, self.root, "data=snips_slots", SOURCE,
                           optional=tuple(f"test/{name}" for name in FILES))
        present = [name for name in FILES if found[f"test/{name}"] is not None]
        if present and len(present) < len(FILES):
            lacking = ", ".join(name for name in FILES if name not in present)
            raise DataError(f"data=snips_slots: {self.root / 'test'} holds {', '.join(present)} but not {lacking}: "
                            f"put all three there (from {SOURCE}), or none")
        return {split: self._read(split, folder) if found[f"{folder}/seq.out"] is not None else None
                for split, folder in FOLDERS.items()}

    def _read(self, split: str, folder: str) -> Tagged:
        read = read_split(self.root / folder, slots=True)
        if len(read.utterances) != UTTERANCES[split]:
            log.warning("data=snips_slots: %s holds %d utterances, Goo et al.'s %s split %d: another version, whose "
                        "scores do not compare with published ones", self.root / folder, len(read.utterances), split,
                        UTTERANCES[split])
        words = [utterance.split() for utterance in read.utterances]
        lines = [[number] * len(sentence) for number, sentence in enumerate(words, start=1)]
        return Tagged(words, read.slots, self.root / folder / "seq.out", lines, read.intents,
                      self.root / folder / "label")
