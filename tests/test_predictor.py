"""One Predictor over ONNX Runtime, OpenVINO and ncnn: the same keypoints on every backend, mmpose's keypoints with
mmpose's weights, the annotated people found end to end, and every bad input answered with a message, not a crash."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from oracle import MINI_DIR, MODELS_DIR, need, oracle_npz, oracle_state_dict
from tiny_artifact import constant_artifact

from rtmw_edge import cli, topdown
from rtmw_edge.artifact import load_artifact
from rtmw_edge.backends import BACKENDS
from rtmw_edge.backends.base import PixelRunner, Tolerance
from rtmw_edge.detector import box_iou
from rtmw_edge.errors import MissingExtraError, RtmwEdgeError
from rtmw_edge.evaluation import evaluate, load_ground_truth, load_results
from rtmw_edge.exporter import export_detector, export_model
from rtmw_edge.keypoints import NUM_KEYPOINTS
from rtmw_edge.predictor import Person, Predictor
from rtmw_edge.visualize import BOX_COLOR, PART_COLORS, draw_persons

FORMATS = ("onnx", "openvino", "ncnn")
GT_FILE = MINI_DIR / "example_wholebody_val.json"
DETECTOR = MODELS_DIR / "rtmdet-nano.onnx"
THREADS = 1  # ncnn's OpenMP spins badly when 2 threads share 2 busy cores (measured 2.3 s vs 0.08 s a person)
ONE_BIN = 1.001  # one SimCC bin, plus the float32 rounding of mapping bins back to image pixels

# Untrained weights, backends against ONNX Runtime: measured 100% of 3458 keypoints in the same bin on
# OpenVINO and ncnn, scores within 1.5e-5.
MIN_AGREEMENT = 0.99
AGREEMENT_SCORE_ERR = 1e-3

# mmpose's oracle through each float32 backend (oracle computed in float64). Measured on 3458 keypoints per case:
# ONNX Runtime 2 (noflip) / 1 (flip) keypoints beyond one bin, OpenVINO 0 / 2, every one an argmax tie whose gap
# to our maximum is <= 2.8e-4; scores within 5.5e-4 (ORT) and 1.4e-3 (OpenVINO, flip).
ORACLE_MODEL = "rtmw-m-256x192"
ORACLE_TIE_GAP = 1e-2
ORACLE_MAX_TIES = 0.005
ORACLE_SCORE_ERR = 1e-2
# export_model checks an artifact against PyTorch with limits set for untrained weights (1e-4); the oracle's seeded
# weights amplify float32 rounding to 1.6e-3 (ORT), 3.2e-3 (OpenVINO), 6.7e-2 (ncnn) on the probe, still with 100%
# argmax agreement counting ties. The top-down comparison with mmpose below is the real check of these artifacts.
ORACLE_EXPORT_TOLERANCE = Tolerance(max_rel=0.1, min_agreement=1.0)
MIN_PEOPLE_FOUND = 22  # of 26 (the detector's own test measures 23 on every backend)


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def untrained_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP32 rtmw-m artifact folders for every format, exported once per session."""
    out = tmp_path_factory.mktemp("untrained")
    return {fmt: export_model("rtmw-m", fmt, weights="untrained", out_dir=out, progress=False)[0].folder
            for fmt in FORMATS}


@pytest.fixture(scope="session")
def oracle_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.lib.npyio.NpzFile, dict[str, Path]]:
    """The oracle npz and artifacts of every format exported from the oracle's weights (a .pth made from them)."""
    npz = oracle_npz(ORACLE_MODEL)
    out = tmp_path_factory.mktemp("oracle")
    weights = out / "oracle.pth"
    torch.save({key: torch.from_numpy(np.asarray(value)) for key, value in oracle_state_dict(npz).items()}, weights)
    with pytest.MonkeyPatch.context() as patch:
        for backend in BACKENDS.values():
            for key in backend.tolerances:
                patch.setitem(backend.tolerances, key, ORACLE_EXPORT_TOLERANCE)
        folders = {fmt: export_model(ORACLE_MODEL, fmt, weights=str(weights), out_dir=out, progress=False)[0].folder
                   for fmt in FORMATS}
    return npz, folders


