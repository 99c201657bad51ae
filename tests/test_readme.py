"""The README's Python examples run as written, with only the public API (`import rtmw_edge`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from oracle import MODELS_DIR, need

README = Path(__file__).resolve().parents[1] / "README.md"
CALIB_DATA = README.parent / "calib_data"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_examples_import_only_the_public_api():
    blocks = python_blocks()
    assert blocks, "the README has no Python example"
    imports = {line.split()[1] for block in blocks for line in block.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"cv2", "rtmw_edge", "numpy"}, imports
    assert not any("rtmw_edge." in line for block in blocks for line in block.splitlines()
                   if line.startswith(("import ", "from ")))


def test_the_readme_examples_run_as_written(tmp_path, monkeypatch):
    """Offline, so the official weights fall back to seeded ones; the detector is the trained one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RTMW_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RTMW_EDGE_MIRROR", "http://127.0.0.1:9/")  # discard port: nothing listens
    shutil.copy(need(MODELS_DIR / "rtmdet-nano.onnx"), tmp_path / "rtmdet-nano.onnx")
    shutil.copy(CALIB_DATA / "grace_hopper.jpg", tmp_path / "people.jpg")
    shutil.copytree(CALIB_DATA, tmp_path / "calib_data")
    namespace: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    assert "(untrained)" in namespace["predictor"].info
    assert namespace["keypoints"].shape == (21, 2) and namespace["scores"].shape == (21,)
