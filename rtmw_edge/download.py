"""Fetch a file from an http(s) URL once: atomic, checksum-verified, checked, cached, with a progress bar.

Every file rtmw-edge downloads (checkpoints, pose and detector ONNX zips) comes through `fetch`: the body goes to a
temporary file that becomes the cached file only once it is complete, matches the checksum its name carries (if
any) and passes the caller's content check. Its full sha256 is then recorded beside it (`<name>.sha256`), and a
cached copy is used only while it still matches that record. `$RTMW_EDGE_MIRROR` replaces the OpenMMLab prefix
of every URL, so one mirror holding the same paths serves everything.

Every failure is one DownloadError line, because the usual causes (offline machine, wrong mirror, corrupted
transfer) are for the user to fix, and callers (such as `--weights auto`) may fall back on them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_file

DOWNLOAD_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
USER_AGENT = "rtmw-edge"
URL_SCHEMES = ("http", "https")
OFFICIAL_PREFIX = "https://download.openmmlab.com/"
MIRROR_ENV = "RTMW_EDGE_MIRROR"
RETIRED_ENV = "RTMW_EDGE_CHECKPOINT_URL"  # the checkpoints-only mirror variable that MIRROR_ENV replaced
RECORD_SUFFIX = ".sha256"


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


def mirrored(url: str) -> str:
    """`url` with its `https://download.openmmlab.com/` prefix replaced by $RTMW_EDGE_MIRROR when that is set."""
    if os.environ.get(RETIRED_ENV):
        raise RtmwEdgeError(f"{RETIRED_ENV} is no longer read: set {MIRROR_ENV} to a mirror of {OFFICIAL_PREFIX} "
                            f"(the same paths below it) and unset {RETIRED_ENV}")
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror or not url.startswith(OFFICIAL_PREFIX):
        return url
    problem = url_problem(mirror)
    if problem:
        raise RtmwEdgeError(f"{MIRROR_ENV}={mirror!r} is {problem}: set it to the http(s) URL of a mirror of "
                            f"{OFFICIAL_PREFIX} (the same paths below it) or unset it")
    return mirror.rstrip("/") + "/" + url.removeprefix(OFFICIAL_PREFIX)


def record_path(path: Path) -> Path:
    """Where the sha256 of a downloaded file is kept: beside it, so the two are removed together."""
    return path.with_name(path.name + RECORD_SUFFIX)


def fetch(url: str, dest: Path, sha256_prefix: str | None = None, progress: bool = True,
          check: Callable[[Path], None] | None = None) -> Path:
    """`dest` if it is cached and unchanged, else downloaded from (the mirror of) `url`, checked, then cached.

    `check(path)` looks at the complete download before it is cached and raises RtmwEdgeError when the content is
    unusable (a zip without the model it should hold): then nothing is cached.
    """
    dest = Path(dest)
    if verified(dest, sha256_prefix) is None:
        download(url, dest, sha256_prefix, progress=progress, check=check)
    return dest


def verified(path: Path, sha256_prefix: str | None = None) -> Path | None:
    """`path` when it is cached and matches its name's checksum and its record; None when it is not cached.

    A file without its record (an interrupted run, or a copy put there by hand) counts as not cached unless its
    name's checksum vouches for it; a file that differs from its record is an error, never silently replaced.
    """
    path = Path(path)
    if not path.is_file():
        return None
    got = sha256_of(path)
    if sha256_prefix and not got.startswith(sha256_prefix.lower()):
        raise RtmwEdgeError(f"cached file {path} is corrupted (sha256 {got}, expected it to start with "
                            f"{sha256_prefix}); delete it and run again to download it afresh")
    record = record_path(path)
    if not record.is_file():
        if not sha256_prefix:
            return None
        _write_record(path, got)
        return path
    expected = next(iter(record.read_text().split()), "")
    if got != expected:
        raise RtmwEdgeError(f"cached file {path} has changed since it was downloaded (sha256 {got}, recorded "
                            f"{expected or 'nothing'}); delete it and run again to download it afresh")
    return path


def download(url: str, dest: Path, sha256_prefix: str | None, progress: bool = True,
             check: Callable[[Path], None] | None = None) -> str:
    """Fetch (the mirror of) `url` into `dest` atomically, verifying size, sha256 prefix and `check`; record and
    return the full sha256.

    The body goes to a temporary file beside `dest` that is renamed only when complete and verified,
    so an interrupted or corrupted download never leaves a file that looks cached.
    """
    url = mirrored(url)
    problem = url_problem(url)
    if problem:
        raise DownloadError(f"cannot download {url!r}: it is {problem}")
    dest = Path(dest)
    digest = hashlib.sha256()
    received = 0
    with _open_url(url) as response:
        total = _content_length(response)
        with atomic_file(dest, overwrite=True) as tmp, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
            disable=not progress, leave=False,
        ) as bar:
            with tmp.open("wb") as out:
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
            if check is not None:
                try:
                    check(tmp)
                except RtmwEdgeError as exc:
                    raise DownloadError(f"download of {url} is unusable: {one_line(exc)}") from exc
    _write_record(dest, digest.hexdigest())
    return digest.hexdigest()


def _write_record(path: Path, sha256: str) -> None:
    with atomic_file(record_path(path), overwrite=True) as tmp:
        tmp.write_text(f"{sha256}  {path.name}\n")


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
