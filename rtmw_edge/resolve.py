"""Names -> cached artifacts: `--model rtmw-m`, `--detector rtmdet-m|auto|none` and `Wholebody("rtmw-m")` all end
in an artifact folder under `<cache>/artifacts/`, made once on first use and reused, offline too, after that.

A pose model is exported from its official checkpoint where torch is installed (as `rtmw-edge export` does),
else made from OpenMMLab's own ONNX (the SDK zip rtmlib uses) converted for the backend, so an edge device needs
no torch; INT8 is quantized from that FP32 artifact with the backend's default recipe. A detector is always made
from its official ONNX zip. Every zip is fetched, checked and recorded by `download.fetch` and cached as it came.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rtmw_edge.artifact import load_artifact
from rtmw_edge.backends import get_backend
from rtmw_edge.cache import cache_dir
from rtmw_edge.download import DownloadError, fetch, one_line
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.exporter import OUTPUT_NAMES, artifact_dir, export_detector, export_model, export_official
from rtmw_edge.model.detectors import DETECTORS, DetectorSpec, find_detector
from rtmw_edge.model.detectors import OUTPUT_NAMES as DETECTOR_OUTPUTS
from rtmw_edge.model.registry import MODELS, ModelSpec, find_spec
from rtmw_edge.profiles import Profile, default_profile_name, load_profile
from rtmw_edge.sdk_zip import ExpectedOnnx, extract_onnx, sdk_zip_check

ARTIFACTS = "artifacts"
NO_DETECTOR = "none"
AUTO = "auto"


def artifacts_dir() -> Path:
    return cache_dir() / ARTIFACTS


def machine_profile(profile: str | Path | Profile | None = None) -> Profile:
    """The profile named (a shipped name or a profile.toml), else this machine's (`default_profile_name`)."""
    return profile if isinstance(profile, Profile) else load_profile(profile or default_profile_name())


def pose_artifact(model: str | Path, backend: str | None = None, precision: str = "fp32",
                  profile: Profile | None = None, progress: bool = True) -> Path:
    """`model` itself when it is an artifact (folder or file), else the cached artifact of that registered name
    for `backend` (default: the profile's first installed one) in `precision`, made when missing."""
    path = Path(model)
    if path.exists():
        return path
    spec = find_spec(str(model))
    if spec is None:
        known = ", ".join(sorted({s.name for s in MODELS} | {s.alias for s in MODELS if s.alias}))
        raise RtmwEdgeError(f"{model} is neither a pose artifact (no such file or folder) nor a registered model "
                            f"(known: {known})")
    backend = get_backend(backend or machine_profile(profile).installed_backend()).name
    folder = artifact_dir(artifacts_dir(), spec.name, backend, precision)
    if _cached(folder):
        return folder
    if precision == "int8":
        return _quantized(spec, backend, folder, progress)
    if importlib.util.find_spec("torch") is not None and _checkpoint(spec, progress):
        _notice(f"exporting {spec.name} for {backend} {precision} from its official checkpoint, once: cached in "
                f"{folder}")
        export_model(spec.name, backend, precision, out_dir=artifacts_dir(), progress=progress)
        return folder
    if spec.onnx_sdk_url is None:
        raise RtmwEdgeError(f"{spec.name} has no official ONNX (OpenMMLab publishes none): install torch "
                            "(pip install 'rtmw-edge[export]') to export it from its checkpoint")
    _notice(f"making {spec.name} for {backend} {precision} from OpenMMLab's ONNX, once: cached in {folder}")
    expected = ExpectedOnnx((3, *spec.input_hw), OUTPUT_NAMES)
    with _official_onnx(spec.onnx_sdk_url, spec.onnx_sdk, expected, progress) as onnx_path:
        export_official(onnx_path, spec.name, backend, precision, out_dir=artifacts_dir(), source=spec.onnx_sdk_url)
    return folder


def _checkpoint(spec: ModelSpec, progress: bool) -> bool:
    """Whether the official checkpoint is cached or could be downloaded; without it, a model that has an official
    ONNX is made from that instead (a mirror may hold only the ONNX zips), one without says how to go on."""
    from rtmw_edge.model.weights import fetch_checkpoint

    try:
        fetch_checkpoint(spec, progress=progress)
    except DownloadError as exc:
        if spec.onnx_sdk_url is None:
            raise RtmwEdgeError(f"cannot make {spec.name}: its official checkpoint cannot be downloaded "
                                f"({one_line(exc)}); export it from a local checkpoint (rtmw-edge export --weights "
                                "PATH) and pass that artifact") from exc
        _notice(f"the official checkpoint of {spec.name} cannot be downloaded ({one_line(exc)}): using OpenMMLab's "
                "ONNX instead")
        return False
    return True


