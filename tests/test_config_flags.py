"""Flags derived from config dataclasses (vos.infra.config_flags): types, "not given", help, errors, and every
command's config fields reachable from its command line."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from dataclasses import dataclass, field
from typing import Optional

import pytest

from vos.infra.config import load_config
from vos.infra.config_flags import add_config_arguments, config_field, config_overrides


@dataclass
class Inner:
    margin: float = config_field(1.0, help="inner margin")
    rate: float = config_field(0.5, flag="--rate", help="renamed flag")


@dataclass
class Sample:
    count: int = config_field(3, help="an int")
    scale: float = config_field(0.25, help="a float")
    name: str = config_field("abc", help="a str")
    kind: str = config_field("b", choices=("a", "b", "c"), help="a choice")
    limit: Optional[int] = config_field(None, help="an optional int")
    source: Optional[str] = config_field(None, metavar="PATH", help="an optional str", default_help="the built-in one")
    enabled: bool = config_field(True, help="a bool that is on")
    verbose: bool = config_field(False, help="a bool that is off")
    size: tuple[int, int] = config_field((64, 96), metavar=("H", "W"), help="a pair")
    steps: list[int] = config_field(default_factory=lambda: [1, 5], help="a list")
    inner: Inner = field(default_factory=Inner)


def _parser(cls=Sample, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    add_config_arguments(parser, cls, **kwargs)
    return parser


def test_each_annotation_parses_to_its_type():
    args = _parser().parse_args(["--count", "7", "--scale", "1e-3", "--name", "zz", "--kind", "c", "--limit", "4",
                                 "--source", "f.bin", "--no-enabled", "--verbose", "--size", "32", "48",
                                 "--steps", "2", "4", "8", "--inner-margin", "0.5", "--rate", "2"])
    assert (args.count, args.scale, args.name, args.kind, args.limit, args.source) == (7, 0.001, "zz", "c", 4, "f.bin")
    assert args.enabled is False and args.verbose is True
    assert args.size == [32, 48] and args.steps == [2, 4, 8]
    assert args.inner_margin == 0.5 and args.rate == 2.0
    overrides = config_overrides(args, Sample)
    assert overrides == {"count": 7, "scale": 0.001, "name": "zz", "kind": "c", "limit": 4, "source": "f.bin",
                         "enabled": False, "verbose": True, "size": [32, 48], "steps": [2, 4, 8],
                         "inner.margin": 0.5, "inner.rate": 2.0}
    config = load_config(Sample, None, overrides)
    assert config.size == (32, 48) and config.inner == Inner(margin=0.5, rate=2.0) and config.enabled is False
    with pytest.raises(SystemExit):
        _parser().parse_args(["--kind", "d"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--size", "32"])


def test_flags_not_given_are_none_so_the_config_file_then_the_defaults_apply(tmp_path):
    args = _parser().parse_args([])
    assert all(value is None for value in vars(args).values()) and len(vars(args)) == 12
    assert config_overrides(args, Sample) == {}
    (tmp_path / "c.yaml").write_text("count: 9\nname: fromfile\ninner:\n  margin: 3.0\n")
    config = load_config(Sample, tmp_path / "c.yaml", config_overrides(_parser().parse_args(["--count", "5"]), Sample))
    assert (config.count, config.name, config.inner.margin, config.scale) == (5, "fromfile", 3.0, 0.25)


def test_help_carries_the_field_help_and_its_default():
    text = " ".join(_parser().format_help().split())
    for expected in ("an int (default: 3)", "a float (default: 0.25)", "a str (default: abc)",
                     "a choice (default: b)", "--kind {a,b,c}", "an optional str (default: the built-in one)",
                     "--source PATH", "a bool that is on (default: on)", "a bool that is off (default: off)",
                     "--enabled, --no-enabled", "--size H W", "a pair (default: 64 96)", "a list (default: 1 5)",
                     "--inner-margin INNER_MARGIN inner margin (default: 1.0)", "renamed flag (default: 0.5)"):
        assert expected in text
    assert "an optional int --source" in text  # None without default_help: no "(default: ...)"


def test_only_exclude_and_per_command_settings():
    def dests(**kwargs):
        return set(vars(_parser(**kwargs).parse_args(["--count", "1"] if kwargs.get("flags") else [])))

    assert dests(only=("count", "inner")) == {"count", "inner_margin", "rate"}
    assert dests(exclude=("inner", "steps", "size")) == {"count", "scale", "name", "kind", "limit", "source",
                                                         "enabled", "verbose"}
    assert dests(only=("inner.rate",)) == {"rate"}
    parser = _parser(only=("count",), flags={"count": {"required": True}})
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert parser.parse_args(["--count", "2"]).count == 2
    with pytest.raises(TypeError, match="scale"):
        _parser(only=("count",), flags={"scale": {"required": True}})


@pytest.mark.parametrize("annotation", [dict[str, int], tuple[int, ...], tuple[int, str], Optional[list[str | int]],
                                        typing.Union[int, str], set[int]])
def test_an_unsupported_annotation_is_an_error_when_the_parser_is_built(annotation):
    cls = dataclasses.make_dataclass("Odd", [("ok", int, config_field(1, help="fine")),
                                             ("odd", annotation, config_field(None, help="odd"))])
    with pytest.raises(TypeError, match=r"Odd\.odd: no command-line flag for the annotation"):
        _parser(cls)
    assert set(vars(_parser(cls, exclude=("odd",)).parse_args([]))) == {"ok"}


def test_a_field_without_help_is_an_error_when_the_parser_is_built():
    cls = dataclasses.make_dataclass("Bare", [("n", int, field(default=1))])
    with pytest.raises(TypeError, match=r"Bare\.n: no help"):
        _parser(cls)


# every command with a config dataclass: (cli module, command, config class, arguments it requires)
COMMANDS = [
    ("vos.cli", "segment", "vos.segment.config.SegmentConfig", ["clip.mp4"]),
    ("vos.cli", "train", "vos.train.config.TrainConfig", []),
    ("ssl_video.cli", "pretrain", "ssl_video.config.PretrainConfig", ["--out", "run"]),
    ("ssl_video.cli", "finetune", "ssl_video.config.FinetuneConfig", ["--out", "run"]),
    ("ssl_video.cli", "retrieve", "ssl_video.config.RetrieveConfig", []),
    ("ssl_video.cli", "test", "ssl_video.config.EvaluateConfig", []),
]


def _leaves(obj, prefix=""):
    """(dotted path, default value) of every leaf field of a dataclass instance."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, prefix + f.name + ".")
        else:
            yield prefix + f.name, value


