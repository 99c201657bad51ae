"""Quantization recipes are data: `quantize/<backend>.toml` ships the defaults, `--recipe FILE` overrides."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from rtmw_edge.backends import get_backend
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.quantization.groups import LAYER_GROUPS

SAME_KEYS_AS = {"detector.quantizer": "quantizer"}  # tables that override another table's keys


def recipes_dir() -> Path:
    """The shipped recipes: inside the installed wheel, or `quantize/` of a source checkout."""
    packaged = Path(__file__).resolve().parents[1] / "_recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "quantize"


def load_recipe(backend: str, override: str | Path | None = None) -> dict:
    """The default recipe of `backend`, with the keys of `override` (a partial TOML file) merged over it."""
    backend = get_backend(backend).name
    recipe = _read(recipes_dir() / f"{backend}.toml")
    if override is not None:
        extra = _read(Path(override))
        if extra.get("backend", backend) != backend:
            raise RtmwEdgeError(f"recipe {override} is for backend '{extra['backend']}', not '{backend}'")
        _check_known(recipe, extra, str(override))
        recipe = _merge(recipe, extra)
    _check_sensitivity(recipe.get("sensitivity", {}), str(override or recipes_dir() / f"{backend}.toml"))
    return recipe


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RtmwEdgeError(f"recipe {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RtmwEdgeError(f"recipe {path} is not valid TOML ({exc})") from exc


def detector_settings(recipe: dict) -> dict:
    """The quantizer settings for the person detector: [quantizer] with [detector.quantizer] over it."""
    return {**recipe["quantizer"], **recipe.get("detector", {}).get("quantizer", {})}


def _check_known(base: dict, extra: dict, where: str, prefix: str = "", root: dict | None = None) -> None:
    """A misspelt key would silently do nothing: refuse keys the default recipe does not have."""
    root = base if root is None else root
    for key, value in extra.items():
        path = f"{prefix}{key}"
        if key not in base:
            raise RtmwEdgeError(f"recipe {where}: unknown key '{path}'")
        reference = root[SAME_KEYS_AS[path]] if path in SAME_KEYS_AS else base[key]
        if isinstance(value, dict) and isinstance(reference, dict) and key != "sensitivity":
            _check_known(reference, value, where, f"{path}.", root)


def _check_sensitivity(table: dict, where: str) -> None:
    """[sensitivity] rows are `"group" = { ap = AP x100, snr_db = dB }`, as `--sensitivity` reports them."""
    for group, measured in table.items():
        if group not in LAYER_GROUPS:
            raise RtmwEdgeError(f"recipe {where}: [sensitivity] names unknown layer group '{group}'")
        numbers = isinstance(measured, dict) and "ap" in measured and set(measured) <= {"ap", "snr_db"} and all(
            isinstance(v, int | float) for v in measured.values())
        if not numbers:
            raise RtmwEdgeError(f"recipe {where}: [sensitivity] '{group}' must be {{ ap = NUMBER, snr_db = NUMBER }}")


def _merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, table by table; a [sensitivity] table is one measurement and replaces the other."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "sensitivity":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