@pytest.fixture(scope="module")
def mini() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(file name, BGR image, GT person boxes x1,y1,x2,y2) for each coco-wholebody-mini photo."""
    annotations = json.loads(need(GT_FILE).read_text())
    out = []
    for image in annotations["images"]:
        boxes = np.array([a["bbox"] for a in annotations["annotations"] if a["image_id"] == image["id"]], float)
        boxes[:, 2:] += boxes[:, :2]
        out.append((image["file_name"], cv2.imread(str(MINI_DIR / image["file_name"])), boxes))
    return out


@pytest.fixture(scope="module")
def predictor(untrained_artifacts) -> Predictor:
    """No detector: each image is one person unless boxes are given."""
    return Predictor(untrained_artifacts["onnx"], threads=THREADS)


@pytest.fixture(scope="module")
def small_photo(mini) -> np.ndarray:
    """A 160x120 copy of a one-person photo: enough for the network, cheap to encode and decode."""
    return cv2.resize(mini[0][1], (160, 120), interpolation=cv2.INTER_AREA)


def _stack(persons: list[Person]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([p.keypoints for p in persons]), np.stack([p.scores for p in persons])


def _bin_px(boxes: np.ndarray, predictor: Predictor) -> np.ndarray:
    """[K,1,2] size in image pixels of one SimCC bin for each box (scale / input size / split ratio)."""
    _, scales = topdown.box_to_center_scale(boxes, predictor.input_hw)
    input_wh = np.array(predictor.input_hw[::-1], np.float32)
    return (scales / input_wh / predictor.split_ratio)[:, None, :]


# ------------------------------------------------------------------------------------ backends agree

@pytest.fixture(scope="module")
def untrained_predictions(untrained_artifacts, mini) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    predictions = {}
    for fmt, folder in untrained_artifacts.items():
        model = Predictor(folder, threads=THREADS)
        predictions[fmt] = [_stack(model.predict(image, boxes)) for _, image, boxes in mini]
    return predictions


@pytest.mark.parametrize("fmt", ["openvino", "ncnn"])
def test_backends_give_onnxruntimes_keypoints_on_the_mini_photos(untrained_predictions, predictor, mini, fmt):
    within, total = 0, 0
    for (_, _, boxes), (keypoints, scores), (want, want_scores) in zip(
            mini, untrained_predictions[fmt], untrained_predictions["onnx"], strict=True):
        off = (np.abs(keypoints - want) / _bin_px(boxes, predictor)).max(axis=-1)
        within += int((off <= ONE_BIN).sum())
        total += off.size
        np.testing.assert_array_less(np.abs(scores - want_scores), AGREEMENT_SCORE_ERR)
    assert total == 26 * NUM_KEYPOINTS
    assert within >= MIN_AGREEMENT * total, f"{fmt}: {within} of {total} keypoints within one bin"


# --------------------------------------------------------------------------------- mmpose's oracle

@pytest.mark.parametrize("fmt", FORMATS)
def test_pixels_normalised_by_the_runtime_give_the_logits_of_numpys_normalisation(untrained_artifacts, mini, fmt):
    """A runner with its own pre-processing (a `PixelRunner`) takes predict's crops as uint8 pixels: the logits
    must be those of the float batch topdown normalises, whichever path ran first."""
    model = Predictor(untrained_artifacts[fmt], threads=THREADS)
    if not isinstance(model.runner, PixelRunner):
        pytest.skip(f"{fmt}'s runner takes only normalised batches")
    _, image, boxes = mini[0]
    crops = topdown.crop(image, boxes, model.input_hw)
    from_pixels = model.runner.run_pixels(crops.pixels, topdown.MEAN_RGB, topdown.STD_RGB)
    from_floats = model.runner.run(crops.batch)  # a runner may compile it again: the pixel path can release it
    for got, want in zip(from_pixels, from_floats, strict=True):
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    with pytest.raises(RtmwEdgeError, match=r"expected uint8 crops \[N,256,192,3\]"):
        model.runner.run_pixels(crops.batch, topdown.MEAN_RGB, topdown.STD_RGB)


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_gives_the_keypoints_of_the_normalised_float_batch(untrained_artifacts, mini, fmt, flip):
    model = Predictor(untrained_artifacts[fmt], threads=THREADS, flip_test=flip)
    _, image, boxes = mini[1]
    keypoints, scores = _stack(model.predict(image, boxes))
    crops = topdown.crop(image, boxes, model.input_hw)
    want, want_scores = topdown.decode(*model.simcc(crops.batch)[:2], model.split_ratio)
    want = topdown.to_image(want, crops.centers, crops.scales, model.input_hw)
    assert np.mean((np.abs(keypoints - want) / _bin_px(boxes, model)).max(axis=-1) <= ONE_BIN) >= MIN_AGREEMENT
    np.testing.assert_allclose(scores, want_scores, atol=AGREEMENT_SCORE_ERR)


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_topdown_through_each_backend_matches_mmpose(oracle_artifacts, mini, fmt, flip):
    """mmpose's inference_topdown keypoints within one SimCC bin, except argmax ties; scores within 1e-2."""
    npz, folders = oracle_artifacts
    model = Predictor(folders[fmt], threads=THREADS, flip_test=flip)
    tag = "flip" if flip else "noflip"
    total = ties = 0
    for name, image, _ in mini:
        boxes = npz[f"topdown_boxes_{name}_{tag}"]
        keypoints, scores = _stack(model.predict(image, boxes))
        np.testing.assert_array_less(np.abs(scores - npz[f"topdown_scores_{name}_{tag}"]), ORACLE_SCORE_ERR)
        expected = npz[f"topdown_keypoints_{name}_{tag}"]
        far = np.argwhere((np.abs(keypoints - expected) / _bin_px(boxes, model) > ONE_BIN).any(axis=-1))
        if len(far):
            _assert_ties(model, image, boxes, expected, far)
        total += keypoints.shape[0] * keypoints.shape[1]
        ties += len(far)
    assert ties <= ORACLE_MAX_TIES * total


