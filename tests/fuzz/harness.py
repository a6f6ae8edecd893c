"""Damaged files derived from good ones, and the rule every reader must follow on them.

A *reader* is one entry point of the toolkit that reads one kind of file. Its good file is built
once; every example draws one mutation (Hypothesis, derandomised: the same examples on every run)
and applies it either to the parsed content, before writing it out again, or to the file's bytes:

* content: a key (or list item) removed, a value replaced by one of another type, a tensor
  reshaped, emptied or of another dtype, a number or string changed, an extra key, and a pickled
  payload whose unpickling would create a marker file (torch files; a ``!!python`` tag in YAML);
* bytes: the file cut at an offset, bytes flipped, a run of bytes zeroed, garbage appended.

The rule (:func:`read_damaged`): the reader returns, or raises :class:`UserError` with one line
that names the file; any other exception fails the test (Hypothesis shows the mutation); the
payload's marker never appears; with ``unchanged``, a refused file leaves its folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from vos.infra.errors import UserError

# How many examples per reader in CI (the whole fuzz suite well under a minute on 2 cores); a longer
# run: pytest tests/fuzz --fuzz-examples 500
DEFAULT_EXAMPLES = 20

# outcomes per reader: "refused" (one-line UserError) or "accepted" (read without error)
OUTCOMES: dict[str, Counter] = defaultdict(Counter)


def fuzz_settings(request, default: int = DEFAULT_EXAMPLES) -> settings:
    """Derandomised settings (the same examples every run, no example database) with ``default``
    examples, or ``--fuzz-examples N``."""
    n = request.config.getoption("--fuzz-examples") or default
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, print_blob=False,
                    phases=(Phase.explicit, Phase.generate, Phase.shrink),
                    suppress_health_check=list(HealthCheck))


class Payload:
    """Unpickling this creates ``marker`` (builtins.open in write mode): what a hostile file does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# values of other types put in place of a value; which ones a format can hold
PLAIN_VALUES = [None, True, 0, -1, 7, 2 ** 40, 2.5, -0.0, "", "x", [], [1, "a"], {}, {"k": 1}]
FLOAT_VALUES = [math.nan, math.inf]
TEXT_TOKENS = ["", "x", "-1", "0", "1.5", "\u00b2", "9" * 30, "a b", "\ufeff", "../x", "NaN"]


def tensor_values() -> list[torch.Tensor]:
    return [torch.zeros(()), torch.zeros(2, 3), torch.arange(3), torch.zeros(2, dtype=torch.complex64),
            torch.zeros(0), torch.ones(4, dtype=torch.bool)]


@dataclass
class Format:
    """How a reader's file is written from its content, and what its content may hold."""

    name: str  # "torch" | "json" | "yaml" | "text" | "bytes"
    write: Callable[[Any, Path, Path], None]  # (content, path, payload marker)

    def others(self) -> list:
        if self.name == "torch":
            return PLAIN_VALUES + FLOAT_VALUES + tensor_values()
        if self.name == "json":
            return PLAIN_VALUES
        if self.name == "yaml":
            return PLAIN_VALUES + FLOAT_VALUES + [(1, 2)]
        if self.name in ("safetensors", "npy", "png"):
            return tensor_values()
        return TEXT_TOKENS  # text and csv


def _write_torch(obj, path, marker):
    torch.save(obj, path)


def _write_json(obj, path, marker):
    path.write_text(json.dumps(obj))


def _write_yaml(obj, path, marker):
    text = yaml.safe_dump(obj, sort_keys=False)
    path.write_text(text.replace("__PAYLOAD__", f"!!python/object/apply:builtins.open ['{marker}', 'w']"))


def _write_text(lines, path, marker):
    path.write_text("".join(" ".join(tokens) + "\n" for tokens in lines))


def _write_csv(lines, path, marker):
    path.write_text("".join(",".join(tokens) + "\n" for tokens in lines))


def _write_safetensors(state, path, marker):
    from safetensors.torch import save_file

    save_file(state, str(path))


def _write_npy(content, path, marker):
    """content {"array": tensor}: the array as np.save writes it; anything else as an object array
    (whose loading would unpickle it)."""
    value = content.get("array") if isinstance(content, dict) else content
    if isinstance(value, torch.Tensor) and not value.is_complex() and value.dtype != torch.bool:
        array = value.numpy()
    else:
        array = np.empty(1, dtype=object)
        array[0] = Payload(marker) if value is None else value
    np.save(path, array, allow_pickle=True)