def _other_value(action: argparse.Action, default):
    """Command-line words that set the flag of ``action`` to a value other than ``default``, and that value."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return ([action.option_strings[1]] if default else [action.option_strings[0]]), not default
    if action.choices:
        value = next(c for c in action.choices if c != default)
        return [action.option_strings[0], str(value)], value
    kind = action.type or str
    if action.nargs in (2, "+"):
        values = [kind(v) for v in (3, 5)]
        return [action.option_strings[0], *map(str, values)], values
    value = {int: 7 if default != 7 else 8, float: 0.375, str: "given"}[kind]
    return [action.option_strings[0], str(value)], value


@pytest.mark.parametrize("cli,command,config_name,required", COMMANDS, ids=[c[1] for c in COMMANDS])
def test_every_config_field_of_every_command_is_a_flag_or_excluded_by_name(cli, command, config_name, required):
    """A field added later gets a flag (it cannot be forgotten) or is named in the command's CONFIG_FILE_ONLY;
    every flag defaults to None and sets its own field, and only it."""
    from vos.infra.cli import build_parser

    module_name, cls_name = config_name.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), cls_name)
    commands = importlib.import_module(cli).COMMANDS
    sub = build_parser("x", commands)._subparsers._group_actions[0].choices[command]
    excluded = getattr(importlib.import_module(commands[command]), "CONFIG_FILE_ONLY", ())
    leaves = dict(_leaves(cls()))

    def is_excluded(path):
        return any(path == name or path.startswith(name + ".") for name in excluded)

    flag_of = {}  # field path -> the action whose value config_overrides reads for it
    for action in sub._actions:
        if action.option_strings:
            hit = config_overrides(argparse.Namespace(**{action.dest: "probe"}), cls)
            if hit:
                (path,) = hit
                flag_of[path] = action
    assert [p for p in leaves if not is_excluded(p) and p not in flag_of] == [], \
        f"`{command}`: derive a flag for these fields or name them in CONFIG_FILE_ONLY"
    assert [p for p in flag_of if is_excluded(p)] == []
    assert all(any(p == n or p.startswith(n + ".") for p in leaves) for n in excluded), "stale CONFIG_FILE_ONLY entry"
    for path, action in flag_of.items():
        assert action.default is None, f"{command} {action.option_strings}: not given must be None"
        words, value = _other_value(action, leaves[path])
        given = [*required, *words]
        if command == "test" and path != "checkpoint":
            given += ["--checkpoint", "ckpt.pt"]
        overrides = config_overrides(sub.parse_args(given), cls)
        assert overrides.pop(path) == value
        assert overrides == ({"checkpoint": "ckpt.pt"} if command == "test" and path != "checkpoint" else {})
        node = load_config(cls, None, {path: value})
        for part in path.split("."):
            node = getattr(node, part)
        assert node == (tuple(value) if action.nargs == 2 else value)  # pairs are tuple fields
    assert len(flag_of) + sum(map(is_excluded, leaves)) == len(leaves)