def _assert_ties(model: Predictor, image: np.ndarray, boxes: np.ndarray, expected: np.ndarray,
                 far: np.ndarray) -> None:
    """Where we picked another bin than mmpose, mmpose's bin must score within ORACLE_TIE_GAP of our maximum."""
    crops = topdown.crop(image, boxes, model.input_hw)
    logits = model.simcc(crops.batch)
    origin = crops.centers - crops.scales / 2
    bin_px = _bin_px(boxes, model)[:, 0]
    for n, k in far:
        theirs = np.rint((expected[n, k] - origin[n]) / bin_px[n]).astype(int)
        for axis, simcc in enumerate(logits):
            assert 0 <= theirs[axis] < simcc.shape[-1], (n, k, "mmpose's keypoint is outside the input")
            gap = simcc[n, k].max() - simcc[n, k, theirs[axis]]
            assert gap <= ORACLE_TIE_GAP, (n, k, axis, gap)


# ------------------------------------------------------------------------------- CLI, end to end

@pytest.fixture(scope="module")
def cli_run(untrained_artifacts, tmp_path_factory) -> tuple[int, str, Path]:
    """`rtmw-edge predict` on the mini folder (5 photos, README.md and the GT json) with the shared detector."""
    out = tmp_path_factory.mktemp("predict") / "out"
    model_file = load_artifact(untrained_artifacts["onnx"]).main_path  # the main file works as well as the folder
    argv = ["predict", str(need(MINI_DIR)), "--model", str(model_file), "--detector",
            str(need(DETECTOR)), "--out", str(out), "--threads", str(THREADS)]
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = cli.main(argv)
    return code, stdout.getvalue(), out


def test_cli_summary_counts_images_persons_skipped_files_and_says_untrained(cli_run):
    code, stdout, out = cli_run
    assert code == 0
    assert stdout.count("\n") == 1
    assert "5 images" in stdout and "2 skipped" in stdout and str(out) in stdout
    assert "UNTRAINED" in stdout


def test_predictions_json_is_read_by_our_evaluator(cli_run):
    _, _, out = cli_run
    metrics = evaluate(load_ground_truth(GT_FILE), load_results(out / "predictions.json"))
    assert set(metrics) == {"body", "foot", "face", "left_hand", "right_hand", "wholebody"}
    entries = json.loads((out / "predictions.json").read_text())
    assert {e["file_name"] for e in entries} == {p.name for p in MINI_DIR.glob("*.jpg")}
    assert all(e["image_id"] == int(Path(e["file_name"]).stem) for e in entries)


