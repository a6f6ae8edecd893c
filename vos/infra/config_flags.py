"""Command-line flags derived from config dataclasses: a field's default and help are written once, on the field.

A field ``key_every: int = config_field(10, help="key frame interval")`` becomes the flag ``--key-every``
(type int, help "key frame interval (default: 10)"). Every derived flag has the argparse default None,
meaning "not given", so that :func:`config_overrides` returns only what the command line set and
:func:`vos.infra.config.load_config` applies: dataclass defaults < --config file < flags.

Field metadata (all optional except ``help``):

- ``help``: the flag's help; "(default: X)" is appended from the dataclass default.
- ``default_help``: what applies when the flag is not given, for defaults that need words (``None``
  meaning "the checkpoint's"); replaces the printed default.
- ``choices``, ``metavar``: as in argparse.
- ``flag``: the flag's spelling when it is not the field name with dashes (``optim.lr`` -> ``--lr``).

Annotations map to argparse as: int, float, str (and ``Optional`` of them) take one value; bool
gives ``--name``/``--no-name``; ``tuple[X, X]`` takes exactly that many values; ``list[X]`` one or
more. Fields whose annotation is a dataclass are walked, their flags named ``--parent-child`` unless
``flag`` says otherwise. Any other annotation is an error when the parser is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Collection, Iterator, Mapping, Optional

SCALARS = (int, float, str)


def config_field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
                 **flag: Any) -> Any:
    """``dataclasses.field`` with the flag's help (and ``choices``, ``metavar``, ``flag``, ``default_help``)."""
    unknown = set(flag) - {"choices", "metavar", "flag", "default_help"}
    if unknown:
        raise TypeError(f"config_field: unknown flag setting(s) {', '.join(sorted(unknown))}")
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help, **flag})


def _fields(cls: type, instance: Any = None, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any, Any]]:
    """(dotted path, field, resolved annotation, default) of every leaf field of ``cls``, nested ones walked."""
    hints = typing.get_type_hints(cls)
    instance = cls() if instance is None else instance
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], value, prefix + f.name + ".")
        else:
            yield prefix + f.name, f, hints[f.name], value


def flag_name(path: str, field: dataclasses.Field) -> str:
    """``--key-every`` for the field ``key_every``; nested ``optim.min_lr`` -> ``--optim-min-lr``; or metadata ``flag``."""
    return field.metadata.get("flag") or "--" + path.replace(".", "-").replace("_", "-")


def flag_dest(path: str, field: dataclasses.Field) -> str:
    """The argparse attribute of a field's flag (the flag's name with underscores, as argparse makes it)."""
    return flag_name(path, field).lstrip("-").replace("-", "_")


def _selected(path: str, names: Collection[str]) -> bool:
    """``path`` is one of ``names`` or inside one of them (``"optim"`` covers ``"optim.lr"``)."""
    return any(path == name or path.startswith(name + ".") for name in names)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _value_kwargs(where: str, annotation: Any) -> dict[str, Any]:
    """The argparse keywords (type, nargs, action) for a field's annotation."""
    annotation = _unwrap_optional(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in SCALARS:
        return {"type": annotation}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and args and Ellipsis not in args and len(set(args)) == 1 and args[0] in SCALARS:
        return {"type": args[0], "nargs": len(args)}
    if origin is list and len(args) == 1 and args[0] in SCALARS:
        return {"type": args[0], "nargs": "+"}
    raise TypeError(f"{where}: no command-line flag for the annotation {annotation!r} (supported: int, float, str, "
                    "bool, Optional of them, tuple[X, X], list[X]); exclude the field or change its type")


def _format_default(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, only: Optional[Collection[str]] = None,
                         exclude: Collection[str] = (), flags: Optional[Mapping[str, Mapping[str, Any]]] = None
                         ) -> list[str]:
    """Add a flag for every field of the dataclass ``cls`` (nested dataclasses walked); return their dests.

    ``only`` / ``exclude`` select fields by dotted path (a nested dataclass's name selects all its fields).
    ``flags`` maps a field path to argparse keywords that this command sets differently (e.g.
    ``{"checkpoint": {"required": True}}``). Unsupported annotations and fields without help are a
    ``TypeError`` here, when the parser is built.
    """
    flags = dict(flags or {})
    dests = []
    for path, field, annotation, default in _fields(cls):
        if (only is not None and not _selected(path, only)) or _selected(path, exclude):
            continue
        where = f"{cls.__name__}.{path}"
        meta = field.metadata
        if "help" not in meta:
            raise TypeError(f"{where}: no help for its flag; declare it with config_field(..., help=...)")
        kwargs = _value_kwargs(where, annotation)
        shown = meta.get("default_help") or _format_default(default)
        text = meta["help"] + (f" (default: {shown})" if shown else "")
        kwargs.update(default=None, help=text.replace("%", "%%"), dest=flag_dest(path, field))
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        kwargs.update(flags.pop(path, {}))
        parser.add_argument(flag_name(path, field), **kwargs)
        dests.append(kwargs["dest"])
    if flags:
        raise TypeError(f"add_config_arguments: flags given for {', '.join(sorted(flags))}, which {cls.__name__} "
                        "does not turn into flags here")
    return dests


def config_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line: dotted path -> value, for :func:`vos.infra.config.load_config`.

    A field counts as given when ``args`` has its flag's attribute with a value other than None (so a
    hand-written flag with the field's name counts too).
    """
    given = {}
    for path, field, _, _ in _fields(cls):
        value = getattr(args, flag_dest(path, field), None)
        if value is not None:
            given[path] = value
    return given
