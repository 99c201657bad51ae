"""Plain data (parsed TOML or JSON) into typed dataclasses and back, checked against the annotations.

One reader for every typed file (recipes, quantization records): a value of the wrong type, an unknown key or
a missing one is a `Mismatch` naming the key's dotted path and what was expected, which the caller turns into
one line naming the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np

Key = str | int  # a table key, or a list index


class Mismatch(Exception):
    """Plain data that does not fit the type: `key` says where, `message` what went wrong."""

    def __init__(self, path: tuple[Key, ...], message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"'{dotted(path)}' {message}" if path else message)


def dotted(path: tuple[Key, ...]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def from_plain(tp: Any, value: Any, path: tuple[Key, ...] = ()) -> Any:
    """`value` as type `tp` (a dataclass, list/tuple/dict of types, a union, a Literal or a scalar)."""
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        for arm in args:
            try:
                return from_plain(arm, value, path)
            except Mismatch as exc:
                if exc.path != path:  # the value fits this arm's shape but something inside it does not
                    raise
        raise _wrong(tp, value, path)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _wrong(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _wrong(tp, value, path)
        items = [from_plain(args[0], v, (*path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(tp, value, path)
        return {str(k): from_plain(args[1], v, (*path, str(k))) for k, v in value.items()}
    return _scalar(tp, value, path)


def to_plain(value: Any, omit_none: bool = False) -> Any:
    """Dataclasses, tuples, paths and numpy scalars as JSON/TOML data (None fields left out with `omit_none`)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: to_plain(v, omit_none) for name, v in fields if not (omit_none and v is None)}
    if isinstance(value, dict):
        return {str(k): to_plain(v, omit_none) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v, omit_none) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(tp: Any) -> str:
    """What a value of `tp` looks like, in the words of a TOML or JSON file."""
    if dataclasses.is_dataclass(tp):
        return f"a table of {', '.join(f.name for f in dataclasses.fields(tp))}"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(describe(arm) for arm in args)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a table of {_plural(args[1])}"
    return _SCALARS.get(tp, (getattr(tp, "__name__", str(tp)),))[0]


_SCALARS: dict[Any, tuple[str, str]] = {
    bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
    str: ("a string", "strings"), type(None): ("null", "nulls"), Any: ("anything", "values"),
    object: ("anything", "values"),
}


def _plural(tp: Any) -> str:
    return _SCALARS[tp][1] if tp in _SCALARS else describe(tp)


def _dataclass(cls: type, value: Any, path: tuple[Key, ...]) -> Any:
    if not isinstance(value, dict):
        raise _wrong(cls, value, path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise Mismatch((*path, str(unknown[0])), f"is an unknown key (known: {', '.join(fields)})")
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise Mismatch((*path, missing[0]), "is missing")
    return cls(**{k: from_plain(hints[k], v, (*path, k)) for k, v in value.items()})


def _scalar(tp: Any, value: Any, path: tuple[Key, ...]) -> Any:
    if tp in (Any, object):
        return value
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"no plain-data reading for {tp!r}")
    raise _wrong(tp, value, path)


def _wrong(tp: Any, value: Any, path: tuple[Key, ...]) -> Mismatch:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return Mismatch(path, f"must be {describe(tp)}, got {shown}")