def test_predictions_json_scores_the_same_in_xtcocotools(cli_run):
    from test_evaluation import _xtcocotools_metrics

    _, _, out = cli_run
    entries = json.loads((out / "predictions.json").read_text())
    theirs = _xtcocotools_metrics(GT_FILE, entries)
    ours = evaluate(load_ground_truth(GT_FILE), load_results(entries))
    for part, stats in theirs.items():
        np.testing.assert_allclose([ours[part].ap, ours[part].ar], stats[[0, 5]], atol=1e-4)


def test_detector_finds_the_annotated_people(cli_run, mini):
    _, _, out = cli_run
    entries = json.loads((out / "predictions.json").read_text())
    found = 0
    for name, _, gt in mini:
        boxes = np.array([e["box"] for e in entries if e["file_name"] == name], np.float32).reshape(-1, 4)
        found += int((box_iou(gt, boxes).max(axis=1, initial=0) >= 0.5).sum())
    assert found >= MIN_PEOPLE_FOUND, f"{found} of 26 people found"


def test_cli_writes_one_overlay_of_the_input_size_per_photo(cli_run, mini):
    _, _, out = cli_run
    for name, image, _ in mini:
        overlay = cv2.imread(str(out / f"{Path(name).stem}_pose.jpg"))
        assert overlay is not None and overlay.shape == image.shape
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["predictions.json", *(f"{Path(name).stem}_pose.jpg" for name, _, _ in mini)])


# -------------------------------------------------------------------------------- predictor inputs

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_normalize_gives_mmposes_per_pixel_arithmetic_bit_for_bit(dtype):
    crops = np.random.default_rng(0).integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    crops[0, 0, 0] = (0, 128, 255)  # both ends of the range
    rgb = crops[..., ::-1].astype(dtype)
    expected = ((rgb - np.asarray(topdown.MEAN_RGB, dtype)) / np.asarray(topdown.STD_RGB, dtype)).transpose(0, 3, 1, 2)
    got = topdown.normalize(crops, dtype)
    assert got.dtype == dtype and got.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(got, expected)


def test_gray_and_bgra_images_give_the_keypoints_of_their_bgr_version(predictor, small_photo):
    gray = cv2.cvtColor(small_photo, cv2.COLOR_BGR2GRAY)
    for image, as_bgr in ((gray, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)),
                          (gray[..., None], cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)),
                          (cv2.cvtColor(small_photo, cv2.COLOR_BGR2BGRA), small_photo)):
        got, want = predictor.predict(image)[0], predictor.predict(as_bgr)[0]
        np.testing.assert_array_equal(got.keypoints, want.keypoints)


@pytest.mark.parametrize("shape", [(5, 5, 3), (4000, 6000, 3)], ids=["5x5", "6000x4000"])
def test_tiny_and_huge_images_give_one_whole_image_person_inside_its_crop(predictor, shape):
    image = np.full(shape, 90, np.uint8)
    (person,) = predictor.predict(image)
    np.testing.assert_array_equal(person.box, [0, 0, shape[1], shape[0]])
    centers, scales = topdown.box_to_center_scale(person.box, predictor.input_hw)
    margin = scales / np.array(predictor.input_hw[::-1]) + scales / 2  # a -1 location is one input pixel outside
    assert np.all(np.abs(person.keypoints - centers) <= margin + 1e-3)


def test_blank_images_of_any_size_have_no_person_with_a_detector(untrained_artifacts):
    model = Predictor(untrained_artifacts["onnx"], detector=need(DETECTOR), threads=THREADS)
    for shape in ((5, 5), (4000, 6000, 3), (480, 640, 4)):
        assert model.predict(np.full(shape, 114, np.uint8)) == []


