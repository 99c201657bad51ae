"""The proof for 3D: our RTMW3D (RTMW's network plus cls_z) reproduces mmpose's own rtmw3d-l outputs, and our
decoding lifts them to mmpose's camera-space keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from oracle import MINI_DIR, need, oracle_npz, oracle_state_dict

from rtmw_edge import topdown
from rtmw_edge.model import build_model, get_spec
from rtmw_edge.model.facts import model_facts

NAME = "rtmw3d-l-384x288"
IMAGES = ["000000000785.jpg", "000000001000.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"]
TIE = 1e-3  # logits this close to the maximum are argmax ties on the seeded weights' nearly flat outputs


@pytest.fixture(scope="module")
def oracle_model():
    npz = oracle_npz(NAME)
    model = build_model(get_spec(NAME))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in oracle_state_dict(npz).items()},
                          strict=True)
    return model, npz


def _rel(got: torch.Tensor, ref: np.ndarray) -> float:
    """Largest error relative to the reference's largest magnitude."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(got.double().numpy() - ref).max() / np.abs(ref).max())


def test_the_3d_state_dict_is_mmpose_s_2d_one_plus_cls_z(oracle_model):
    model, npz = oracle_model
    ours = {k: ",".join(map(str, v.shape)) for k, v in model.state_dict().items()}
    assert ours == dict(zip(npz["state_dict_keys"].tolist(), npz["state_dict_shapes"].tolist(), strict=True))
    two_d = build_model(get_spec("rtmw-l-384x288")).state_dict()
    assert sorted(ours.keys() - two_d.keys()) == ["head.cls_z.weight"] and ours["head.cls_z.weight"] == "576,256"


@torch.no_grad()
def test_each_3d_module_matches_mmpose_in_float32(oracle_model):
    """Backbone, neck and head (x, y and z), each fed the oracle's own input for it, agree to 1e-4 relative."""
    model, npz = oracle_model
    backbone = model.backbone(torch.from_numpy(npz["input"]))
    assert max(_rel(backbone[i], npz[f"backbone_{i}"]) for i in range(3)) < 1e-4
    neck = model.neck(tuple(torch.from_numpy(np.asarray(npz[f"backbone_{i}"], np.float32)) for i in range(3)))
    assert max(_rel(neck[i], npz[f"neck_{i}"]) for i in range(2)) < 1e-4
    outputs = model.head(tuple(torch.from_numpy(np.asarray(npz[f"neck_{i}"], np.float32)) for i in range(2)))
    assert len(outputs) == 3
    for got, name in zip(outputs, ("simcc_x", "simcc_y", "simcc_z"), strict=True):
        assert _rel(got, npz[name]) < 1e-4, name


@pytest.fixture(scope="module")
def float64_model(oracle_model):
    """The oracle model in float64 for the tests below, back in float32 after them."""
    model, npz = oracle_model
    model.double()
    yield model, npz
    model.float()


@torch.no_grad()
def test_whole_3d_network_matches_mmpose_in_float64_and_decodes_as_its_codec(float64_model):
    model, npz = float64_model
    simcc = [t.numpy() for t in model(torch.from_numpy(npz["input"]).double())]
    for got, name in zip(simcc, ("simcc_x", "simcc_y", "simcc_z"), strict=True):
        assert _rel(torch.from_numpy(got), npz[name]) < 1e-6, name
    # the codec's decode of mmpose's own logits: crop pixels, z bins and root-relative metres
    spec = get_spec(NAME)
    ref = [np.asarray(npz[n]) for n in ("simcc_x", "simcc_y", "simcc_z")]
    keypoints, scores = topdown.decode(ref[0], ref[1], spec.split_ratio)
    z = topdown.decode_z(ref[2], scores, spec.split_ratio)
    np.testing.assert_array_equal(np.dstack([keypoints, z]), npz["decode_keypoints_simcc"])
    np.testing.assert_allclose(scores, npz["decode_scores"], rtol=1e-6)
    depth = topdown.depth_metres(z, spec.depth.input_depth, spec.depth.z_range)
    np.testing.assert_allclose(depth, npz["decode_keypoints"][..., 2], atol=1e-6)


@pytest.fixture(scope="module")
def topdown_runs(float64_model):
    """Per image: our crops, float64 logits, decoding and mmpose's answers (one pass over the five images)."""
    model, npz = float64_model
    spec = get_spec(NAME)
    runs = []
    for image_name in IMAGES:
        image = cv2.imread(str(need(MINI_DIR / image_name)))
        tag = f"_{image_name}_noflip"
        crops = topdown.crop(image, npz["topdown_boxes" + tag], spec.input_hw, dtype=np.float64)
        with torch.no_grad():
            simcc_x, simcc_y, simcc_z = (t.numpy() for t in model(torch.from_numpy(crops.batch)))
        keypoints, scores = topdown.decode(simcc_x, simcc_y, spec.split_ratio)
        z = topdown.decode_z(simcc_z, scores, spec.split_ratio)
        runs.append({"image": image, "crops": crops, "simcc": (simcc_x, simcc_y, simcc_z), "crop_xy": keypoints,
                     "z": z, "scores": scores, "xy": topdown.to_image(keypoints, crops.centers, crops.scales,
                                                                       spec.input_hw),
                     "theirs": {k: npz[k + tag] for k in ("topdown_keypoints", "topdown_transformed_keypoints",
                                                           "topdown_keypoints_simcc", "topdown_scores",
                                                           "topdown_root_z", "topdown_ori_shape")}})
    return runs


