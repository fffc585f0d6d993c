"""`data=ud_ewt`: part-of-speech tags of the Universal Dependencies English Web Treebank (Silveira et al., 2014).

Weblogs, newsgroups, emails, reviews and question answers, in CoNLL-U (read by rnnlab.data.conll: the syntactic
words, multiword-token and empty-node lines skipped). `data.tagset`: `upos`, the 17 universal tags (NOUN, VERB,
ADP, ...), or `xpos`, the Penn Treebank tags (NN, VBZ, IN, ...; 49 in these files: the lecture's "36 classes" are
this tag set's word tags, the rest punctuation and web additions such as ADD, NFP, GW).

Files under `data.root`: `en_ewt-ud-{train,dev}.conllu` and, when present, `en_ewt-ud-test.conllu` (each may be
gzipped). 12,544 / 2,001 / 2,077 sentences, 204,577 / 25,147 / 25,094 words in release 2.16 (CC BY-SA 4.0), from
https://github.com/UniversalDependencies/UD_English-EWT. Nothing is downloaded: another release has other sizes and
scores (a warning says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rnnlab.data.conll import TAGSETS, read_conllu
from rnnlab.data.download import find_local
from rnnlab.data.tagging import Tagged, TaggingDataModule
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

FILES = {"train": "en_ewt-ud-train.conllu", "val": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}
SOURCE = "release 2.16 of https://github.com/UniversalDependencies/UD_English-EWT"
SENTENCES = {"train": 12544, "val": 2001, "test": 2077}  # release 2.16


class UDEWTDataModule(TaggingDataModule):
    """UPOS or XPOS tags of UD English EWT, train/dev(/test) from `root`."""

    option = "ud_ewt"

    def __init__(self, root: str = "data/ud_ewt", tagset: str = "upos", **options: object):
        super().__init__(**options)
        if tagset not in TAGSETS:
            raise ConfigError(f"data.tagset={tagset!r} is invalid: choose upos (17 universal tags) or xpos (the Penn "
                              f"Treebank tags)")
        self.root, self.tagset = Path(root).expanduser(), tagset

    def load_splits(self) -> dict[str, Tagged | None]:
        wanted = {split: (name, f"{name}.gz") for split, name in FILES.items()}
        found = find_local(wanted, self.root, "data=ud_ewt", SOURCE, optional=("test",))
        splits = {split: None if path is None else read_conllu(path, self.tagset) for split, path in found.items()}
        for split, tagged in splits.items():
            if tagged is not None and len(tagged) != SENTENCES[split]:
                log.warning("data=ud_ewt: %s holds %d sentences, release 2.16's %s split %d: another release, whose "
                            "scores do not compare with published ones", found[split], len(tagged), split,
                            SENTENCES[split])
        return splits
