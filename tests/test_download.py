"""Dataset files: used when present and intact, downloaded and verified when missing, clear errors otherwise.

No network: downloads come from a local HTTP server in a thread, and "offline" is a port nobody
listens on.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading

import pytest
from conftest import SHARED_DATA

from rnnlab.data import multi30k
from rnnlab.data.download import DataError, RemoteFile, fetch
from rnnlab.data.multi30k import Multi30kDataModule

CONTENT = b"ein Satz\nzwei Saetze\n"
SHA = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(directory it serves, base URL); requests to it bypass any proxy in the environment."""
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on a local port that nothing listens on: a download fails at once, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_present_file_with_matching_hash_is_used_without_downloading(tmp_path, closed_port_url):
    (tmp_path / "a.txt").write_bytes(CONTENT)
    paths = fetch([RemoteFile("a.txt", f"{closed_port_url}/a.txt", SHA)], tmp_path, "demo")
    assert paths == {"a.txt": tmp_path / "a.txt"}


def test_present_file_with_wrong_hash_is_an_error_naming_it(tmp_path, closed_port_url):
    (tmp_path / "a.txt").write_bytes(CONTENT + b"edited\n")
    with pytest.raises(DataError, match=r"a\.txt does not match its pinned checksum sha256:.*delete it"):
        fetch([RemoteFile("a.txt", f"{closed_port_url}/a.txt", SHA)], tmp_path, "demo")


def test_missing_file_is_downloaded_and_verified(tmp_path, server):
    served, url = server
    (served / "a.txt").write_bytes(CONTENT)
    root = tmp_path / "root"
    paths = fetch([RemoteFile("a.txt", f"{url}/a.txt", SHA)], root, "demo")
    assert paths["a.txt"] == root / "a.txt"
    assert (root / "a.txt").read_bytes() == CONTENT


def test_download_with_wrong_content_is_rejected_and_not_kept(tmp_path, server):
    served, url = server
    (served / "a.txt").write_bytes(b"something else\n")
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"a\.txt downloaded but does not match its pinned checksum"):
        fetch([RemoteFile("a.txt", f"{url}/a.txt", SHA)], root, "demo")
    assert not (root / "a.txt").exists()


def test_unreachable_server_lists_every_missing_file_and_the_directory(tmp_path, closed_port_url):
    (tmp_path / "b.txt").write_bytes(CONTENT)  # present: not listed
    files = [RemoteFile(name, f"{closed_port_url}/{name}", SHA if name == "b.txt" else None)
             for name in ("a.txt", "b.txt", "c.txt")]
    with pytest.raises(DataError) as error:
        fetch(files, tmp_path, "demo")
    message = str(error.value)
    assert f"demo: 2 file(s) missing in {tmp_path}" in message
    assert f"a.txt from {closed_port_url}/a.txt" in message and f"c.txt from {closed_port_url}/c.txt" in message
    assert "b.txt" not in message
    assert "download failed" in message and "\n" not in message


def test_downloads_disabled_names_the_setting(tmp_path, server):
    served, url = server
    (served / "a.txt").write_bytes(CONTENT)
    with pytest.raises(DataError, match=r"missing in .*downloads disabled: data\.download=false.*a\.txt from"):
        fetch([RemoteFile("a.txt", f"{url}/a.txt", SHA)], tmp_path, "demo", download=False)


def test_multi30k_downloads_its_missing_files_from_the_repository(tmp_path, server, monkeypatch):
    served, url = server
    for path in (SHARED_DATA / "multi30k").glob("*.gz"):
        shutil.copy(path, served / path.name)
    monkeypatch.setattr(multi30k, "BASE_URL", url)
    root = tmp_path / "multi30k"
    root.mkdir()
    shutil.copy(SHARED_DATA / "multi30k" / "val.en.gz", root / "val.en.gz")  # one present already
    data = Multi30kDataModule(root=str(root), max_train_pairs=500, cache_dir=None, vocab_size=500)
    data.prepare_data()
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in served.iterdir())
    assert data.references("val")[0] == "A group of men are loading cotton onto a truck"


def test_multi30k_offline_error_names_files_and_directory(tmp_path, closed_port_url, monkeypatch):
    monkeypatch.setattr(multi30k, "BASE_URL", closed_port_url)
    data = Multi30kDataModule(root=str(tmp_path), src_lang="en", tgt_lang="de", cache_dir=None)
    with pytest.raises(DataError) as error:
        data.prepare_data()
    message = str(error.value)
    assert f"multi30k: 6 file(s) missing in {tmp_path}" in message
    for name in ("train.en.gz", "train.de.gz", "val.en.gz", "val.de.gz", "test_2016_flickr.en.gz",
                 "test_2016_flickr.de.gz"):
        assert f"{name} from {closed_port_url}/{name}" in message
    assert "set data.root" in message


def test_multi30k_unpinned_languages_are_fetched_unverified_and_say_so(tmp_path, caplog, closed_port_url,
                                                                       monkeypatch):
    monkeypatch.setattr(multi30k, "BASE_URL", closed_port_url)
    files = multi30k.remote_files(("fr", "en"))
    assert {f.name: f.known_hash for f in files if f.name.endswith(".fr.gz")} == {
        "train.fr.gz": None, "val.fr.gz": None, "test_2016_flickr.fr.gz": None}
    assert all(f.known_hash.startswith("sha256:") for f in files if f.name.endswith(".en.gz"))
    data = Multi30kDataModule(root=str(tmp_path), src_lang="fr", tgt_lang="en", cache_dir=None)
    with pytest.raises(DataError, match="6 file"):
        data.prepare_data()
    assert "no pinned checksum for train.fr.gz, val.fr.gz, test_2016_flickr.fr.gz" in caplog.text