def _far_from_theirs(ours: np.ndarray, theirs: np.ndarray, logits: np.ndarray, bin_size: float) -> int:
    """How many predictions lie beyond one bin of mmpose's; each must be an argmax tie (else the test fails)."""
    far = np.argwhere(np.abs(ours - theirs) > bin_size * 1.001)
    for n, k in far:
        theirs_bin = round(float(theirs[n, k]) / bin_size)
        assert logits[n, k].max() - logits[n, k, theirs_bin] < TIE, (n, k)
    return len(far)


def test_topdown_3d_keypoints_match_mmpose_within_one_bin(topdown_runs):
    """2D in crop pixels and z, through our preprocessing and decoding, within one SimCC bin up to argmax ties;
    scores within 1e-3 (all but 1%, as for 2D: ties in mmpose's warp rounding)."""
    spec = get_spec(NAME)
    bin_size = 1 / spec.split_ratio
    total = ties = scores_off = 0
    for run in topdown_runs:
        theirs = run["theirs"]["topdown_keypoints_simcc"]
        for axis in range(3):
            ours = run["z"] if axis == 2 else run["crop_xy"][..., axis]
            ties += _far_from_theirs(ours, theirs[..., axis], run["simcc"][axis], bin_size)
        score_err = np.abs(run["scores"] - run["theirs"]["topdown_scores"])
        assert score_err.max() < 3e-3
        scores_off += int((score_err > 1e-3).sum())
        total += 3 * run["z"].size
    assert ties <= 0.005 * total
    assert scores_off <= 0.01 * total / 3


def test_camera_space_keypoints_equal_mmpose_s_given_its_principal_point(topdown_runs):
    """mmpose takes (h/2, w/2) as (cx, cy); given that point, our lift reproduces its keypoints exactly, and our
    image pixels are its transformed keypoints wherever our bins are its bins."""
    depth = get_spec(NAME).depth
    for run in topdown_runs:
        theirs = run["theirs"]
        h, w = theirs["topdown_ori_shape"]
        assert np.all(theirs["topdown_root_z"] == depth.root_z)
        same = (np.abs(np.dstack([run["crop_xy"], run["z"]]) - theirs["topdown_keypoints_simcc"]) == 0).all(-1)
        assert same.mean() > 0.99
        np.testing.assert_allclose(run["xy"][same], theirs["topdown_transformed_keypoints"][same], atol=1e-3)
        metres = topdown.depth_metres(run["z"], depth.input_depth, depth.z_range)
        lifted = topdown.camera_space(run["xy"], metres, depth.root_z, (*depth.focal, h / 2, w / 2))
        np.testing.assert_allclose(lifted[same], theirs["topdown_keypoints"][same], atol=1e-5)
        # the lift alone, on mmpose's own decoded keypoints: equal to float rounding
        simcc = theirs["topdown_keypoints_simcc"]
        own = topdown.camera_space(theirs["topdown_transformed_keypoints"],
                                   topdown.depth_metres(simcc[..., 2], depth.input_depth, depth.z_range),
                                   depth.root_z, (*depth.focal, h / 2, w / 2))
        np.testing.assert_allclose(own, theirs["topdown_keypoints"], atol=1e-6)


def test_3d_model_facts_match_published_params_gflops_ap_and_mpjpe():
    facts = {f.name: f for f in model_facts(tuple(get_spec(n) for n in ("rtmw3d-l", "rtmw3d-x")))}
    got = {n: (round(f.params_m, 2), round(f.gflops, 2), f.published_ap, f.published_mpjpe_m)
           for n, f in facts.items()}
    assert got == {"rtmw3d-l-384x288": (57.50, 17.71, 67.8, 0.056), "rtmw3d-x-384x288": (92.34, 29.33, 68.0, 0.057)}
    assert get_spec("rtmw3d-l").url == ("https://download.openmmlab.com/mmpose/v1/wholebody_3d_keypoint/rtmw3d/"
                                        "rtmw3d-l_8xb64_cocktail14-384x288-794dbc78_20240626.pth")
    assert (get_spec("rtmw3d-l").sha256_prefix, get_spec("rtmw3d-x").sha256_prefix) == ("794dbc78", "b0a0eab7")


def test_a_2d_checkpoint_does_not_load_into_the_3d_model_naming_cls_z(oracle_model):
    from rtmw_edge.errors import RtmwEdgeError
    from rtmw_edge.model.weights import apply_state_dict

    model, _ = oracle_model
    two_d = {k: v for k, v in model.state_dict().items() if k != "head.cls_z.weight"}
    with pytest.raises(RtmwEdgeError, match=r"does not fit rtmw3d-l-384x288: missing key 'head.cls_z.weight'$"):
        apply_state_dict(model, two_d, "rtmw-l.pth")
