"""The import paths documented before the infrastructure moved to vos.infra keep working: each
warns once that it is deprecated and gives the very objects of the new path."""

import importlib
import sys

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
from vos.infra.errors import UserError


def _import_fresh(name: str):
    """Import ``name`` anew, so that its module-level warning is raised again."""
    sys.modules.pop(name, None)
    with pytest.deprecated_call(match=rf"{name} is deprecated"):
        return importlib.import_module(name)


@pytest.mark.parametrize("old, new, names", [
    ("vos.config", vos.infra.config, ["load_config", "config_to_dict"]),
    ("vos.distributed", vos.infra.distributed, ["DistContext", "init_distributed", "shard", "barrier",
                                                "all_reduce_sum", "all_gather_objects", "broadcast_buffers",
                                                "cleanup"]),
    ("vos.video_io", vos.infra.video_reader, ["open_video", "discover_videos", "VideoSource", "VIDEO_SUFFIXES",
                                              "decord_available", "natural_key"]),
    ("vos.fileio", vos.infra.fileio, ["atomic_path", "atomic_write_text", "atomic_torch_save", "load_torch_file"]),
    ("vos.progress", vos.infra.progress, ["progress_bar", "LOG_INTERVAL_S"]),
    ("vos.training_log", vos.infra.training_log, ["TrainingLog"]),
    ("vos.config_flags", vos.infra.config_flags, ["config_field", "add_config_arguments", "config_overrides"]),
    ("vos.outputs", vos.infra.outputs, ["MARKER", "check_writable", "check_output_dir", "replace_output_dir",
                                        "check_run_dir", "json_keys_owned", "check_output_file",
                                        "remove_stale_temporaries"]),
    ("vos.outputs", vos.segment_outputs, ["check_segment_jobs", "segment_result_owned", "SEGMENT_COMMAND"]),
])
def test_former_module_paths_give_the_same_objects(old, new, names):
    module = _import_fresh(old)
    for name in names:
        assert getattr(module, name) is getattr(new, name)


def test_vos_error_is_the_user_error(tmp_path):
    errors = _import_fresh("vos.errors")
    assert errors.VosError is UserError
    with pytest.raises(errors.VosError, match="no such file or folder"):  # a user error raised by the new code
        vos.infra.video_reader.open_video(tmp_path / "missing.mp4")


def test_former_overlay_names_give_the_video_writer():
    import vos.overlay

    with pytest.deprecated_call(match="vos.overlay.Mp4Writer is deprecated"):
        assert vos.overlay.Mp4Writer is vos.infra.video_writer.VideoWriter
    with pytest.deprecated_call(match="available_mp4_codec"):
        assert vos.overlay.available_mp4_codec is vos.infra.video_writer.available_mp4_codec
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        vos.overlay.NoSuchName
