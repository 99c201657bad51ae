"""The data the package ships (recipes, calibration photos, device profiles) and the one TOML reader.

In a wheel the data folders sit inside the package (`rtmw_edge/_recipes`, ...); in a source checkout they are
the top-level folders (`quantize/`, ...). pyproject.toml maps one onto the other.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError

_PACKAGE = Path(__file__).resolve().parent
# name -> (folder inside the wheel, folder of a source checkout, what it holds)
DATA_FOLDERS = {
    "recipes": ("_recipes", "quantize", "quantization recipes"),
    "calib_data": ("_calib_data", "calib_data", "calibration photos"),
    "runtimes": ("_runtimes", "runtimes", "device profiles"),
}


def package_data(name: str) -> Path:
    """The folder of one kind of shipped data: the wheel's copy, else the source checkout's."""
    wheel, checkout, what = DATA_FOLDERS[name]
    places = (_PACKAGE / wheel, _PACKAGE.parent / checkout)
    for folder in places:
        if folder.is_dir():
            return folder
    raise RtmwEdgeError(f"the shipped {what} are missing (looked in {places[0]} and {places[1]}): "
                        "reinstall rtmw-edge")


def read_toml(path: str | Path, what: str) -> dict:
    """A TOML file's tables; a missing or malformed file is one line naming `what` it should have been."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RtmwEdgeError(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise RtmwEdgeError(f"{what} {path} is a folder, not a TOML file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RtmwEdgeError(f"{what} {path} is not valid TOML ({exc})") from exc