def _write_png(content, path, marker):
    from PIL import Image

    Image.fromarray(content["labels"].numpy()).save(path, format="PNG")


TORCH = Format("torch", _write_torch)
JSON = Format("json", _write_json)
YAML = Format("yaml", _write_yaml)
TEXT = Format("text", _write_text)  # content: a list of lines, each a list of tokens
CSV = Format("csv", _write_csv)
SAFETENSORS = Format("safetensors", _write_safetensors)
NPY = Format("npy", _write_npy)  # content: {"array": tensor}
PNG = Format("png", _write_png)  # content: {"labels": uint8 tensor (H, W)}
CONTENT_KINDS = ("remove", "replace", "tensor", "number", "string", "extra", "payload")
BYTE_KINDS = ("truncate", "flip", "zero", "append")


# ---------------------------------------------------------------------------------------------
# content mutations
# ---------------------------------------------------------------------------------------------

def _children(node) -> list:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, (list, tuple)):
        return list(range(len(node)))
    return []


def _draw_path(data, root) -> tuple:
    """A random walk from the root: a child at each level, going deeper with probability 1/2, so that
    top-level keys are drawn as often as deep ones whatever the size of a state dict."""
    path, node = [], root
    while True:
        keys = _children(node)
        if not keys:
            return tuple(path)
        key = data.draw(st.sampled_from(keys), label="key")
        path.append(key)
        node = node[key]
        if not _children(node) or not data.draw(st.booleans(), label="deeper"):
            return tuple(path)


def _with_child(node, key, value, remove: bool = False):
    """A copy of the container ``node`` with ``node[key]`` replaced by ``value`` (or removed)."""
    if isinstance(node, dict):
        new = node.copy()
        if remove:
            del new[key]
        else:
            new[key] = value
        return new
    items = list(node)
    if remove:
        del items[key]
    else:
        items[key] = value
    return type(node)(items) if isinstance(node, tuple) and not hasattr(node, "_fields") else items


def _at(root, path: tuple):
    for key in path:
        root = root[key]
    return root


def _replaced(root, path: tuple, value, remove: bool = False):
    if len(path) == 1:
        return _with_child(root, path[0], value, remove)
    return _with_child(root, path[0], _replaced(root[path[0]], path[1:], value, remove))


