"""vos.infra.schema: each spec accepts what it describes and names the place, the found and the
expected value of anything else, in one line."""

import random

import pytest
import torch

from vos.infra.errors import UserError
from vos.infra.schema import (Bool, Dict, Int, ListOf, MapOf, Nothing, Number, OneOf, Plain, Satisfies, Str, Tensor,
                              check, like)

CKPT = Dict({"block": Dict({"dim": Int(min=1), "ratio": Number(min=0.5)}), "state_dict": MapOf(Tensor(floating=True)),
             "name": Str(("a", "b")), "flag": Bool(), "steps": ListOf(Int(), min_len=1, max_len=2)},
            optional=("flag",))


def good():
    return {"block": {"dim": 4, "ratio": 2.0}, "state_dict": {"w": torch.zeros(4, 2)}, "name": "a", "steps": [1],
            "extra": object()}


def damaged(edit):
    ckpt = good()
    edit(ckpt)
    return ckpt


def test_good_values_pass_and_are_returned():
    ckpt = good()
    assert check(ckpt, CKPT, "f.pt", "do this") is ckpt


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["block"].pop("dim"), "f.pt: ['block']['dim'] is missing; do this"),
    (lambda c: c["block"].update(dim="4"), "f.pt: ['block']['dim'] is a str, expected an int >= 1; do this"),
    (lambda c: c["block"].update(dim=True), "['block']['dim'] is a bool, expected an int >= 1"),
    (lambda c: c["block"].update(dim=0), "['block']['dim'] is 0, expected an int >= 1"),
    (lambda c: c["block"].update(ratio=float("nan")), "['block']['ratio'] is a float, expected a finite number >= 0.5"),
    (lambda c: c["state_dict"].update(w=torch.zeros(2, dtype=torch.int64)),
     "['state_dict']['w'] is an int64 tensor of shape (2,), expected a floating-point tensor"),
    (lambda c: c["state_dict"].update(w=torch.zeros(2, dtype=torch.complex64)), "expected a floating-point tensor"),
    (lambda c: c["state_dict"].update({3: torch.zeros(1)}), "['state_dict'] has the key 3 (an int), expected str keys"),
    (lambda c: c.update(name="c"), "['name'] is 'c', expected one of 'a', 'b'"),
    (lambda c: c.update(flag=1), "['flag'] is an int, expected a bool"),
    (lambda c: c.update(steps=[]), "['steps'] has 0 item(s), expected a list of at least 1"),
    (lambda c: c.update(steps=[1, "2"]), "['steps'][1] is a str, expected an int"),
])
def test_damage_is_one_line_naming_place_found_and_expected(edit, message):
    with pytest.raises(UserError) as err:
        check(damaged(edit), CKPT, "f.pt", "do this")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_tensor_shapes_and_dtypes():
    spec = Tensor(shape=(3, None), dtype=torch.uint8)
    assert spec.problem(torch.zeros(3, 7, dtype=torch.uint8), "x") is None
    assert spec.problem(torch.zeros(2, 7, dtype=torch.uint8), "x") == \
        "x is a uint8 tensor of shape (2, 7), expected a uint8 tensor of shape (3, any)"
    assert spec.problem(torch.zeros(3, dtype=torch.uint8), "x").endswith("expected a uint8 tensor of shape (3, any)")
    assert Tensor(ndim=1).problem(torch.zeros(()), "x") == \
        "x is a float32 tensor of shape (), expected a tensor with 1 dimension(s)"


def test_one_of_reports_the_option_whose_type_fits():
    spec = OneOf(Dict({"pos": Int(max=624)}), Satisfies(lambda v: isinstance(v, tuple), "a tuple"))
    assert spec.problem({"pos": 3}, "s") is None and spec.problem((1,), "s") is None
    assert spec.problem({"pos": 700}, "s") == "s['pos'] is 700, expected an int <= 624"
    assert spec.problem([1], "s") == "s is a list, expected a dict or a tuple"


def test_like_follows_the_reference_and_lets_flags_be_absent():
    reference = {"lr": 0.1, "betas": (0.9, 0.999), "foreach": None, "maximize": False, "w": torch.zeros(2)}
    spec = like(reference)
    assert spec.problem({"lr": 1, "betas": [0.5, 0.5], "w": torch.ones(2)}, "") is None
    assert spec.problem({"lr": "0.1", "betas": (0.9, 0.999), "w": torch.zeros(2)}, "") == \
        "['lr'] is a str, expected a finite number"
    assert spec.problem({"lr": 0.1, "betas": (0.9,), "w": torch.zeros(2)}, "") == "['betas'] has 1 item(s), expected 2"
    assert spec.problem({"lr": 0.1, "betas": (0.9, 0.9), "w": torch.zeros(3)}, "") == \
        "['w'] is a float32 tensor of shape (3,), expected a float32 tensor of shape (2,)"
    assert spec.problem({"lr": 0.1, "betas": (0.9, 0.9), "w": torch.zeros(2), "maximize": None}, "") == \
        "['maximize'] is None, expected a bool"


def test_plain_settings_and_nothing():
    assert Plain().problem({"a": [1, {"b": None}], "c": "x"}, "['config']") is None
    assert Plain().problem({"a": torch.zeros(2)}, "['config']").startswith("['config'] is a dict, expected a dict of plain")
    assert Nothing().problem(None, "x") is None and Nothing().problem(0, "x") == "x is an int, expected None"


def test_satisfies_runs_its_test():
    spec = Satisfies(lambda v: isinstance(v, tuple) and len(v) == 3, "a Python RNG state")
    assert spec.problem(random.getstate(), "x") is None
    assert spec.problem([3], "x") == "x is a list, expected a Python RNG state"
