"""tools/bench_paper_setting.py runs (tiny sizes), and its partition digest does not depend on threads."""

import sys
from pathlib import Path

import pytest

from tests.helpers.vos_clips import moving_square_frames, write_frame_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import bench_paper_setting  # noqa: E402


@pytest.mark.slow
def test_rows_of_the_paper_setting_on_a_tiny_input(tmp_path):
    video = write_frame_folder(tmp_path / "clip", moving_square_frames(4, (64, 96)))
    one, two = (bench_paper_setting.run_one(str(video), 4, threads, (32, 48), seed=0) for threads in (1, 2))
    assert one["frames"] == 4 and one["clusters"] >= 1 and one["backbone_cpu_s"] >= 0
    assert one["digest"] == two["digest"]
