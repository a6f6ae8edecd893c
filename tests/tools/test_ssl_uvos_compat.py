"""tools/ssl_uvos_compat.py: the release's saved masks are read as cluster ids, damaged ones refused."""

import sys

import numpy as np
import pytest
import torch

from tests.helpers.paths import REPO_ROOT
from vos.infra.errors import UserError

sys.path.insert(0, str(REPO_ROOT / "tools"))
import ssl_uvos_compat  # noqa: E402


def masks_collection() -> dict:
    """Two frames of 2x3 patches, 3 slots: frame t's slot scores make the ids below."""
    ids = [np.array([[0, 1, 2], [2, 1, 0]]), np.array([[1, 1, 1], [0, 2, 2]])]
    return {t: [torch.nn.functional.one_hot(torch.from_numpy(i), 3).permute(2, 0, 1).float()[None, :, None]]
            for t, i in enumerate(ids)}, np.stack(ids)


def test_release_masks_are_read_as_ids(tmp_path):
    masks, ids = masks_collection()
    torch.save(masks, tmp_path / "masks.pth")
    assert np.array_equal(ssl_uvos_compat.release_labels(tmp_path / "masks.pth"), ids)


@pytest.mark.parametrize("damage,message", [
    (lambda m: {0: m[0], 1: [m[1][0][0]]}, r"\[1\]\[0\] is a float32 tensor of shape \(3, 1, 2, 3\), expected a tensor "
                                          r"with 5 dimension\(s\)"),
    (lambda m: {0: m[0], 1: [m[1][0][..., :2]]}, r"masks of different sizes \[\(2, 2\), \(2, 3\)\]"),
    (lambda m: {"0": m[0]}, r"has the key '0' \(a str\), expected int keys"),
])
def test_damaged_release_masks_are_one_line_errors(tmp_path, damage, message):
    masks, _ = masks_collection()
    torch.save(damage(masks), tmp_path / "masks.pth")
    with pytest.raises(UserError, match=message) as err:
        ssl_uvos_compat.release_labels(tmp_path / "masks.pth")
    assert str(err.value).startswith(str(tmp_path / "masks.pth")) and "\n" not in str(err.value)
    raw = (tmp_path / "masks.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="cut.pth: damaged: cut short"):
        ssl_uvos_compat.release_labels(tmp_path / "cut.pth")
