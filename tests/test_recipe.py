"""Recipes are typed data: every shipped key is read by the pipeline, and a wrong one is one line naming it."""

from __future__ import annotations

import ast
import dataclasses
import types
import typing
from pathlib import Path

import pytest

import rtmw_edge
from rtmw_edge.backends import BACKENDS
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.packaged import package_data, read_toml
from rtmw_edge.quantization.pipeline import _revert_order
from rtmw_edge.quantization.recipe import Recipe, Sensitivity, load_recipe, recipe_path

PACKAGE = Path(rtmw_edge.__file__).parent


def _reads() -> tuple[set[tuple[str | None, str]], set[str]]:
    """What the package reads outside the recipe reader: (name of the object, attribute) of every attribute, and
    every string subscript (`settings["key"]`)."""
    attributes, subscripts = set(), set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "recipe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                base = node.value
                owner = getattr(base, "attr", None) or getattr(base, "id", None)  # `x.owner.key` or `owner.key`
                attributes.add((owner, node.attr))
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                subscripts.add(node.slice.value)
    return attributes, subscripts


def _table_type(tp: object) -> object:
    """The dataclass inside `X | None`, else `tp`."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return next(arm for arm in typing.get_args(tp) if arm is not type(None))
    return tp


def _unread(tp: type, tables: dict, owner: str, reads: tuple[set, set], path: tuple[str, ...] = ()) -> list[str]:
    """The keys of `tables` (read as `tp`) that no code reads as `<owner>.<key>` (or `settings["<key>"]`)."""
    attributes, subscripts = reads
    hints = typing.get_type_hints(tp)
    unread = []
    for key, value in tables.items():
        where = ".".join((*path, key))
        if (owner, key) not in attributes:
            unread.append(where)
        table = _table_type(hints[key])
        if dataclasses.is_dataclass(table):
            unread += _unread(table, value, key, reads, (*path, key))
        elif key == "quantizer":  # the backend's own settings, read by its quantizer module
            unread += [f"{where}.{k}" for k in value if k not in subscripts]
        elif key == "sensitivity":  # rows keyed by layer group
            unread += [f"{where}.{g}.{k}" for g, row in value.items() for k in row
                       if not any(attr == k for _, attr in attributes)]
    return unread


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_key_of_every_shipped_recipe_is_read_by_the_pipeline(backend):
    tables = read_toml(recipe_path(backend), "recipe")
    recipe = load_recipe(backend)  # every key lands in a typed field (an unknown one is refused)
    assert recipe.tables() == tables
    assert _unread(Recipe, tables, "recipe", _reads()) == []


def test_a_key_nothing_reads_is_caught_by_the_check():
    reads = _reads()
    assert _unread(Recipe, {"gate": {"fallback": True}}, "recipe", reads) == []
    attributes = {(o, a) for o, a in reads[0] if (o, a) != ("gate", "fallback")}
    assert _unread(Recipe, {"gate": {"fallback": True}}, "recipe", (attributes, reads[1])) == ["gate.fallback"]
    assert _unread(Recipe, {"quantizer": {"nothing_reads_me": 1}}, "recipe", reads) == ["quantizer.nothing_reads_me"]


def test_shipped_data_folders_are_found_in_the_checkout():
    assert (package_data("recipes") / "openvino.toml").is_file()
    assert (package_data("calib_data") / "README.md").is_file()
    assert (package_data("runtimes") / "intel-cpu" / "profile.toml").is_file()


@pytest.mark.parametrize("text, message", [
    ('[calibration]\nsize = "lots"\n', "'calibration.size' must be an integer, got 'lots'"),
    ('[keep_float]\ngroups = "head.gau"\n', "'keep_float.groups' must be a list of strings, got 'head.gau'"),
    ("[gate]\nmax_drop_part = true\n", "'gate.max_drop_part' must be a number, got True"),
    ("[gate]\nfallback = 1\n", "'gate.fallback' must be true or false, got 1"),
    ("[gate.accuracy_control]\nmax_iterations = 2.5\n", "'gate.accuracy_control.max_iterations' must be an integer"),
    ("[quantizer]\nsubset_size = 1.5\n", "'quantizer.subset_size' must be an integer, got 1.5"),
    ('[quantizer]\noverflow_fix = "sometimes"\n', "'quantizer.overflow_fix' must be true or false or 'auto'"),
    ("[detector.quantizer]\nfast_bias_correction = 0\n", "'detector.quantizer.fast_bias_correction' must be true"),
    ('[keep_float]\ngroups = ["head.gauu"]\n', "'keep_float.groups[0]' names unknown layer group 'head.gauu'"),
    ("[sensitivity]\nneck = 3.0\n", "'sensitivity.neck' must be a table of ap, snr_db, got 3.0"),
    ('[sensitivity]\nnope = { ap = 3.0 }\n', "'sensitivity.nope' is not a layer group"),
    ("[quantizer]\nsubsetsize = 3\n", "unknown key 'quantizer.subsetsize'"),
    ('[detector.quantizer]\nmethod = "kl"\n', "unknown key 'detector.quantizer.method'"),
    ("[gate.layer_search]\nranking_inputs = 4\n", "unknown key 'gate.layer_search'"),
    ("[gate\n", "is not valid TOML"),
])
def test_a_wrong_recipe_key_is_one_line_naming_the_file_the_key_and_the_expected_type(tmp_path, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(RtmwEdgeError) as caught:
        load_recipe("openvino", path)
    assert str(caught.value).startswith(f"recipe {path}") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_override_merges_over_the_shipped_default_and_the_detector_takes_quantizer_keys(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[calibration]\nsize = 16\n[quantizer]\noverflow_fix = true\n'
                    '[detector.quantizer]\npreset = "performance"\n')
    recipe = load_recipe("openvino", path)
    assert recipe.calibration.size == 16 and recipe.calibration.seed == 0
    assert recipe.quantizer["overflow_fix"] is True and recipe.quantizer["preset"] == "mixed"
    assert recipe.detector.quantizer == {"preset": "performance"}
    assert recipe.gate.layer_search is None and recipe.gate.accuracy_control.enabled is True
    assert load_recipe("ncnn").gate.layer_search.ranking_inputs == 8


def test_a_recipe_for_another_backend_is_refused(tmp_path):
    path = tmp_path / "ncnn.toml"
    path.write_text('backend = "ncnn"\n')
    with pytest.raises(RtmwEdgeError, match="is for backend 'ncnn', not 'openvino'"):
        load_recipe("openvino", path)


def test_reverts_go_most_sensitive_first_then_in_the_recipe_order():
    shipped = load_recipe("openvino")
    recipe = dataclasses.replace(
        shipped, gate=dataclasses.replace(shipped.gate, revert_order=("head.encode", "neck", "backbone.stage1")),
        sensitivity={"backbone.stage1": Sensitivity(20.0), "neck": Sensitivity(5.0),
                     "backbone.stage2": Sensitivity(5.0, 9.0)})
    assert _revert_order(recipe, ["head.gau"]) == ["backbone.stage2", "neck", "backbone.stage1", "head.encode"]
