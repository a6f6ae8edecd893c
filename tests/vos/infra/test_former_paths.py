"""The import paths documented before the infrastructure moved to vos.infra keep working: each
warns once that it is deprecated and gives the very objects of the new path."""

import importlib
import sys
import warnings

import numpy as np
import pytest

import vos.infra.config
import vos.infra.config_flags
import vos.infra.distributed
import vos.infra.fileio
import vos.infra.outputs
import vos.infra.progress
import vos.infra.training_log
import vos.infra.video_reader
import vos.infra.video_writer
import vos.segment_outputs
from tests.helpers.video_files import needs_decord, write_video
from vos.infra.errors import UserError


def _import_fresh(name: str):
    """Import ``name`` anew, so that its module-level warning is raised again."""
    sys.modules.pop(name, None)
    with pytest.deprecated_call(match=rf"{name} is deprecated"):
        return importlib.import_module(name)


@pytest.mark.parametrize("old, new", [
    ("vos.config", vos.infra.config), ("vos.config_flags", vos.infra.config_flags),
    ("vos.distributed", vos.infra.distributed), ("vos.fileio", vos.infra.fileio), ("vos.progress", vos.infra.progress),
    ("vos.training_log", vos.infra.training_log), ("vos.video_io", vos.infra.video_reader),
])
def test_former_module_paths_are_the_new_modules(old, new):
    """The old path is the module itself, so that patching through it reaches the code that runs."""
    module = _import_fresh(old)
    assert module is new and sys.modules[old] is new
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once imported, it does not warn again
        assert importlib.import_module(old) is new


@needs_decord
def test_a_name_patched_through_a_former_path_takes_effect(tmp_path, monkeypatch):
    """0.1's tools/bench_ssl.py forced PyAV this way."""
    video_io = _import_fresh("vos.video_io")
    path = write_video(tmp_path / "clip.mp4", 3)
    monkeypatch.setattr(video_io, "torchcodec_available", lambda: False)  # a name 0.1 did not have
    monkeypatch.setattr(video_io, "decord_available", lambda: False)
    assert video_io.open_video(path).backend == "pyav"


def test_former_outputs_path_gives_the_same_objects():
    module = _import_fresh("vos.outputs")
    for new, names in ((vos.infra.outputs, ["MARKER", "check_writable", "check_output_dir", "replace_output_dir",
                                            "check_run_dir", "json_keys_owned", "check_output_file",
                                            "remove_stale_temporaries"]),
                       (vos.segment_outputs, ["check_segment_jobs", "segment_result_owned", "SEGMENT_COMMAND"])):
        for name in names:
            assert getattr(module, name) is getattr(new, name)


def test_vos_error_is_the_user_error(tmp_path):
    errors = _import_fresh("vos.errors")
    assert errors.VosError is UserError
    with pytest.raises(errors.VosError, match="no such file or folder"):  # a user error raised by the new code
        vos.infra.video_reader.open_video(tmp_path / "missing.mp4")


def test_former_overlay_names_give_the_video_writer(tmp_path):
    import vos.overlay

    with pytest.deprecated_call(match="vos.overlay.Mp4Writer is deprecated"):
        mp4_writer = vos.overlay.Mp4Writer
    assert issubclass(mp4_writer, vos.infra.video_writer.VideoWriter)
    with pytest.deprecated_call(match="available_mp4_codec"):
        assert vos.overlay.available_mp4_codec is vos.infra.video_writer.available_mp4_codec
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        vos.overlay.NoSuchName
    # as in 0.1, Mp4Writer writes an mp4 container whatever the file name
    for name in ("overlay.m4v", "overlay", "overlay.avi"):
        with mp4_writer(tmp_path / name, fps=10, codec="mpeg4") as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
        assert (tmp_path / name).read_bytes()[4:8] == b"ftyp", name  # the first box of an mp4 file


def test_former_effective_gap_is_the_fitting_stride():
    import vos.train.data

    with pytest.deprecated_call(match="effective_gap is deprecated; use vos.infra.video_reader.fitting_stride"):
        effective_gap = vos.train.data.effective_gap
    assert [effective_gap(8, 3, 4), effective_gap(length=100, frames=3, gap=4)] == [3, 4]
