"""tools/bench_decode.py: the two access patterns read the frames they say, with every backend."""

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.paths import REPO_ROOT
from tests.helpers.video_files import DECODERS, decoded_index, write_video

sys.path.insert(0, str(REPO_ROOT / "tools"))
import bench_decode  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("bench") / "clip.mp4", 12)


@pytest.mark.parametrize("backend", DECODERS)
def test_patterns_decode_what_they_count(clip, backend):
    sequential = bench_decode.chunks(clip, backend, frames=10, chunk=4, pause=0.0)
    assert sequential["frames"] == 10 and sequential["backend_used"] == backend and sequential["seconds"] > 0
    random_clips = bench_decode.clips(clip, backend, count=3, clip_frames=4, clip_stride=2)
    assert random_clips["frames"] == 12 and random_clips["backend_used"] == backend


def test_clips_are_the_same_for_every_backend(clip, monkeypatch):
    """Seeded starts: each backend is timed on the same frames (here, read back through PyAV)."""
    from vos.infra import video_reader

    seen = []
    real = video_reader.VideoSource.read_frames
    monkeypatch.setattr(video_reader.VideoSource, "read_frames",
                        lambda self, indices: seen.append(list(indices)) or real(self, indices))
    bench_decode.clips(clip, "pyav", count=3, clip_frames=4, clip_stride=2)
    first = seen[:]
    seen.clear()
    bench_decode.clips(clip, "pyav", count=3, clip_frames=4, clip_stride=2)
    assert seen == first and all(np.diff(indices).tolist() == [2, 2, 2] for indices in first)
    frames = video_reader.open_video(clip, backend="pyav").read_frames(first[0])
    assert [decoded_index(f) for f in frames] == first[0]


@pytest.mark.slow  # a child process importing torch
def test_command_prints_a_row_per_measurement(clip):
    out = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "bench_decode.py"), str(clip), "--backends", "pyav",
                          "--patterns", "clips", "--clips", "2", "--clip-frames", "3"],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    rows = [line for line in out.stdout.splitlines() if line.startswith("| clip.mp4")]
    assert [row.split(" | ")[1:4] for row in rows] == [["clips", "pyav", "6"]]
