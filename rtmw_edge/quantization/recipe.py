"""Quantization recipes are data: `quantize/<backend>.toml` ships the defaults, `--recipe FILE` overrides.

The shipped recipe is the only copy of every default; it is read into the typed `Recipe` below, so a wrong
type, a misspelt key or an unknown layer group is one line naming the file, the key and what was expected.
[quantizer] is the backend's own settings: its keys and their types are those of the shipped recipe.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtmw_edge.backends import get_backend
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.packaged import package_data, read_toml
from rtmw_edge.quantization.groups import LAYER_GROUPS
from rtmw_edge.typed import Mismatch, from_plain, to_plain

SAME_KEYS_AS = {("detector", "quantizer"): ("quantizer",)}  # tables that override another table's keys


@dataclass(frozen=True)
class CalibrationRecipe:
    size: int  # pose-model inputs
    seed: int
    augment: bool


@dataclass(frozen=True)
class KeepFloatRecipe:
    groups: tuple[str, ...]  # layer groups left in float from the start


@dataclass(frozen=True)
class AccuracyControlRecipe:
    """The backend's own search on a failed gate (OpenVINO: NNCF's accuracy control)."""

    enabled: bool
    max_iterations: int
    ranking_inputs: int


@dataclass(frozen=True)
class LayerSearchRecipe:
    """The detector's search on a failed gate, for backends that rank single layers (ncnn)."""

    ranking_inputs: int


@dataclass(frozen=True)
class GateRecipe:
    max_drop_wholebody: float
    max_drop_part: float
    fallback: bool
    revert_order: tuple[str, ...]
    reference_crops: int  # held-out crops INT8 is compared with FP32 on when no ground truth is given
    accuracy_control: AccuracyControlRecipe | None = None  # absent: the backend has no search of its own
    layer_search: LayerSearchRecipe | None = None  # absent: the backend cannot rank layers


@dataclass(frozen=True)
class DetectorRecipe:
    calibration_size: int
    scenes: bool  # calibrate on scenes composed from the calibration images (people at several sizes and places)
    score_threshold: float  # the detector's thresholds when it finds people in calibration images and is judged
    nms_iou: float
    quantizer: dict[str, Any]  # overrides of [quantizer]


@dataclass(frozen=True)
class Sensitivity:
    """Whole-body AP x100 (and SimCC logit SNR) with only one layer group in int8: low means sensitive."""

    ap: float
    snr_db: float | None = None


@dataclass(frozen=True)
class Recipe:
    backend: str
    calibration: CalibrationRecipe
    quantizer: dict[str, Any]
    keep_float: KeepFloatRecipe
    gate: GateRecipe
    sensitivity: dict[str, Sensitivity]
    detector: DetectorRecipe

    def tables(self) -> dict:
        """The recipe as TOML tables (what quantization.json records)."""
        return to_plain(self, omit_none=True)


def recipe_path(backend: str) -> Path:
    backend = get_backend(backend).name
    return package_data("recipes") / f"{backend}.toml"


def load_recipe(backend: str, override: str | Path | None = None) -> Recipe:
    """The default recipe of `backend`, with the keys of `override` (a partial TOML file) merged over it."""
    default = recipe_path(backend)
    base = read_toml(default, "recipe")
    shipped = _typed(base, {}, default, default)  # the shipped file alone must be complete and well typed
    if override is None:
        return shipped
    override = Path(override)
    extra = read_toml(override, "recipe")
    if extra.get("backend", backend) != backend:
        raise RtmwEdgeError(f"recipe {override} is for backend '{extra['backend']}', not '{backend}'")
    _check_known(base, extra, override)
    return _typed(_merge(base, extra), extra, default, override, shipped)


def _typed(tables: dict, extra: dict, default: Path, override: Path, shipped: Recipe | None = None) -> Recipe:
    """The typed recipe; an error names the file the offending key came from."""
    try:
        recipe = from_plain(Recipe, tables)
        schema = {key: _type_of(value) for key, value in (shipped or recipe).quantizer.items()}
        tables = {("quantizer",): recipe.quantizer, ("detector", "quantizer"): recipe.detector.quantizer}
        for path, settings in tables.items():
            for key, value in settings.items():
                if key not in schema:
                    raise Mismatch((*path, key), f"is not a [quantizer] key (known: {', '.join(schema)})")
                from_plain(schema[key], value, (*path, key))
        _check_groups(recipe)
    except Mismatch as exc:
        raise RtmwEdgeError(f"recipe {override if _has(extra, exc.path) else default}: {exc}") from exc
    return recipe


def _type_of(default: object) -> Any:
    """A [quantizer] key's type, from its shipped value; 'auto' stands for true, false or 'auto'."""
    if default == "auto":
        return bool | Literal["auto"]
    if isinstance(default, list):
        return list[type(default[0]) if default else str]
    return type(default)


def _check_groups(recipe: Recipe) -> None:
    known = f"(known: {', '.join(LAYER_GROUPS)})"
    lists = {("keep_float", "groups"): recipe.keep_float.groups, ("gate", "revert_order"): recipe.gate.revert_order}
    for path, groups in lists.items():
        for index, group in enumerate(groups):
            if group not in LAYER_GROUPS:
                raise Mismatch((*path, index), f"names unknown layer group '{group}' {known}")
    for group in recipe.sensitivity:
        if group not in LAYER_GROUPS:
            raise Mismatch(("sensitivity", group), f"is not a layer group {known}")


def _check_known(base: dict, extra: dict, where: Path, path: tuple[str, ...] = ()) -> None:
    """A misspelt key would silently do nothing: refuse keys the default recipe does not have."""
    reference = _table(base, SAME_KEYS_AS.get(path, path))
    for key, value in extra.items():
        if key not in reference:
            raise RtmwEdgeError(f"recipe {where}: unknown key '{'.'.join((*path, key))}'")
        if isinstance(value, dict) and isinstance(reference[key], dict) and (*path, key) != ("sensitivity",):
            _check_known(base, value, where, (*path, key))


def _table(tables: dict, path: tuple) -> dict:
    for key in path:
        tables = tables[key]
    return tables


def _has(tables: dict, path: tuple) -> bool:
    """Whether the key at `path` is written in `tables` (a list item belongs to the file that wrote the list)."""
    for key in path:
        if isinstance(key, int):
            return True
        if not isinstance(tables, dict) or key not in tables:
            return False
        tables = tables[key]
    return True


def _merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, table by table; a [sensitivity] table is one measurement and replaces the other."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "sensitivity":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
