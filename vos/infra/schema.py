"""What a file must hold, checked where the file enters: a tiny declarative schema.

Each reader of the toolkit (checkpoints, weight files, caches, configs, annotation JSON) states the
shape of what it accepts once, as a tree of specs, and calls :func:`check` right after parsing the
file. Anything else (a key missing, a value of another type, a tensor of another shape or dtype, a
number out of range) is one :class:`~vos.infra.errors.UserError` line naming the file, the place in
it (``['block']['dim']``), what was found and what was expected, and what to do; the code after the
check can then index and compute without guarding every step.

    BLOCK = Dict({"dim": Int(min=1), "state_dict": MapOf(Tensor(floating=True))})
    ckpt = check(loaded, BLOCK, path, "train it again")

Specs: :class:`Int`, :class:`Number`, :class:`Str`, :class:`Bool`, :class:`Nothing`, :class:`Tensor`,
:class:`Dict` (named keys), :class:`MapOf` (any string keys, one value spec), :class:`ListOf`,
:class:`OneOf` (the first that fits), :class:`Satisfies` (a test), :class:`Plain` (settings),
:class:`Anything`. :func:`like` derives a spec from a value
the toolkit itself produces (e.g. a scheduler's ``state_dict()``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from vos.infra.errors import UserError


def describe(value: Any) -> str:
    """What a value is, for messages: 'a str', 'a float32 tensor of shape (3, 4)', 'None'."""
    if value is None:
        return "None"
    if type(value).__name__ == "Tensor":
        return f"{with_article(str(value.dtype).replace('torch.', ''))} tensor of shape {tuple(value.shape)}"
    if type(value).__name__ == "ndarray":
        return f"a {value.dtype} array of shape {value.shape}"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def with_article(word: str) -> str:
    """``word`` with its indefinite article ('an int64', 'a uint8', 'a float32')."""
    return f"an {word}" if word.startswith("int") else f"a {word}"


class Spec:
    """One node of a schema: ``problem`` says what is wrong with ``value`` (None if nothing)."""

    what = "a value"  # what is expected, for messages

    def problem(self, value: Any, where: str) -> str | None:
        raise NotImplementedError


def _found(where: str, value: Any, expected: str) -> str:
    return f"{where or 'the content'} is {describe(value)}, expected {expected}"


class Anything(Spec):
    what = "anything"

    def problem(self, value, where):
        return None


class Nothing(Spec):
    what = "None"

    def problem(self, value, where):
        return None if value is None else _found(where, value, self.what)


class _Ranged(Spec):
    def __init__(self, min: float | None = None, max: float | None = None):
        self.min, self.max = min, max
        bounds = [f">= {min}" if min is not None else "", f"<= {max}" if max is not None else ""]
        self.what = " ".join([self.kind] + [b for b in bounds if b])

    def problem(self, value, where):
        if not self.accepts(value):
            return _found(where, value, self.what)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return f"{where} is {value!r}, expected {self.what}"
        return None


class Int(_Ranged):
    kind = "an int"

    def accepts(self, value):
        return isinstance(value, int) and not isinstance(value, bool)


class Number(_Ranged):
    """A finite int or float."""

    kind = "a finite number"

    def accepts(self, value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Bool(Spec):
    what = "a bool"

    def problem(self, value, where):
        return None if isinstance(value, bool) else _found(where, value, self.what)


class Str(Spec):
    def __init__(self, choices: tuple[str, ...] | None = None):
        self.choices = choices
        self.what = "a str" if choices is None else "one of " + ", ".join(repr(c) for c in choices)

    def problem(self, value, where):
        if not isinstance(value, str):
            return _found(where, value, self.what)
        if self.choices is not None and value not in self.choices:
            return f"{where} is {value!r}, expected {self.what}"
        return None


class Tensor(Spec):
    """A torch tensor; ``shape`` entries are sizes or None (any size); ``floating`` asks for a real
    floating-point dtype, ``dtype`` for exactly that one."""

    def __init__(self, shape: tuple[int | None, ...] | None = None, ndim: int | None = None,
                 floating: bool = False, dtype: Any = None):
        self.shape = None if shape is None else tuple(shape)
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.floating, self.dtype = floating, dtype
        kind = with_article(str(dtype).replace("torch.", "") + " tensor" if dtype is not None
                  else "floating-point tensor" if floating else "tensor")
        if self.shape is not None:
            dims = ", ".join("any" if s is None else str(s) for s in self.shape)
            self.what = f"{kind} of shape ({dims}{',' if len(self.shape) == 1 else ''})"
        else:
            self.what = kind + (f" with {ndim} dimension(s)" if ndim is not None else "")

    def problem(self, value, where):
        import torch

        if not isinstance(value, torch.Tensor):
            return _found(where, value, self.what)
        wrong_dtype = (value.dtype != self.dtype if self.dtype is not None
                       else self.floating and not (value.is_floating_point() and not value.is_complex()))
        wrong_shape = (self.ndim is not None and value.ndim != self.ndim) or (self.shape is not None and any(
            s is not None and s != v for s, v in zip(self.shape, value.shape)))
        return _found(where, value, self.what) if wrong_dtype or wrong_shape else None


class Dict(Spec):
    """A dict with these keys (``optional`` ones may be absent); other keys are allowed unless
    ``extra=False``."""

    def __init__(self, fields: Mapping[str, Spec], optional: tuple[str, ...] = (), extra: bool = True):
        self.fields, self.optional, self.extra = dict(fields), set(optional), extra
        self.what = "a dict"

    def problem(self, value, where):
        if not isinstance(value, dict):
            return _found(where, value, self.what)
        for key, spec in self.fields.items():
            if key not in value:
                if key not in self.optional:
                    return f"{where}[{key!r}] is missing"
                continue
            found = spec.problem(value[key], f"{where}[{key!r}]")
            if found:
                return found
        if not self.extra:
            unexpected = [k for k in value if k not in self.fields]
            if unexpected:
                return f"{where} has unexpected key(s) {', '.join(repr(k) for k in unexpected[:4])}"
        return None


class MapOf(Spec):
    """A dict of string keys (e.g. a state dict) whose values all fit ``values``."""

    def __init__(self, values: Spec, keys: type = str, min_len: int = 0):
        self.values, self.keys, self.min_len = values, keys, min_len
        self.what = f"a dict of {keys.__name__} keys"

    def problem(self, value, where):
        if not isinstance(value, dict):
            return _found(where, value, self.what)
        if len(value) < self.min_len:
            return f"{where or 'the content'} is empty, expected at least {self.min_len} entr(ies)"
        for key, item in value.items():
            if not isinstance(key, self.keys) or isinstance(key, bool):
                return f"{where} has the key {key!r} ({describe(key)}), expected {self.keys.__name__} keys"
            found = self.values.problem(item, f"{where}[{key!r}]")
            if found:
                return found
        return None


class ListOf(Spec):
    """A list (or tuple) of items that all fit ``items``, of length ``min_len``..``max_len``."""

    def __init__(self, items: Spec, min_len: int = 0, max_len: int | None = None):
        self.items, self.min_len, self.max_len = items, min_len, max_len
        length = (f" of {min_len}" if min_len == max_len else f" of at least {min_len}" if min_len else "")
        self.what = f"a list{length}"

    def problem(self, value, where):
        if not isinstance(value, (list, tuple)):
            return _found(where, value, self.what)
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            return f"{where or 'the content'} has {len(value)} item(s), expected {self.what}"
        for i, item in enumerate(value):
            found = self.items.problem(item, f"{where}[{i}]")
            if found:
                return found
        return None


class OneOf(Spec):
    """The first of ``options`` that fits; when none does, the problem of the first whose type fits
    (a dict for a Dict, ...), else a line listing what was expected."""

    def __init__(self, *options: Spec):
        self.options = options
        self.what = " or ".join(o.what for o in options)

    def problem(self, value, where):
        problems = [o.problem(value, where) for o in self.options]
        if any(p is None for p in problems):
            return None
        for option, found in zip(self.options, problems):
            if not found.endswith(f"expected {option.what}"):  # its type fits; the problem lies deeper
                return found
        return _found(where, value, self.what)


class Satisfies(Spec):
    """A value for which ``test`` returns True (``test`` must not raise); ``what`` describes it."""

    def __init__(self, test: Callable[[Any], bool], what: str):
        self.test, self.what = test, what

    def problem(self, value, where):
        return None if self.test(value) else _found(where, value, self.what)


def _is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


class Plain(Spec):
    """A dict of plain values only (strings, numbers, bools, None, lists and dicts of them), as a
    run's settings are: what can be compared and written as YAML."""

    what = "a dict of plain values (numbers, strings, lists)"

    def problem(self, value, where):
        return None if isinstance(value, dict) and _is_plain(value) else _found(where, value, self.what)


