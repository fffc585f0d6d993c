"""Dataset files: found under `data.root`, else downloaded once with a pinned sha256, else a clear error.

Every dataset module lists its files as `RemoteFile`s. `fetch` returns their local paths:
- a file already in `root` is used once its checksum matches (a mismatch is an error that
  says so: a silently different corpus makes numbers incomparable);
- a missing file is downloaded with pooch (cached, checksum-verified, atomic);
- when the download fails (offline, proxy), the error lists every missing file, its URL and the
  directory to put it in, so a user can copy them by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import ConfigError


class DataError(ConfigError):
    """Missing, corrupt or unusable data. One line naming the file and the fix (exit status 2)."""


@dataclass(frozen=True)
class RemoteFile:
    name: str                # file name under root
    url: str
    # pooch's "algorithm:hexdigest", e.g. "sha256:726e…" ("md5:…" where only that was ever published);
    # None only where no checksum could be pinned, which the dataset's docs must say
    known_hash: str | None


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(path: Path, known_hash: str | None) -> bool:
    if known_hash is None:
        return True
    algorithm, _, expected = known_hash.partition(":")
    return file_hash(path, algorithm) == expected


def fetch(files: list[RemoteFile], root: str | Path, dataset: str, download: bool = True) -> dict[str, Path]:
    """Local paths of `files` under `root`, downloading the missing ones when `download`."""
    root = Path(root).expanduser()
    paths, missing = {}, []
    for file in files:
        path = root / file.name
        if path.is_file():
            if not _matches(path, file.known_hash):
                raise DataError(f"{path} does not match its pinned checksum {file.known_hash[:19]}… (corrupt or "
                                f"a different version of {dataset}); delete it to download it again")
            paths[file.name] = path
        else:
            missing.append(file)
    if missing and download:
        failed = []
        for file in missing:
            try:
                paths[file.name] = _download(file, root)
            except DataError:
                raise
            except Exception as error:  # noqa: BLE001  (network errors come in many types)
                failed.append((file, error))
        missing = [file for file, _ in failed]
        reason = f" (download failed: {type(failed[0][1]).__name__}: {failed[0][1]})" if failed else ""
    else:
        reason = " (downloads disabled: data.download=false)"
    if missing:
        listing = ", ".join(f"{f.name} from {f.url}" for f in missing)
        raise DataError(f"{dataset}: {len(missing)} file(s) missing in {root}{reason}; put {listing} "
                        f"there, or set data.root to a directory that holds them")
    return paths


def _download(file: RemoteFile, root: Path) -> Path:
    import pooch  # imported here: only a download needs it

    root.mkdir(parents=True, exist_ok=True)
    try:
        path = pooch.retrieve(file.url, known_hash=file.known_hash, fname=file.name, path=root, progressbar=False)
    except ValueError as error:  # pooch's checksum mismatch
        if "hash" in str(error).lower():
            raise DataError(f"{file.url} downloaded but does not match its pinned checksum {file.known_hash[:19]}…; "
                            f"the upstream file changed: report it, or place a verified copy in {root}") from None
        raise
    return Path(path)


def find_local(wanted: dict[str, tuple[str, ...]], root: str | Path, dataset: str, source: str,
               optional: tuple[str, ...] = ()) -> dict[str, Path | None]:
    """Files that are not downloaded (no public copy with a pinned checksum): per key, the first of its names found
    under `root`. A missing required file is one error naming every missing file, `root`, and `source` (where to
    get them); a missing optional one (a held-back test split) is None."""
    root = Path(root).expanduser()
    found = {key: next((root / name for name in names if (root / name).is_file()), None)
             for key, names in wanted.items()}
    missing = [names for key, names in wanted.items() if found[key] is None and key not in optional]
    if missing:
        listing = ", ".join(" or ".join(names) for names in missing)
        raise DataError(f"{dataset}: {len(missing)} file(s) missing in {root}; put {listing} there ({source}), "
                        f"or set data.root to a directory that holds them")
    return found
