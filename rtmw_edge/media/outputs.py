"""What a predict run leaves: its files (all of them, or none), its per-person records, its one-line summary.

Every output is written into a hidden staging folder and moved into place only when the whole run succeeds, so a
run that fails on its tenth image or its second video leaves nothing behind, not even the --out folder it would
have made. Results are written as they come (predictions.json element by element), so memory does not grow with
the number of images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.evaluation import to_result_entry
from rtmw_edge.fileio import check_writable_dir, staged_files
from rtmw_edge.predictor import Person


@dataclass
class Summary:
    """What one run did, for the one-line report."""

    out_dir: Path
    model: str
    trained: bool
    images: int = 0
    frames: int = 0
    persons: int = 0
    skipped: list[str] = field(default_factory=list)  # why each skipped file was skipped, said once the run is done
    stopped: str | None = None  # what ended a video or camera early (Ctrl-C), its outputs kept
    cut_short: bool = False  # a stop left a video file, or inputs after it, undone

    def line(self) -> str:
        done = [f"{self.images} images"] if self.images or not self.frames else []
        done += [f"{self.frames} frames"] if self.frames else []
        stopped = f" ({self.stopped}; the outputs hold the frames done)" if self.stopped else ""
        untrained = "; the model is UNTRAINED: its keypoints are meaningless" if not self.trained else ""
        return (f"{', '.join(done)}, {self.persons} persons, {len(self.skipped)} skipped{stopped} -> {self.out_dir} "
                f"[{self.model}]{untrained}")


class Outputs(contextlib.ExitStack):
    """The run's output files: `new_file` gives a path in a staging folder; leaving the block moves them all into
    their folders. Nothing is kept per file, so a run over millions of images holds no more than over one."""

    def __init__(self, planned: Sequence[Path], overwrite: bool) -> None:
        super().__init__()
        _refuse_existing(planned, overwrite)
        self.overwrite = overwrite
        self._staging: dict[Path, Path] = {}  # output folder -> its staging folder

    def new_file(self, path: Path) -> Path:
        """Where to write `path` now (with its name, so a VideoWriter picks the container from its suffix)."""
        if path.parent not in self._staging:
            self._staging[path.parent] = self.enter_context(staged_files(path.parent, overwrite=self.overwrite))
        return self._staging[path.parent] / path.name

    def new_json_array(self, path: Path) -> JsonArray:
        """A JSON array written element by element: a run holds one image's records, not the whole dataset's."""
        array = JsonArray(self.enter_context(self.new_file(path).open("w", encoding="utf-8")))
        self.callback(array.file.write, "]")  # before the file closes and is moved (a failed run drops it)
        return array


class JsonArray:
    """Elements (each already JSON text) appended to an open file; the same bytes as json.dumps of the list."""

    def __init__(self, file) -> None:
        self.file = file
        self.count = 0
        file.write("[")

    def extend(self, encoded: Iterable[str]) -> None:
        for text in encoded:
            self.file.write(f", {text}" if self.count else text)
            self.count += 1


def person_record(image_id: int, person: Person) -> dict:
    """A COCO-WholeBody result entry, plus the person's box so the output says where each person was found (and
    a 3D model's fields, `fields_3d`)."""
    entry = to_result_entry(image_id, person.keypoints, person.scores, person.score)
    return {**entry, "box": person.box.tolist(), "box_score": person.box_score, **fields_3d(person)}


def fields_3d(person: Person) -> dict:
    """A 3D model's additions to a person's record: `keypoints_3d` [133][3] camera-space metres and `depth` [133]
    root-relative metres, to the millimetre; nothing for a 2D model."""
    if person.keypoints_3d is None or person.depth is None:
        return {}
    return {"keypoints_3d": [[round(float(v), 4) for v in point] for point in person.keypoints_3d],
            "depth": [round(float(v), 4) for v in person.depth]}


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Fail before any work when an output exists or cannot be written, instead of after minutes of inference."""
    for folder in sorted({p.parent for p in paths}):
        check_writable_dir(folder)
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise RtmwEdgeError(f"{existing[0]} already exists{more}: use --overwrite to replace")
