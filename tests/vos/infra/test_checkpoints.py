"""vos.infra.checkpoints: the resume check on nested settings, strict weight loading, dict files."""

from pathlib import Path

import pytest
import torch
from torch import nn

from vos.infra.checkpoints import check_resume_settings, flatten_settings, load_checkpoint_dict, load_state_strict
from vos.infra.errors import UserError


def test_flatten_settings():
    assert flatten_settings({"lr": 1, "optim": {"lr": 2, "betas": [0.9, 0.99]}, "loss": {"a": {"b": None}}}) == \
        {"lr": 1, "optim.lr": 2, "optim.betas": [0.9, 0.99], "loss.a.b": None}


def test_resume_check_lists_every_change_and_allows_the_listed_ones():
    saved = {"frames": 3, "optim": {"lr": 0.1, "wd": 0.0}, "out": "a"}
    check_resume_settings(saved, {**saved, "out": "b"}, Path("run/last.pt"), may_differ={"out"})
    changed = {"frames": 4, "optim": {"lr": 0.2, "wd": 0.0}, "out": "b", "new": 1}
    with pytest.raises(UserError) as err:
        check_resume_settings(saved, changed, Path("run/last.pt"), may_differ={"out"})
    assert str(err.value) == ("run/last.pt: cannot resume with different settings (frames: 3 -> 4, new: None -> 1, "
                              "optim.lr: 0.1 -> 0.2); use the original settings or start a new --out")


def test_strict_loading_names_the_first_mismatch_of_each_kind():
    layer = nn.Linear(3, 2)
    with pytest.raises(UserError) as err:
        load_state_strict(layer, {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}, "the head", Path("w.pt"))
    assert str(err.value) == ("w.pt: the weights do not fit the head (1 weight(s) missing, e.g. bias; 1 unexpected, "
                              "e.g. extra; 1 of another shape, e.g. weight (2, 4) where (2, 3) is expected)")
    load_state_strict(layer, {"weight": torch.ones(2, 3), "bias": torch.full((2,), 2.0)}, "the head", Path("w.pt"))
    assert layer.weight.sum().item() == 6 and layer.bias.sum().item() == 4


def test_a_file_without_a_dict_is_refused(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UserError, match=r"list.pt holds a list, not a checkpoint of X$"):
        load_checkpoint_dict(tmp_path / "list.pt", "a checkpoint of X")
    torch.save({"a": torch.ones(1)}, tmp_path / "dict.pt")
    assert load_checkpoint_dict(tmp_path / "dict.pt", "a checkpoint of X")["a"].item() == 1


def test_strict_loading_names_up_to_four_missing_weights():
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(3)))
    with pytest.raises(UserError, match=r"w.pt: the weights do not fit the model \(6 weight\(s\) missing, "
                                        r"e.g. 0.weight, 0.bias, 1.weight, 1.bias\)$"):
        load_state_strict(model, {}, "the model", Path("w.pt"))
