"""What an ncnn .param text says about the graph: ncnn's Python API can report neither input shapes nor layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtmw_edge.errors import RtmwEdgeError

PARAM_MAGIC = "7767517"


@dataclass(frozen=True)
class ParamLayer:
    """One .param layer line: its type, name, blobs and `key=value` parameters as written."""

    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[str, str]


class ParamGraph:
    """Layers in file order, the input blobs (with the shapes their Input layers record) and the output blobs."""

    def __init__(self, text: str) -> None:
        lines = [line.split() for line in text.splitlines()[2:] if line.strip()]
        self.layers: list[ParamLayer] = []
        self.inputs: list[str] = []
        self.input_shapes: dict[str, tuple[int, int, int]] = {}
        produced: list[str] = []
        consumed: set[str] = set()
        for fields in lines:
            kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
            bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
            consumed.update(bottoms)
            produced.extend(tops)
            params = dict(p.split("=", 1) for p in fields[4 + n_in + n_out :] if "=" in p)
            self.layers.append(ParamLayer(kind, fields[1], tuple(bottoms), tuple(tops), params))
            if kind == "Input":
                self.inputs.append(tops[0])
                shape = _input_shape(fields[4 + n_in + n_out :])
                if shape:
                    self.input_shapes[tops[0]] = shape
        self.outputs = [blob for blob in produced if blob not in consumed]

    @classmethod
    def read(cls, param: str | Path) -> ParamGraph:
        return cls(param_text(Path(param)))


def param_text(param: Path) -> str:
    """The text of a .param file, refused when it lacks ncnn's magic number."""
    text = Path(param).read_text(encoding="utf-8", errors="replace")
    if not text.startswith(PARAM_MAGIC):
        raise RtmwEdgeError(f"{param} is not an ncnn text .param file (no {PARAM_MAGIC} magic)")
    return text


def _input_shape(params: list[str]) -> tuple[int, int, int] | None:
    """(C, H, W) from an Input layer's `0=w 1=h 2=c`, or None when the layer leaves them out."""
    values = {key: int(value) for key, value in (p.split("=", 1) for p in params) if key in ("0", "1", "2")}
    shape = values.get("2", 1), values.get("1", 0), values.get("0", 0)
    return shape if min(shape) > 0 else None


def record_input_shape(param: Path, chw: tuple[int, int, int]) -> None:
    """pnnx leaves the ncnn Input layer shapeless; writing w, h, c makes the .param self-describing."""
    lines = param.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.split(maxsplit=1)[0] == "Input":
            lines[i] = f"{line} 0={chw[2]} 1={chw[1]} 2={chw[0]}"
            break
    param.write_text("\n".join(lines) + "\n")
