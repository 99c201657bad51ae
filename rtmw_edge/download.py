"""Fetch a file from an http(s) URL once: atomic, checksum-verified, cached, with a progress bar.

Every failure is one DownloadError line, because the usual causes (offline machine, wrong mirror, corrupted
transfer) are for the user to fix, and callers (such as `--weights auto`) may fall back on them.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_file

DOWNLOAD_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
USER_AGENT = "rtmw-edge"
URL_SCHEMES = ("http", "https")


class DownloadError(RtmwEdgeError):
    """A download failed (malformed URL, network, HTTP status, short read, checksum)."""


def one_line(text: object) -> str:
    """Collapse an exception text so that CLI messages stay on one line."""
    return " ".join(str(text).split())


def url_problem(url: str) -> str | None:
    """Why `url` cannot be downloaded from ('not an http(s) URL', 'no host name'), or None when it can."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        return f"not a URL ({one_line(exc)})"
    if parts.scheme.lower() not in URL_SCHEMES:
        return "not an http:// or https:// URL"
    if not parts.hostname:
        return "a URL without a host name"
    return None


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fetch(url: str, dest: Path, sha256_prefix: str | None, progress: bool = True) -> Path:
    """`dest` if it is already there (and matches `sha256_prefix`), else downloaded from `url` into it."""
    dest = Path(dest)
    if verified(dest, sha256_prefix) is None:
        download(url, dest, sha256_prefix, progress=progress)
    return dest


def verified(path: Path, sha256_prefix: str | None) -> Path | None:
    """`path` when it exists and its sha256 starts with `sha256_prefix`; None when absent; an error if corrupt."""
    path = Path(path)
    if not path.is_file():
        return None
    if sha256_prefix:
        got = sha256_of(path)
        if not got.startswith(sha256_prefix.lower()):
            raise RtmwEdgeError(f"cached file {path} is corrupted (sha256 {got}, expected it to start with "
                                f"{sha256_prefix}); delete it and run again to download it afresh")
    return path


def download(url: str, dest: Path, sha256_prefix: str | None, progress: bool = True) -> str:
    """Fetch `url` into `dest` atomically, verifying size and sha256 prefix; return the full sha256.

    The body goes to a temporary file beside `dest` that is renamed only when complete and verified,
    so an interrupted or corrupted download never leaves a file that looks cached.
    """
    problem = url_problem(url)
    if problem:
        raise DownloadError(f"cannot download {url!r}: it is {problem}")
    dest = Path(dest)
    digest = hashlib.sha256()
    received = 0
    with _open_url(url) as response:
        total = _content_length(response)
        with atomic_file(dest, overwrite=True) as tmp, tmp.open("wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
            disable=not progress, leave=False,
        ) as bar:
            for chunk in _stream(response, url):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(f"download of {url} was cut short: got {received} of {total} bytes")
            if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix.lower()):
                raise DownloadError(f"checksum mismatch for download of {url}: expected sha256 starting "
                                    f"{sha256_prefix}, got {digest.hexdigest()}")
    return digest.hexdigest()


def _open_url(url: str) -> http.client.HTTPResponse:
    """Open `url`, turning every network failure into one DownloadError line."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {one_line(exc.reason)}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot download {url}: {one_line(exc.reason)}") from exc
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {url}: {one_line(exc) or type(exc).__name__}") from exc


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The declared body size, or None when the server does not say (or says nonsense)."""
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _stream(response: http.client.HTTPResponse, url: str) -> Iterator[bytes]:
    """Yield the body in chunks; a stalled or reset connection becomes a DownloadError."""
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"cannot download {url}: {one_line(exc) or type(exc).__name__}") from exc
        if not chunk:
            return
        yield chunk
