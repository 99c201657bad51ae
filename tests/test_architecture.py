"""The house rules that keep rtmw-edge easy to change, checked on the source: one room per backend, and imports
that only go down the layers the README describes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rtmw_edge
from rtmw_edge.backends import BACKENDS

PACKAGE = Path(rtmw_edge.__file__).resolve().parent
README = PACKAGE.parent / "README.md"
# lowest first; a module may import its own layer and those below, never one above (README: Layout)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "fileio", "table", "cache", "packaged", "typed", "onnx_io", "keypoints", "download", "sdk_zip"),
    ("backends", "machine"),
    ("artifact", "model", "topdown", "profiles"),
    ("detector", "evaluation"),
    ("predictor", "exporter", "visualize"),
    ("quantization", "bench", "media", "video", "resolve", "wholebody"),
    ("cli",),
)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path: Path) -> str:
    """The first part of the module's name below rtmw_edge (the package itself for __init__.py)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if parts != ("__init__",) else ""


def _layer(top: str) -> int:
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"rtmw_edge.{top} is in no layer of LAYERS: add it (and to the README's layout)")


def _imports(tree: ast.AST) -> list[str]:
    """Every rtmw_edge module imported anywhere in the file, function-level imports included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "rtmw_edge":  # submodules, or the facade's names
            found += [f"rtmw_edge.{a.name}" for a in node.names if (PACKAGE / a.name).exists()
                      or (PACKAGE / f"{a.name}.py").exists()]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name.split(".")[1] for name in found if name.startswith("rtmw_edge.")]


def _code_words(tree: ast.AST) -> set[str]:
    """Identifiers and string values of the code, docstrings left out (prose may name what it likes)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", node.value))
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.alias):
            words |= set(node.name.split("."))
    return words


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_layers(path):
    top = _top(path)
    if not top:
        return  # the package's __init__ is the public facade over every layer
    mine = _layer(top)
    upward = sorted({name for name in _imports(ast.parse(path.read_text())) if _layer(name) > mine})
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {mine}) imports upward: {', '.join(upward)}"


def test_nothing_outside_backends_names_a_backend():
    """What a backend knows lives in its folder: elsewhere its name or its runtime would be a second copy."""
    names = {word for b in BACKENDS.values() for word in (b.name, *b.packages)}
    leaks = {}
    for path in _modules():
        if _top(path) == "backends":
            continue
        found = _code_words(ast.parse(path.read_text())) & names
        if found:
            leaks[str(path.relative_to(PACKAGE))] = sorted(found)
    assert not leaks, f"backend names outside rtmw_edge/backends/: {leaks}"


def test_every_backend_is_one_folder_with_its_record():
    folders = sorted(p.name for p in (PACKAGE / "backends").iterdir() if (p / "__init__.py").is_file())
    assert folders == sorted(BACKENDS)
    for backend in BACKENDS.values():
        assert backend.package == f"rtmw_edge.backends.{backend.name}"
        assert {"runner.py", "convert.py", "quantize.py"} <= {p.name for p in (PACKAGE / "backends" /
                                                                              backend.name).iterdir()}


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_the_readme_layout_names_every_layer():
    text = README.read_text()
    missing = [top for members in LAYERS for top in members if f"`{top}" not in text]
    assert not missing, f"the README's layout does not mention: {', '.join(missing)}"
