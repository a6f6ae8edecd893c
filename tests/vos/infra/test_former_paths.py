"""Former import paths (vos._former_paths, CHANGELOG.md): the modules of 0.2 that moved into
vos.segment warn once and *are* the new modules; the paths of 0.1 are gone with an error that
names their replacement."""

import importlib
import sys
import warnings

import pytest
import torch

from vos._former_paths import MOVED_MODULES, REMOVED_MODULES


def _import_fresh(name: str):
    """Import ``name`` anew, so that its module-level warning is raised again."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_former_module_paths_of_0_2_are_the_segment_package_modules(old, new):
    with pytest.deprecated_call(match=rf"{old} is deprecated and will be removed in version 0.4; import from {new}"):
        module = _import_fresh(old)
    assert module is importlib.import_module(new) and sys.modules[old] is module
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once imported, it does not warn again
        assert importlib.import_module(old) is module


def test_the_warning_points_at_the_importing_line():
    """As ``import vos.compat`` does (the builtin it calls), so that Python shows it in scripts."""
    sys.modules.pop("vos.compat", None)
    with pytest.deprecated_call() as record:
        __import__("vos.compat")
    assert [w.filename for w in record] == [__file__]


def test_a_name_patched_through_a_moved_path_takes_effect(monkeypatch):
    from vos.segment.objects import clusters_to_objects

    with pytest.deprecated_call():
        masks = _import_fresh("vos.masks")
    labels = torch.tensor([[[0, 0, 0], [0, 1, 0], [0, 0, 0]]])  # cluster 0 on the border, 1 in the centre
    centroids = torch.full((2, 4), 0.25)
    assert clusters_to_objects(labels, centroids)[0, 1, 1] == 1  # the centre is the object
    centre_only = torch.zeros(3, 3, dtype=torch.bool)
    centre_only[1, 1] = True
    monkeypatch.setattr(masks, "border_mask", lambda h, w: centre_only)
    assert clusters_to_objects(labels, centroids)[0, 1, 1] == 0  # the centre now counts as border: background


@pytest.mark.parametrize("old", sorted(REMOVED_MODULES))
def test_former_module_paths_of_0_1_are_gone_with_their_replacement_named(old):
    sys.modules.pop(old, None)
    with pytest.raises(ModuleNotFoundError, match=rf"{old} was removed in version 0.3; import from vos\.infra\."):
        importlib.import_module(old)
    new = REMOVED_MODULES[old].split()[0]
    assert importlib.import_module(new).__name__ == new  # the replacement named exists


def test_other_missing_modules_are_not_answered_for():
    with pytest.raises(ModuleNotFoundError, match="No module named 'vos.no_such_module'"):
        importlib.import_module("vos.no_such_module")