def detector_artifact(choice: str | Path | None, backend: str, profile: Profile | None = None,
                      progress: bool = True) -> Path | None:
    """None for 'none'; for 'auto' the device profile's detector; a registered detector's cached artifact for
    `backend` (made when missing); else `choice` itself, a detector artifact or model file."""
    if choice is None or str(choice) == NO_DETECTOR:
        return None
    if str(choice) == AUTO:
        profile = machine_profile(profile)
        try:
            return _registered_detector(find_detector(profile.detector), backend, progress)
        except DownloadError as exc:
            raise RtmwEdgeError(
                f"no person detector: {profile.detector} (the {profile.name} profile's) is not cached and cannot be "
                f"downloaded ({one_line(exc)}); pass a detector ONNX or artifact (--detector PATH) or "
                f"--detector {NO_DETECTOR} (each image is one person)") from exc
    path = Path(choice)
    spec = find_detector(str(choice))
    if spec is not None and not path.exists():
        return _registered_detector(spec, backend, progress)
    if not path.exists():
        raise RtmwEdgeError(f"detector {choice} is neither a file or folder nor a registered detector (known: "
                            f"{', '.join(d.name for d in DETECTORS)}, {AUTO}, {NO_DETECTOR})")
    return path


def _registered_detector(spec: DetectorSpec, backend: str, progress: bool) -> Path:
    backend = get_backend(backend).name
    folder = artifact_dir(artifacts_dir(), spec.name, backend, "fp32")
    if _cached(folder):
        return folder
    _notice(f"making the {spec.name} person detector for {backend} from OpenMMLab's ONNX, once: cached in {folder}")
    expected = ExpectedOnnx((3, *spec.input_hw), DETECTOR_OUTPUTS)
    with _official_onnx(spec.url, spec.zip_name, expected, progress) as onnx_path:
        export_detector(onnx_path, backend, "fp32", out_dir=artifacts_dir(), name=spec.name,
                        preprocessing=spec.preprocessing, source=spec.url)
    return folder


def _cached(folder: Path) -> bool:
    """Whether the artifact was made before; one whose files changed since is an error, never silently used."""
    if not folder.exists():
        return False
    load_artifact(folder)
    return True


@contextlib.contextmanager
def _official_onnx(url: str, zip_name: str, expected: ExpectedOnnx, progress: bool) -> Iterator[Path]:
    """The ONNX of an SDK zip, from the cache (verified against its record) or downloaded, checked, cached."""
    zip_path = fetch(url, cache_dir() / zip_name, None, progress=progress, check=sdk_zip_check(expected))
    with tempfile.TemporaryDirectory() as scratch:
        yield extract_onnx(zip_path, Path(scratch))


def _quantized(spec: ModelSpec, backend: str, folder: Path, progress: bool) -> Path:
    """INT8 of the cached FP32 artifact with the backend's default recipe, moved into the cache if its gate held."""
    from rtmw_edge.quantization import quantize

    fp32 = pose_artifact(spec.name, backend, "fp32", progress=progress)
    _notice(f"quantizing {spec.name} for {backend} to INT8 with the default recipe on first use (calibrated on the "
            f"shipped photos): cached in {folder}")
    artifacts_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=artifacts_dir()) as scratch:
        result = quantize(fp32, backend, out=scratch, progress=progress)
        if not result.passed:
            raise RtmwEdgeError(f"INT8 {spec.name} for {backend} failed the default recipe's accuracy gate, so nothing "
                                f"was cached: use --precision fp32, or `rtmw-edge quantize --backend {backend} "
                                f"--model {fp32}` to see the report and tune a recipe")
        try:
            os.rename(result.int8.folder, folder)
        except OSError as exc:
            raise RtmwEdgeError(f"{folder} appeared while this run was making it (another run?): use it") from exc
    return folder


def _notice(text: str) -> None:
    """One line on stderr when something is made on first use (minutes, maybe a download), so no wait is silent."""
    print(f"rtmw-edge: {text}", file=sys.stderr)
