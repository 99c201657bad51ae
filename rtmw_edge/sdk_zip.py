"""OpenMMLab's ONNX SDK zips (mmdeploy's layout: `end2end.onnx` beside `deploy.json`, `pipeline.json`,
`detail.json`, in one folder that may be nested): checked before they are cached, and only their ONNX taken out.

Nothing of a zip is ever extracted but that one file, to a path we choose; a zip naming a member that would land
outside its folder (`../x`, `/x`) is refused as a whole, since no honest SDK zip holds one.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rtmw_edge.errors import MissingExtraError, RtmwEdgeError
from rtmw_edge.onnx_io import onnx_io

ONNX_MEMBER = "end2end.onnx"


@dataclass(frozen=True)
class ExpectedOnnx:
    """What the registry says the zip's ONNX must be: its (C, H, W) input and the outputs it must have."""

    input_chw: tuple[int, int, int]
    outputs: tuple[str, ...]


def sdk_zip_check(expected: ExpectedOnnx) -> Callable[[Path], None]:
    """A content check for `download.fetch`: the zip is cached only if `check_sdk_zip` passes."""
    return lambda path: check_sdk_zip(path, expected)


def check_sdk_zip(path: Path, expected: ExpectedOnnx) -> None:
    """Raise one line unless `path` is a sound zip whose only risky parts are absent and whose ONNX fits."""
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = extract_onnx(path, Path(scratch))
        try:
            _, outputs, input_chw = onnx_io(onnx_path)
        except MissingExtraError:
            raise
        except RtmwEdgeError as exc:
            raise RtmwEdgeError(str(exc).replace(str(onnx_path), f"its {ONNX_MEMBER}")) from exc
    missing = [name for name in expected.outputs if name not in outputs]
    if tuple(input_chw) != tuple(expected.input_chw) or missing:
        raise RtmwEdgeError(f"its {ONNX_MEMBER} takes a {'x'.join(map(str, input_chw))} input and gives "
                            f"{', '.join(outputs)}; expected {'x'.join(map(str, expected.input_chw))} and "
                            f"{', '.join(expected.outputs)}")


def extract_onnx(path: Path, folder: Path) -> Path:
    """`folder/end2end.onnx`, taken from the zip after every member's name and checksum were checked."""
    target = Path(folder) / ONNX_MEMBER
    try:
        with zipfile.ZipFile(path) as archive:
            member = _onnx_member(archive)
            broken = archive.testzip()
            if broken is not None:
                raise RtmwEdgeError(f"the zip is corrupt: {broken} fails its CRC check")
            with archive.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise RtmwEdgeError(f"it is not a readable zip file (corrupt or cut short: {exc})") from exc
    return target


def _onnx_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    for info in archive.infolist():
        if _escapes(info.filename):
            raise RtmwEdgeError(f"the zip holds {info.filename!r}, which would land outside its folder: refused")
    found = [info for info in archive.infolist() if PurePosixPath(info.filename).name == ONNX_MEMBER]
    if len(found) != 1:
        names = ", ".join(i.filename for i in archive.infolist()[:6]) or "nothing"
        count = "no" if not found else f"{len(found)} files named"
        raise RtmwEdgeError(f"the zip holds {count} {ONNX_MEMBER} (it holds {names}): not an ONNX SDK zip")
    return found[0]


def _escapes(name: str) -> bool:
    """An absolute path, a drive, or a `..` step: a name that would leave the folder it is extracted into."""
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or (bool(pure.parts) and ":" in pure.parts[0])
