"""`predict` over a folder holds what one image needs, not what the whole folder gave: its peak memory grows
by no more than the file names between N and 4N images. Each run is a fresh process (peak RSS only goes up),
with 8x8 images and a constant model, so thousands of images take seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_artifact import constant_artifact

TESTS = Path(__file__).resolve().parent
SMALL, LARGE = 1000, 4000
# The 3000 images more may cost their names, paths and ids (about 1 KB each); their results (about 24 KB each
# as Python objects: 133 keypoints of floats) must not stay.
GROWTH_BOUND_MB = 8.0

RUN = """
import json, resource, sys
from rtmw_edge.media.predict import predict_inputs
from rtmw_edge.predictor import Predictor
predictor = Predictor(sys.argv[1], threads=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = predict_inputs(predictor, [sys.argv[2]], sys.argv[3], progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"images": summary.images, "growth_kb": after - before}))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return constant_artifact(tmp_path_factory.mktemp("model") / "constant", 1.0, peak=True)


def _folder(path: Path, count: int) -> Path:
    path.mkdir()
    png = cv2.imencode(".png", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
    for index in range(count):
        (path / f"{index:07d}.png").write_bytes(png)
    return path


def _peak_growth_mb(model: Path, images: Path, out: Path) -> float:
    done = subprocess.run([sys.executable, "-c", RUN, str(model), str(images), str(out)], capture_output=True,
                          text=True, check=True, cwd=TESTS)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["images"] == len(list(images.iterdir()))
    return report["growth_kb"] / 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_predict_peak_memory_does_not_grow_with_the_number_of_images(model, tmp_path):
    small = _peak_growth_mb(model, _folder(tmp_path / "small", SMALL), tmp_path / "out-small")
    large = _peak_growth_mb(model, _folder(tmp_path / "large", LARGE), tmp_path / "out-large")
    assert large - small < GROWTH_BOUND_MB, f"{SMALL} images: +{small:.1f} MB, {LARGE}: +{large:.1f} MB"
    results = json.loads((tmp_path / "out-large" / "predictions.json").read_text())
    assert len(results) == LARGE and {r["image_id"] for r in results} == set(range(LARGE))
