"""Atomic writes: a failed run never leaves a half-written file, nor a folder it created for its outputs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RtmwEdgeError(f"{path} already exists (use --overwrite to replace it)")
    with _new_folders(path.parent) as parent:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
        os.close(fd)
        tmp_path = Path(tmp)
        tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes it private; the result should read like any new file
        try:
            yield tmp_path
            if overwrite:
                os.replace(tmp_path, path)
            else:
                _link_new(tmp_path, path)
        finally:
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only if the block succeeds.

    With `overwrite`, an existing folder is replaced only after the new one is complete.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise RtmwEdgeError(f"{path} already exists (use --overwrite to replace it)")
    with _new_folders(path.parent) as parent:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=parent))
        tmp.chmod(0o777 & ~_umask())
        try:
            yield tmp
            if path.exists() and overwrite:
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
                os.replace(path, old / "previous")
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                _rename_new(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary folder inside `folder`; if the block succeeds, every file written into it moves
    into `folder` under its own name, otherwise none does.

    What it remembers does not grow with the number of files (a run may write millions): they are found by
    listing the folder when the block ends.
    """
    with _new_folders(Path(folder)) as parent:
        staging = Path(tempfile.mkdtemp(prefix=".staged.", suffix=".part", dir=parent))
        try:
            yield staging
            with os.scandir(staging) as entries:
                for entry in entries:
                    if overwrite:
                        os.replace(entry.path, parent / entry.name)
                    else:
                        _link_new(Path(entry.path), parent / entry.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _appeared(path: Path) -> RtmwEdgeError:
    return RtmwEdgeError(f"{path} appeared while this run was writing it (another run?): left as it is; "
                         "use --overwrite to replace it")


def _link_new(tmp: Path, path: Path) -> None:
    """Publish `tmp` as `path` only if nothing is there yet: a hard link never replaces a file."""
    try:
        os.link(tmp, path)
    except FileExistsError as exc:
        raise _appeared(path) from exc
    except OSError:  # a file system without hard links (FAT): check, then rename
        if path.exists():
            raise _appeared(path) from None
        os.replace(tmp, path)


def _rename_new(tmp: Path, path: Path) -> None:
    """Publish folder `tmp` as `path` only if nothing is there yet (rename fails onto a non-empty folder)."""
    if path.exists():
        raise _appeared(path)
    try:
        os.rename(tmp, path)
    except OSError as exc:
        raise _appeared(path) from exc


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and check that files can be written into it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RtmwEdgeError(f"cannot create folder {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise RtmwEdgeError(f"{path} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise RtmwEdgeError(f"folder {path} is not writable")
    return path


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Fail now, creating nothing, when files could not be written into `path` once it is created.

    For commands that work minutes before their first output: they learn of a bad --out at once, and leave
    no empty folder behind when they fail.
    """
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RtmwEdgeError(f"{existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RtmwEdgeError(f"folder {existing} is not writable")
    return path


@contextlib.contextmanager
def _new_folders(path: Path) -> Iterator[Path]:
    """ensure_writable_dir(path); when the block fails, remove the folders it created if they are still empty."""
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    ensure_writable_dir(path)
    try:
        yield path
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # no longer empty: another output (or someone else) is using it
                break
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