def _tensor_variants(t: torch.Tensor) -> list[torch.Tensor]:
    flat = t.reshape(-1)
    out = [flat, t.reshape(1, *t.shape), flat[: max(0, flat.numel() - 1)], torch.zeros((0,) + tuple(t.shape[1:])),
           torch.cat([flat, flat[:1]]) if flat.numel() else torch.zeros(3)]
    if t.ndim >= 2:
        out.append(t.transpose(0, 1).contiguous())
    if t.ndim >= 1 and t.shape[0] > 1:
        out.append(t[: t.shape[0] // 2])
    for dtype in (torch.int64, torch.float16, torch.bool, torch.complex64, torch.uint8):
        out.append(t.to(dtype) if not t.is_complex() else t.real.to(dtype))
    return out


def draw_content_mutation(data, good, fmt: Format, marker: Path):
    """(description, damaged content) for one content mutation of ``good``."""
    kinds = [k for k in CONTENT_KINDS if not (k == "payload" and fmt.name not in ("torch", "yaml", "npy"))
             and not (k == "tensor" and fmt.name not in ("torch", "safetensors", "npy", "png"))]
    kind = data.draw(st.sampled_from(kinds), label="kind")
    path = _draw_path(data, good)
    if not path:  # an empty container: replace it whole
        return "replace the content", data.draw(st.sampled_from(fmt.others()))
    value = _at(good, path)
    where = "".join(f"[{k!r}]" for k in path)
    if kind == "remove":
        return f"remove {where}", _replaced(good, path, None, remove=True)
    if kind == "tensor" and isinstance(value, torch.Tensor):
        new = data.draw(st.sampled_from(_tensor_variants(value)), label="tensor")
        return f"{where}: {tuple(value.shape)} {value.dtype} -> {tuple(new.shape)} {new.dtype}", _replaced(good, path, new)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        new = data.draw(st.sampled_from([value + 1, -value - 1, 0, value * 1000 + 1, 2 ** 62, 0.5, -1e300]))
        return f"{where}: {value!r} -> {new!r}", _replaced(good, path, new)
    if kind == "string" and isinstance(value, str):
        new = data.draw(st.sampled_from(["", value + "x", value.upper(), "x" * 300, "\x00", "\u00e9" + value]))
        return f"{where}: {value!r} -> {new!r}", _replaced(good, path, new)
    if kind == "extra":
        parent_path = path[:-1]
        parent = _at(good, parent_path)
        extra = data.draw(st.sampled_from(fmt.others()), label="extra value")
        if isinstance(parent, dict):
            key = data.draw(st.sampled_from(["extra", "zz.extra", 12345] if fmt.name != "text" else ["extra"]))
            if fmt.name in ("json", "yaml"):
                key = str(key)
            new_parent = parent.copy()
            new_parent[key] = extra
        else:
            new_parent = type(parent)(list(parent) + [extra]) if isinstance(parent, tuple) else list(parent) + [extra]
        new = _replaced(good, parent_path, new_parent) if parent_path else new_parent
        return f"extra item in {''.join(f'[{k!r}]' for k in parent_path) or 'the top level'}", new
    if kind == "payload":
        payload = Payload(marker) if fmt.name == "torch" else None if fmt.name == "npy" else "__PAYLOAD__"
        return f"{where}: a pickled payload", _replaced(good, path, payload)
    others = [v for v in fmt.others() if type(v) is not type(value)] or fmt.others()  # safetensors: only tensors
    new = data.draw(st.sampled_from(others), label="other value")
    return f"{where}: {type(value).__name__} -> {type(new).__name__}", _replaced(good, path, new)


# ---------------------------------------------------------------------------------------------
# byte mutations
# ---------------------------------------------------------------------------------------------

def draw_byte_mutation(data, good: bytes) -> tuple[str, bytes]:
    kind = data.draw(st.sampled_from(BYTE_KINDS), label="kind")
    n = len(good)
    if kind == "truncate":
        cut = data.draw(st.one_of(st.sampled_from([0, 1, 8, n // 4, n // 2, n - 22, n - 1]),
                                  st.integers(0, n - 1)), label="offset")
        cut = min(max(cut, 0), n - 1)
        return f"cut at {cut} of {n} bytes", good[:cut]
    if kind == "flip":
        offsets = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8), label="offsets")
        bits = data.draw(st.integers(1, 255), label="xor")
        damaged = bytearray(good)
        for i in offsets:
            damaged[i] ^= bits
        return f"bytes {offsets} xor {bits}", bytes(damaged)
    if kind == "zero":
        start = data.draw(st.integers(0, n - 1), label="start")
        length = data.draw(st.sampled_from([1, 16, 512, n]), label="length")
        return f"zero {length} bytes from {start}", good[:start] + bytes(min(length, n - start)) + good[start + length:]
    tail = data.draw(st.sampled_from([b"\x00", b"garbage\n", bytes(range(256))]), label="tail")
    return f"append {len(tail)} bytes", good + tail


# ---------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def kept_rng_states():
    """Readers that restore a run's RNG states change the process's; the tests after them must not see it."""
    import random

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def read_damaged(reader: str, read: Callable[[], Any], path: Path, mutation: str, marker: Path,
                 unchanged: Path | None = None, names: tuple[str, ...] = ()) -> Any:
    """Call ``read()`` on the damaged file ``path`` under the rule above; returns what it returned,
    or None when it refused the file. ``names``: other strings that may name the file in the line
    (e.g. its folder, for a file found inside a folder the user named)."""
    before = snapshot(unchanged) if unchanged is not None else None
    try:
        with kept_rng_states():
            result = read()
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), f"{reader}: {mutation}: a message of several lines: {message}"
        assert any(n in message for n in (str(path), path.name, *names)), \
            f"{reader}: {mutation}: the message does not name the file {path}: {message}"
        if before is not None:
            assert snapshot(unchanged) == before, f"{reader}: {mutation}: a refused file changed {unchanged}"
        OUTCOMES[reader]["refused"] += 1
        result = None
    else:
        OUTCOMES[reader]["accepted"] += 1
    assert not marker.exists(), f"{reader}: {mutation}: the payload ran"
    return result


def report_table() -> str:
    """The outcomes of this run per reader, as a Markdown table."""
    lines = ["| reader | damaged files | refused (one line, exit 2) | read (damage harmless) | tracebacks |",
             "|---|---:|---:|---:|---:|"]
    for reader in sorted(OUTCOMES):
        c = OUTCOMES[reader]
        lines.append(f"| {reader} | {c['refused'] + c['accepted']} | {c['refused']} | {c['accepted']} | 0 |")
    return "\n".join(lines)
