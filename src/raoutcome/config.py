"""One config system: typed, nested, frozen dataclasses read from and written to TOML.

Every config of the library (simulator, training, study) is a tree of frozen dataclasses whose field
defaults are the defaults, stated once. :func:`from_dict` builds one from a TOML table: it rejects an
unknown key naming the file, the dotted key and the nearest valid name (``difflib``), converts each value
to its field's type (bool, int, float, str, tuples, tables of numbers, nested dataclasses) and runs the
field's check (``field(metadata={"check": fn, "doc": "..."})``, a callable returning an error message or
None). :func:`read_toml` is the one TOML reader, :func:`dumps_toml` the one writer, :func:`to_dict` the
inverse of :func:`from_dict`, and :func:`key_table` lists every key with its default and documentation (the
documented key tables are tested against it). Torch-free.
"""
from __future__ import annotations

__all__ = ["ConfigError", "read_toml", "dumps_toml", "from_dict", "to_dict", "key_table", "nearest", "check"]

import dataclasses
import difflib
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from raoutcome.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file raises :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is tolerated
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: cannot read the {what}: file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the {what} ({getattr(err, 'strerror', None) or err})") from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps_toml(values: Mapping[str, Any]) -> str:
    """Nested tables as TOML text: top-level scalars first, then one ``[section]`` per top-level table; inside
    a section a table of scalars is written inline (``weights = { a = 1.0 }``), a table of tables as
    ``[section.sub]``."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, Mapping)]
    if lines:
        lines.append("")

    def section(name: str, table: Mapping[str, Any]) -> None:
        nested = {k: v for k, v in table.items()
                  if isinstance(v, Mapping) and any(isinstance(x, Mapping) for x in v.values())}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if k not in nested)
        lines.append("")
        for k, v in nested.items():
            section(f"{name}.{k}", v)

    for k, v in values.items():
        if isinstance(v, Mapping):
            section(k, v)
    return "\n".join(lines)


def nearest(name: str, options) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check(fn: Callable[[Any], bool], expected: str) -> Callable[[Any], str | None]:
    """A field check from a predicate and what it expects: ``field(metadata={"check": check(f, "> 0")})``."""
    return lambda v: None if fn(v) else f"expected {expected}"


def _origin(tp) -> tuple[Any, tuple]:
    return typing.get_origin(tp), typing.get_args(tp)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (raising ConfigError naming ``where``)."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: expected {expected} (value: {value!r})")

    origin, args = _origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise bad(" or ".join(getattr(a, "__name__", str(a)) for a in args if a is not type(None)))
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise bad("a path (a string)")
        return Path(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise bad("a table")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return value  # built by the caller
    raise AssertionError(f"{where}: unsupported config type {tp!r}")  # pragma: no cover


def from_dict(cls: type, data: Mapping[str, Any], source: str = "<config>", prefix: str = "",
              validate: Callable[[str, str, Any], None] | None = None) -> Any:
    """Build the dataclass ``cls`` from a (TOML) table: every key checked, every missing key its default.

    A key unknown here, a value of the wrong type or one its field's check refuses raises
    :class:`ConfigError` naming ``source``, the dotted key and, for an unknown key, the nearest valid name.
    ``validate(key, name, value)`` (optional) checks every converted value too and raises ConfigError.
    """
    if not isinstance(data, Mapping):
        key = prefix.rstrip(".")
        where = f"'{key}' must be a table [{key}]" if key else "the config must be a TOML table"
        raise ConfigError(f"{source}: {where} (value: {data!r})")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = prefix + name
        if name not in known:
            what = f"section [{key}]" if not prefix and isinstance(value, Mapping) else f"key '{key}'"
            raise ConfigError(f"{source}: unknown {what}{nearest(name, known)} (value: {value!r}; "
                              f"known here: {', '.join(known)})")
        f, tp = known[name], hints[name]
        sub = _dataclass_of(tp)
        if sub is not None:
            kwargs[name] = from_dict(sub, value, source, key + ".", validate)
            continue
        converted = _convert(tp, value, f"{source}: '{key}'")
        problem = f.metadata.get("check", lambda v: None)(converted)
        if problem:
            raise ConfigError(f"{source}: {key} = {value!r} is invalid: {problem}")
        if validate is not None:
            try:
                validate(key, name, converted)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from err
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    except ValueError as err:  # a check across fields (__post_init__)
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: {err}") from err


def _dataclass_of(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    origin, args = _origin(tp)
    if origin in (typing.Union, types.UnionType):
        found = [a for a in args if dataclasses.is_dataclass(a)]
        return found[0] if found else None
    return None


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain nested dicts (tuples become lists, paths strings, None left out)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is not None:
                out[f.name] = to_dict(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def key_table(cls: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every key of ``cls`` (dotted, nested dataclasses expanded) with its default and its ``doc``."""
    rows: list[tuple[str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        sub = _dataclass_of(hints[f.name])
        value = getattr(default, f.name)
        if sub is not None and dataclasses.is_dataclass(value):
            rows.extend(key_table(sub, f"{prefix}{f.name}."))
        else:
            rows.append((prefix + f.name, to_dict(value), f.metadata.get("doc", "")))
    return rows