def test_a_detector_artifact_finds_the_boxes_of_its_source_model(untrained_artifacts, mini, tmp_path):
    artifact, _ = export_detector(need(DETECTOR), "onnx", out_dir=tmp_path)
    image = next(image for name, image, _ in mini if name == "000000001000.jpg")  # 12 people
    boxes = {}
    for detector in (artifact.folder, DETECTOR):
        model = Predictor(untrained_artifacts["onnx"], detector=detector, threads=THREADS)
        boxes[detector] = np.stack([p.box for p in model.predict(image)])
    assert boxes[artifact.folder].shape == (12, 4)
    np.testing.assert_allclose(boxes[artifact.folder], boxes[DETECTOR], atol=1e-3)


def test_a_pose_artifact_given_as_the_detector_is_refused(untrained_artifacts):
    with pytest.raises(RtmwEdgeError, match="is a pose artifact, not a detector"):
        Predictor(untrained_artifacts["onnx"], detector=untrained_artifacts["openvino"])


def test_a_box_partly_outside_the_image_still_gives_keypoints(predictor, small_photo):
    (person,) = predictor.predict(small_photo, np.array([[-60, -40, 100, 90]]))
    assert np.isfinite(person.keypoints).all()
    assert person.box_score == 1.0


def test_unusable_boxes_are_dropped_with_one_warning_saying_why(predictor, small_photo, caplog):
    boxes = np.array([[np.nan, 0, 50, 50, 0.9], [10, 10, 10, 80, 0.9], [200, 0, 260, 90, 0.9],
                      [20, 10, 90, 110, 0.7]])
    with caplog.at_level(logging.WARNING):
        persons = predictor.predict(small_photo, boxes)
    assert [p.box_score for p in persons] == [pytest.approx(0.7)]
    (record,) = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert record.getMessage() == ("dropped 3 of 4 boxes (1 not finite, 1 zero or negative area, "
                                   "1 wholly outside the image)")
    assert predictor.predict(small_photo, boxes[:3]) == []
    assert predictor.predict(small_photo, np.zeros((0, 4))) == []


@pytest.mark.parametrize("boxes", [np.zeros((2, 3)), np.zeros(4), [[1, 2, 3]]], ids=["3 columns", "1-d", "list"])
def test_boxes_of_the_wrong_shape_are_refused(predictor, small_photo, boxes):
    with pytest.raises(RtmwEdgeError, match=r"boxes must be \[K,4\]"):
        predictor.predict(small_photo, boxes)


@pytest.mark.parametrize("image", [[[0, 1], [2, 3]], np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8),
                                   np.zeros((0, 8, 3), np.uint8), None],
                         ids=["list", "float32", "2 channels", "empty", "None"])
def test_what_is_not_a_uint8_image_is_refused_with_a_message(predictor, image):
    with pytest.raises(RtmwEdgeError, match="image"):
        predictor.predict(image)


