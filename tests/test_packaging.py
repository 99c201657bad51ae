"""The wheel: built without a warning from our configuration, it holds every module, recipe, photo and kit file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# where each shipped folder of the repository lands inside the wheel
DATA = {"quantize": "rtmw_edge/_recipes", "calib_data": "rtmw_edge/_calib_data", "runtimes": "rtmw_edge/_runtimes"}
SOURCES = ["pyproject.toml", "README.md", "rtmw_edge", *DATA]


def _files(folder: Path) -> list[Path]:
    return [p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The wheel built from a copy of the sources, so that no build/ or egg-info lands in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-w", str(dist), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = dist.glob("rtmw_edge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return done, set(archive.namelist())


def test_building_the_wheel_prints_no_warning(built):
    done, _ = built
    output = done.stdout + done.stderr
    assert "warning" not in output.lower(), output


def test_the_wheel_holds_every_module(built):
    _, names = built
    modules = {f"rtmw_edge/{p.as_posix()}" for p in _files(ROOT / "rtmw_edge") if p.suffix in (".py", ".typed")}
    assert modules - names == set()


@pytest.mark.parametrize("folder", list(DATA))
def test_the_wheel_holds_every_shipped_data_file(built, folder):
    _, names = built
    shipped = {f"{DATA[folder]}/{p.as_posix()}" for p in _files(ROOT / folder)}
    assert shipped and shipped - names == set()
