"""YAML config files mapped onto dataclasses; command-line flags override file values.

A config file is a YAML mapping whose keys are the dataclass's field names (nested dataclasses are
nested mappings). Unknown keys are errors, so a typo never silently falls back to a default.
Precedence: dataclass defaults < YAML file < command-line overrides.
"""

from __future__ import annotations

import dataclasses
import os
import typing
import warnings
from pathlib import Path
from typing import Any, Collection, Mapping, TypeVar

import yaml

from vos.infra.errors import UserError

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML scalar to the field's declared type (YAML reads ``1e-5`` as a string)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        annotation = args[0] if len(args) == 1 else annotation
        origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return _build(annotation, value, where)
    try:
        if annotation is str and isinstance(value, os.PathLike):  # paths given in code
            return os.fspath(value)
        if annotation is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        if annotation is int and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        if annotation is bool and isinstance(value, str):
            if value.lower() in ("true", "yes", "1"):
                return True
            if value.lower() in ("false", "no", "0"):
                return False
            raise ValueError(value)
        if origin in (list, tuple) and isinstance(value, (list, tuple)):
            args = typing.get_args(annotation) or (Any,)
            if origin is tuple and Ellipsis not in args and len(args) != len(value):
                raise UserError(f"{where}: expected {len(args)} values, got {len(value)} ({value!r})")
            (item_type, *_) = args
            items = [_coerce(v, item_type, where) if item_type is not Any else v for v in value]
            return tuple(items) if origin is tuple else items
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"{where}: cannot read {value!r} as {getattr(annotation, '__name__', annotation)}") from exc
    expected = origin or annotation
    if expected in (int, float, bool, str, list, tuple) and not isinstance(value, expected):
        raise UserError(f"{where}: expected {'a list' if expected in (list, tuple) else expected.__name__}, "
                        f"got {value!r}")
    return value


def _build(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(values: dict, dotted: str, value: Any) -> None:
    node = values
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                ignore_keys: Collection[str] = ()) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``overrides``.

    ``overrides`` maps field names (dotted for nested dataclasses: ``"loss.margin"``) to values;
    entries whose value is ``None`` are ignored, so argparse namespaces with ``default=None`` can be
    passed through unchanged. Top-level file keys in ``ignore_keys`` (settings of a sibling command
    that mean nothing here) are dropped with a warning naming them; other unknown keys are errors.
    """
    values: dict = dataclasses.asdict(cls())
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise UserError(f"{path}: not a text file (a config file is YAML text)") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        except RecursionError:  # YAML nested deeper than Python's recursion limit
            raise UserError(f"{path}: not a config file (nested too deeply)") from None
        if not isinstance(loaded, Mapping):
            raise UserError(f"{path}: a config file must be a YAML mapping of field names to values")
        dropped = sorted(set(loaded) & set(ignore_keys))
        if dropped:
            warnings.warn(f"{path}: ignoring {', '.join(dropped)} (settings of another command, unused here)",
                          stacklevel=2)
            loaded = {k: v for k, v in loaded.items() if k not in dropped}
        _merge(values, loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(values, key, value)
    return _build(cls, values, str(path) if path is not None else cls.__name__)


def _merge(base: dict, update: Mapping) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def config_to_dict(config: Any) -> dict:
    """Plain dict of a config dataclass, for checkpoints and logs (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(config)))
