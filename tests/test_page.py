"""The pages people look at, as a browser shows them: `report.html` from `rtmw-edge bench` and a predict overlay,
rendered by a real headless Chromium (Debian's `chromium`) and checked on its screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from oracle import MINI_DIR, need
from tiny_artifact import constant_artifact

from rtmw_edge.artifact import load_artifact, write_metadata
from rtmw_edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "calib_data" / "astronaut.jpg"
CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)
WINDOW = (1280, 1600)  # width, height
TABLE_HEADER_BGR = (240, 240, 240)  # report.html's th background (#f0f0f0)
TABLE_BORDER_BGR = (204, 204, 204)  # its cell borders (#ccc)
ONNXRUNTIME_BGR = (180, 119, 31)  # the plot's colour of the first backend (#1f77b4)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install -y chromium")


def screenshot(url: str, folder: Path) -> np.ndarray:
    """What a headless Chromium window of WINDOW pixels shows at `url`, as a BGR image."""
    shot = folder / "shot.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={folder / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                           f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    return image


def rows_of(image: np.ndarray, bgr: tuple[int, int, int], share: float = 0.5) -> np.ndarray:
    """The rows of `image` where more than `share` of the pixels are exactly `bgr`."""
    return np.flatnonzero((image == bgr).all(axis=2).sum(axis=1) > share * image.shape[1])


@pytest.fixture(scope="module")
def bench_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of a bench over two tiny artifacts (FP32 and INT8), with AP on the mini set so the plot has
    points."""
    gt = need(MINI_DIR / "example_wholebody_val.json")
    folder = tmp_path_factory.mktemp("page")
    int8 = constant_artifact(folder / "int8", 1.0)
    fp32 = constant_artifact(folder / "fp32", 2.0)
    artifact = load_artifact(fp32)
    artifact.meta.precision = "fp32"
    write_metadata(fp32, artifact.meta)
    assert main(["bench", str(int8), str(fp32), "--runs", "3", "--batch", "2", "--eval", str(gt),
                 "--out", str(folder / "bench")]) == 0
    return folder / "bench" / "report.html"


def test_the_bench_report_shows_its_table_above_the_plot_in_chromium(bench_page: Path, tmp_path: Path) -> None:
    image = screenshot(bench_page.as_uri(), tmp_path)
    assert float(image.std()) > 20, "the page rendered blank"
    header, borders = rows_of(image, TABLE_HEADER_BGR), rows_of(image, TABLE_BORDER_BGR)
    assert len(header) >= 15, "no table header band across the page"
    assert len(borders) >= 4, "no table rows (their borders) across the page"  # top, under the header, 2 rows
    marks = np.argwhere(np.abs(image.astype(int) - ONNXRUNTIME_BGR).max(axis=2) < 12)
    assert len(marks) > 50, "no plot points in the backend's colour"
    assert marks[:, 0].min() > borders.max(), "the plot should come below the table"


def test_a_predict_overlay_shows_in_chromium_as_it_was_written(tmp_path: Path) -> None:
    model = constant_artifact(tmp_path / "model", 1.0, peak=True)  # every keypoint on the photo's centre
    out = tmp_path / "out"
    assert main(["predict", str(PHOTO), "--model", str(model), "--detector", "none", "--out", str(out)]) == 0
    overlay, photo = cv2.imread(str(out / "astronaut_pose.jpg")), cv2.imread(str(PHOTO))
    drawn = np.abs(overlay.astype(int) - photo).max(axis=2) > 60
    assert drawn.sum() > 50, "the overlay draws nothing on the photo"
    image = screenshot((out / "astronaut_pose.jpg").as_uri(), tmp_path)
    assert float(image.std()) > 20
    _, match, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(image, overlay, cv2.TM_CCOEFF_NORMED))
    assert match > 0.95, f"the overlay is not on the screen as written (best match {match:.2f})"
    shown = image[y:y + overlay.shape[0], x:x + overlay.shape[1]]
    assert np.abs(shown.astype(int) - overlay)[drawn].mean() < 20, "the drawing is not what the screen shows"
