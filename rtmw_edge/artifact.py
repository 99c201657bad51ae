"""An artifact is a folder holding one converted network and `metadata.json`, its sidecar.

The sidecar says everything a later step needs (model, input size, preprocessing, keypoint layout,
precision, backend, blob names, weights provenance, tool versions), so an artifact loads with no other
arguments and a file that does not match its sidecar is caught.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtmw_edge.backends import get_backend
from rtmw_edge.backends.base import Network
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.model.kinds import weights_mark

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
@dataclass
class ArtifactMeta:
    """Sidecar of one artifact. `files` maps each file name in the folder to its sha256."""

    kind: str  # "pose" or "detector"
    model: str
    backend: str
    precision: str
    main_file: str
    files: dict[str, str]
    input_name: str
    output_names: list[str]
    input_hw: list[int]
    weights: dict
    trained: bool
    preprocessing: dict = field(default_factory=dict)
    decoding: dict = field(default_factory=dict)
    keypoints: dict = field(default_factory=dict)
    verification: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)
    layer_names: dict = field(default_factory=dict)  # backend layer -> source ONNX node, where they differ
    tools: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def label(self) -> str:
        """Short name for tables: model, backend, precision and the seeded weights' mark ('untrained', 'stress')."""
        mark = "" if self.trained else weights_mark(self.weights.get("kind", "untrained"))
        return f"{self.model} {self.backend} {self.precision}{mark}"


@dataclass(frozen=True)
class Artifact:
    folder: Path
    meta: ArtifactMeta

    @property
    def main_path(self) -> Path:
        return self.folder / self.meta.main_file

    @property
    def runner_options(self) -> dict[str, object]:
        """What its runner must be told: the blobs it is known by and the precision it computes in."""
        meta = self.meta
        return {"input_name": meta.input_name, "output_names": list(meta.output_names), "precision": meta.precision}

    @property
    def network(self) -> Network:
        """The network file with the names a backend knows it by, as quantizers take it."""
        meta = self.meta
        return Network(self.main_path, meta.input_name, tuple(meta.output_names), dict(meta.layer_names))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_metadata(folder: Path, meta: ArtifactMeta) -> None:
    """Hash every file of the folder into the sidecar and write it."""
    meta.files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
                  if p.is_file() and p.name != METADATA_FILE}
    (folder / METADATA_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")


def load_artifact(path: str | Path, verify: bool = True) -> Artifact:
    """Read an artifact from its folder or from its main file; with `verify`, check file hashes."""
    path = Path(path)
    if not path.exists():
        raise RtmwEdgeError(f"{path} does not exist")
    folder = path if path.is_dir() else path.parent
    sidecar = folder / METADATA_FILE
    if not sidecar.is_file():
        where = "beside it" if path.is_file() else "in it"
        weights = f"--weights {path} " if path.suffix in (".pth", ".pt") else ""
        raise RtmwEdgeError(f"{path} is not an artifact made by rtmw-edge export (no {METADATA_FILE} {where}): "
                            f"export it first (`rtmw-edge export {weights}...`)")
    try:
        meta = ArtifactMeta(**json.loads(sidecar.read_text()))
    except (ValueError, TypeError) as exc:
        raise RtmwEdgeError(f"{sidecar} is not a valid rtmw-edge metadata file ({exc})") from exc
    get_backend(meta.backend)  # a sidecar naming no backend of this install fails here, in one line
    if path.is_file() and path.name not in (meta.main_file, METADATA_FILE):
        raise RtmwEdgeError(f"{path.name} is not the model file named in {sidecar} ({meta.main_file})")
    artifact = Artifact(folder, meta)
    if verify:
        _verify_files(artifact)
    return artifact


def _verify_files(artifact: Artifact) -> None:
    for name, expected in artifact.meta.files.items():
        file = artifact.folder / name
        if not file.is_file():
            raise RtmwEdgeError(f"{file} is missing (named in {artifact.folder / METADATA_FILE})")
        if sha256_file(file) != expected:
            raise RtmwEdgeError(f"{file} does not match its metadata (sha256 differs): the file was changed "
                                "after export; export it again")