def test_no_detector_is_warned_about_once_per_predictor(untrained_artifacts, small_photo, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            model = Predictor(untrained_artifacts["onnx"], threads=THREADS)
            model.predict(small_photo)
            model.predict(small_photo)
    assert sum("no person detector" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("flip", [False, True], ids=["noflip", "flip"])
def test_all_persons_of_an_image_run_as_one_batch(untrained_artifacts, small_photo, flip):
    model = Predictor(untrained_artifacts["onnx"], threads=THREADS, flip_test=flip)
    sizes = []
    run = model.runner.run
    model.runner.run = lambda batch: sizes.append(len(batch)) or run(batch)
    persons = model.predict(small_photo, np.array([[0, 0, 80, 120], [40, 0, 120, 120], [80, 0, 160, 120]]))
    assert len(persons) == 3
    assert sizes == [6 if flip else 3]


def test_person_parts_are_the_wholebody_slices(predictor, small_photo):
    (person,) = predictor.predict(small_photo)
    assert person.keypoints.shape == (133, 2) and person.scores.shape == (133,)
    assert person.keypoints.dtype == np.float32
    parts = [person.body, person.foot, person.face, person.left_hand, person.right_hand]
    assert [len(k) for k, _ in parts] == [17, 6, 68, 21, 21]
    np.testing.assert_array_equal(np.concatenate([k for k, _ in parts]), person.keypoints)
    np.testing.assert_array_equal(np.concatenate([s for _, s in parts]), person.scores)


def test_info_names_the_model_and_marks_it_untrained(predictor):
    assert predictor.info.startswith("rtmw-m-256x192 onnxruntime fp32 (untrained)")
    assert not predictor.trained


# ----------------------------------------------------------------------- broken or wrong artifacts

@pytest.mark.parametrize(("value", "flip"), [(np.nan, False), (np.inf, True), (0.0, False)],
                         ids=["nan", "inf-flip", "all-zero"])
def test_broken_model_outputs_raise_instead_of_keypoints_at_the_origin(tmp_path, small_photo, value, flip):
    model = Predictor(constant_artifact(tmp_path / "broken", value), flip_test=flip)
    with pytest.raises(RtmwEdgeError, match=r"non-finite/all-zero outputs for 2 of 2 persons: the artifact is broken"):
        model.predict(small_photo, np.array([[0, 0, 80, 120], [80, 0, 160, 120]]))


def test_a_working_constant_artifact_predicts(tmp_path, small_photo):
    """The same artifact with finite outputs runs, so the failures above are about the outputs alone."""
    (person,) = Predictor(constant_artifact(tmp_path / "flat", 1.0), flip_test=True).predict(small_photo)
    np.testing.assert_array_equal(person.scores, np.ones(NUM_KEYPOINTS, np.float32))


def test_a_model_file_changed_after_export_is_refused(tmp_path):
    folder = constant_artifact(tmp_path / "changed", 1.0)
    with (folder / "constant.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RtmwEdgeError, match="does not match its metadata"):
        Predictor(folder)


def test_an_artifact_with_other_preprocessing_is_refused(tmp_path):
    folder = constant_artifact(tmp_path / "other", 1.0)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(RtmwEdgeError, match="preprocessing"):
        Predictor(folder)


def test_a_missing_backend_package_names_the_pip_extra(untrained_artifacts, monkeypatch):
    for module in [m for m in sys.modules if m.startswith("rtmw_edge.backends.ncnn.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "ncnn", None)  # what `import ncnn` meets when ncnn is not installed
    with pytest.raises(MissingExtraError, match=r"rtmw-edge\[ncnn\]"):
        Predictor(untrained_artifacts["ncnn"])


# ------------------------------------------------------------------------------------- overlays

def test_overlay_colours_keypoints_by_part_and_hides_unsure_ones():
    image = np.zeros((200, 300, 3), np.uint8)
    keypoints = np.full((NUM_KEYPOINTS, 2), 150.0, np.float32)
    keypoints[0] = (50, 60)  # nose (body), sure
    keypoints[91] = (250, 60)  # left hand root, sure
    keypoints[23] = (50, 150)  # face, unsure
    scores = np.zeros(NUM_KEYPOINTS, np.float32)
    scores[[0, 91]] = 0.9
    scores[23] = 0.2
    person = Person(keypoints, scores, np.array([20, 20, 280, 180], np.float32), 0.9)
    drawn = draw_persons(image, [person], kpt_threshold=0.3)
    assert drawn.shape == image.shape and not image.any()
    assert tuple(drawn[60, 50]) == PART_COLORS["body"]
    assert tuple(drawn[60, 250]) == PART_COLORS["left_hand"]
    assert not drawn[150, 50].any() and not drawn[150, 150].any()
    assert np.array_equal(drawn[20, 150] > 128, np.array(BOX_COLOR) > 128)  # anti-aliased edge: same hue
    assert np.array_equal(draw_persons(image, [person], kpt_threshold=0.95)[60, 50], [0, 0, 0])


def test_overlay_lines_grow_with_the_image():
    small, large = np.zeros((100, 100, 3), np.uint8), np.zeros((3000, 3000, 3), np.uint8)
    person = Person(np.zeros((NUM_KEYPOINTS, 2), np.float32), np.zeros(NUM_KEYPOINTS, np.float32),
                    np.array([10, 10, 90, 90], np.float32), 1.0)
    scaled = Person(person.keypoints, person.scores, person.box * 30, 1.0)
    # pixels the box's top and bottom edges cover in the middle column: measured 6 (100 px) and 18 (3000 px)
    thin = (draw_persons(small, [person])[:, 50] != 0).any(axis=1).sum()
    thick = (draw_persons(large, [scaled])[:, 1500] != 0).any(axis=1).sum()
    assert thick >= 2.5 * thin
