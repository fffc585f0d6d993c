"""`data=multi30k`: Multi30k task 1 (Elliott et al., 2016), image captions in de, en, fr and cs.

The raw files (untokenized, cased, gzip, one sentence per line, line i of `X.de.gz` translating
line i of `X.en.gz`) are read from `data.root`. Missing ones are downloaded from the dataset's
public repository, https://github.com/multi30k/dataset (data/task1/raw/), and checked against the
sha256 pinned below; offline, the error lists the missing files, their URLs and the directory
to put them in.

Splits: train (29,000 pairs), val (1,014), test = test_2016_flickr (1,000), the split published
results quote. Scores are always on the whole val/test split (see rnnlab.data.translation).

Checksums: the de and en files are pinned (the copies in ../shared/data/multi30k, verified).
The fr and cs files could not be hashed where this was written (no network), so they are used
**unverified** (`known_hash=None`) and a warning says so; pin them here once a trusted copy is
at hand (`rnnlab.data.download.file_hash(path)`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rnnlab.data.download import RemoteFile, fetch
from rnnlab.data.translation import ParallelSplit, TranslationDataModule, read_aligned
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
LANGUAGES = ("de", "en", "fr", "cs")
SPLIT_FILES = {"train": "train", "val": "val", "test": "test_2016_flickr"}  # split → file stem
SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
}


def remote_files(languages: tuple[str, ...]) -> list[RemoteFile]:
    """The train, val and test_2016_flickr files of these languages, with their pinned checksums."""
    files = []
    for stem in SPLIT_FILES.values():
        for language in languages:
            name = f"{stem}.{language}.gz"
            known_hash = f"sha256:{SHA256[name]}" if name in SHA256 else None
            files.append(RemoteFile(name, f"{BASE_URL}/{name}", known_hash))
    return files


class Multi30kDataModule(TranslationDataModule):
    """Multi30k task 1 from `root` (downloaded there if missing), `src_lang` → `tgt_lang`."""

    option = "multi30k"

    def __init__(self, root: str = "data/multi30k", src_lang: str = "de", tgt_lang: str = "en",
                 download: bool = True, **common: object):
        super().__init__(**common)
        for key, language in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if language not in LANGUAGES:
                raise ConfigError(f"data.{key}={language!r} is invalid: Multi30k task 1 has {', '.join(LANGUAGES)}")
        if src_lang == tgt_lang:
            raise ConfigError(f"data.src_lang and data.tgt_lang are both {src_lang!r}: pick two different "
                              f"languages of {', '.join(LANGUAGES)}, e.g. data.src_lang=de data.tgt_lang=en")
        self.root, self.src_lang, self.tgt_lang, self.download = Path(root).expanduser(), src_lang, tgt_lang, download

    def load_splits(self) -> dict[str, ParallelSplit]:
        files = remote_files((self.src_lang, self.tgt_lang))
        unverified = [f.name for f in files if f.known_hash is None]
        if unverified:
            log.warning("multi30k: no pinned checksum for %s; using them unverified", ", ".join(unverified))
        paths = fetch(files, self.root, "multi30k", download=self.download)
        return {split: read_aligned(paths[f"{stem}.{self.src_lang}.gz"], paths[f"{stem}.{self.tgt_lang}.gz"])
                for split, stem in SPLIT_FILES.items()}
