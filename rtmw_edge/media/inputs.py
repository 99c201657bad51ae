"""What an input is (image file, folder of images, video file, camera index), sorted out before any work.

`predict` takes several at once; every problem it can see without decoding a pixel (a missing path, a folder
without images, two inputs whose outputs would share a name) is one error before the first inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass(frozen=True)
class ImageFile:
    """An image to predict on. One the user named is an error when unreadable; one found in a folder is skipped."""

    path: Path
    named: bool


@dataclass
class Inputs:
    images: list[ImageFile] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    camera: int | None = None
    skipped: list[str] = field(default_factory=list)  # the folders' other files, and why they are skipped


def collect_inputs(sources: Sequence[str | Path]) -> Inputs:
    """Sort `sources` into images (named, or found in folders by suffix), videos (by suffix) and a camera.

    A file given twice (named and in its folder) counts once; a camera must be the only input.
    """
    inputs, cameras, seen = Inputs(), [], set()
    for source in sources:
        path = Path(source)
        if not path.exists() and str(source).isdigit():
            cameras.append(int(str(source)))
        elif path.is_dir():
            _add_images(inputs, _folder_images(path, inputs), seen, named=False)
        elif not path.is_file():
            raise RtmwEdgeError(f"{path} does not exist (expected an image, a folder, a video or a camera index)")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            if _first_time(path, seen):
                inputs.videos.append(path)
        else:
            _add_images(inputs, [path], seen, named=True)
    if cameras:
        if len(cameras) > 1 or inputs.images or inputs.videos:
            raise RtmwEdgeError(f"camera {cameras[0]} must be the only input (a camera runs until Ctrl-C)")
        inputs.camera = cameras[0]
    _refuse_shared_names([i.path for i in inputs.images], lambda p: p.name)
    _refuse_shared_names(inputs.videos, lambda p: p.stem)
    return inputs


def _folder_images(folder: Path, inputs: Inputs) -> list[Path]:
    """The folder's image files, sorted by name; every other file is reported and counted as skipped."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        what = f"only {len(files)} other file(s)" if files else "it is empty"
        raise RtmwEdgeError(f"folder {folder} holds no image file ({', '.join(sorted(IMAGE_SUFFIXES))}; {what}): "
                            "nothing to predict")
    inputs.skipped += [f"skipped {other}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})"
                       for other in sorted(set(files) - set(images))]
    return images


def _add_images(inputs: Inputs, paths: Sequence[Path], seen: set[Path], named: bool) -> None:
    inputs.images.extend(ImageFile(p, named) for p in paths if _first_time(p, seen))


def _first_time(path: Path, seen: set[Path]) -> bool:
    key = path.resolve()
    if key in seen:
        return False
    seen.add(key)
    return True


def _refuse_shared_names(paths: Sequence[Path], name: Callable[[Path], str]) -> None:
    """Outputs are named after inputs: two inputs of one name (from two folders) would overwrite each other."""
    first: dict[str, Path] = {}
    for path in paths:
        other = first.setdefault(name(path), path)
        if other != path:
            raise RtmwEdgeError(f"{other} and {path} share the name {name(path)!r}, so their outputs would "
                                "collide: predict them in separate runs (each with its own --out)")
