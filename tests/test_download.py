"""Downloads over real HTTP on 127.0.0.1: atomic, verified, fetched once; bad URLs are one-line errors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_mirror import Mirror, running_mirror

from rtmw_edge import download
from rtmw_edge.download import DownloadError, fetch
from rtmw_edge.errors import RtmwEdgeError

BODY = b"abc" * 1000
SHA256 = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT_S", 5.0)  # a hung test fails in seconds, not minutes
    with running_mirror() as server:
        yield server


def test_download_returns_full_sha256_without_a_prefix_to_check(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("any.pth", BODY)
    dest = tmp_path / "deep" / "any.pth"
    assert download.download(f"{mirror.base}/any.pth", dest, None, progress=False) == SHA256
    assert dest.read_bytes() == BODY


def test_fetch_downloads_once_then_returns_the_verified_file(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("any.bin", BODY)
    dest = tmp_path / "cache" / "any.bin"
    assert fetch(f"{mirror.base}/any.bin", dest, SHA256[:8], progress=False) == dest
    assert fetch(f"{mirror.base}/any.bin", dest, SHA256[:8].upper(), progress=False) == dest
    assert dest.read_bytes() == BODY
    assert mirror.requests == ["/mirror/any.bin"]


def test_fetch_of_a_corrupted_cached_file_says_to_delete_it_and_downloads_nothing(
        mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "any.bin"
    dest.write_bytes(b"not it")
    with pytest.raises(RtmwEdgeError, match=rf"{dest} is corrupted.*delete it"):
        fetch(f"{mirror.base}/any.bin", dest, SHA256[:8], progress=False)
    assert mirror.requests == []


@pytest.mark.parametrize("url", ["notaurl", "ftp://x/file", "http://", "https:///file"])
def test_a_malformed_url_is_one_line_naming_it_and_writes_nothing(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as caught:
        download.download(url, tmp_path / "out" / "file", None, progress=False)
    message = str(caught.value)
    assert message.startswith(f"cannot download {url!r}: it is ") and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_a_wrong_checksum_leaves_no_file_and_no_folder(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("any.bin", BODY)
    with pytest.raises(DownloadError, match=f"expected sha256 starting 00000000, got {SHA256}"):
        download.download(f"{mirror.base}/any.bin", tmp_path / "new" / "any.bin", "00000000", progress=False)
    assert list(tmp_path.iterdir()) == []