def like(reference: Any) -> Spec:
    """The spec of values built as ``reference`` is: same keys, list lengths, tensor shapes and
    dtypes; numbers may be any finite number, strings any string. Keys whose reference value is a
    bool or None (the option flags that versions of a library add) may be absent."""
    import torch

    if isinstance(reference, dict):
        return Dict({k: like(v) for k, v in reference.items() if isinstance(k, str)},
                    optional=tuple(k for k, v in reference.items() if v is None or isinstance(v, bool)))
    if isinstance(reference, (list, tuple)):
        return _Sequence([like(v) for v in reference])
    if isinstance(reference, torch.Tensor):
        return Tensor(shape=tuple(reference.shape), dtype=reference.dtype)
    if isinstance(reference, bool):
        return Bool()
    if isinstance(reference, (int, float)):
        return Number()
    if isinstance(reference, str):
        return Str()
    if reference is None:
        return Nothing()
    return Anything()


class _Sequence(Spec):
    """A list (or tuple) whose i-th item fits ``items[i]``."""

    def __init__(self, items: list[Spec]):
        self.items = items
        self.what = f"a list of {len(items)}"

    def problem(self, value, where):
        if not isinstance(value, (list, tuple)) or len(value) != len(self.items):
            return _found(where, value, self.what) if not isinstance(value, (list, tuple)) else \
                f"{where} has {len(value)} item(s), expected {len(self.items)}"
        for i, (spec, item) in enumerate(zip(self.items, value)):
            found = spec.problem(item, f"{where}[{i}]")
            if found:
                return found
        return None


def check(value: Any, spec: Spec, path: Any, advice: str, where: str = "") -> Any:
    """``value`` (read from the file ``path``, at ``where`` in it) if it fits ``spec``; else a
    one-line UserError naming the file, the place, what was found and expected, and ``advice``
    (what to do)."""
    found = spec.problem(value, where)
    if found:
        raise UserError(f"{path}: {found}; {advice}")
    return value
