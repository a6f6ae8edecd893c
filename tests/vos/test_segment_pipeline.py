"""The pipeline steps around the backbone and the clustering: resizing frame by frame, upsampling
labels by repetition, result PNGs at a low zlib level; and tools/bench_pipeline.py end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.helpers.paths import REPO_ROOT
from tests.helpers.vos_clips import moving_square_frames, write_mp4
from vos.models.backbone import preprocess_frames
from vos.palette import davis_palette, read_label_png, write_label_png
from vos.segment.conventions import SSL_UVOS, conventions
from vos.segment.segmenter import backbone_inputs
from vos.segment.writing import RESULT_PNG_COMPRESS_LEVEL, nearest_repeats, upsample_labels


@pytest.mark.parametrize("grid, size", [((20, 30), (480, 854)), ((20, 30), (720, 1280)), ((45, 80), (1080, 1920)),
                                        ((7, 5), (3, 11)), ((3, 3), (3, 3)), ((1, 1), (5, 2))])
def test_upsampled_labels_are_those_of_nearest_interpolation(grid, size):
    objects = torch.randint(0, 21, (3, *grid), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    reference = F.interpolate(objects[:, None].float(), size=size, mode="nearest")[:, 0].to(torch.uint8).numpy()
    up = upsample_labels(objects, *size)
    assert up.dtype == np.uint8 and up.shape == (3, *size)
    np.testing.assert_array_equal(up, reference)


def test_nearest_repeats_count_every_output_row_once():
    # 20 rows to 720: 36 each; 30 columns to 1280: 42.67 on average, 42 or 43 each
    assert (nearest_repeats(20, 720) == 36).all()
    assert nearest_repeats(30, 1280).sum() == 1280 and set(nearest_repeats(30, 1280)) == {42, 43}
    assert list(nearest_repeats(7, 3)) == [1, 0, 1, 0, 1, 0, 0]  # shrinking skips source rows


@pytest.mark.parametrize("compat", [None, SSL_UVOS])
def test_frame_by_frame_inputs_equal_the_batch_preprocessing(compat):
    frames = moving_square_frames(5, size=(90, 160))
    rules = conventions(compat)
    batch = preprocess_frames(frames, (64, 96), "cpu", rules.normalisation, rules.resize)
    torch.testing.assert_close(backbone_inputs(frames, (64, 96), torch.device("cpu"), rules), batch, rtol=0, atol=0)


def test_result_pngs_are_davis_palette_pngs_with_the_same_pixels(tmp_path):
    labels = np.zeros((120, 200), np.uint8)
    labels[10:60, 20:90], labels[70:110, 100:190] = 1, 7
    write_label_png(tmp_path / "fast.png", labels, RESULT_PNG_COMPRESS_LEVEL)
    write_label_png(tmp_path / "default.png", labels)
    with Image.open(tmp_path / "fast.png") as image:
        assert image.mode == "P" and image.format == "PNG"
        np.testing.assert_array_equal(np.array(image.getpalette(), np.uint8).reshape(-1, 3), davis_palette())
    np.testing.assert_array_equal(read_label_png(tmp_path / "fast.png"), labels)
    np.testing.assert_array_equal(read_label_png(tmp_path / "default.png"), labels)
    assert (tmp_path / "fast.png").read_bytes() != (tmp_path / "default.png").read_bytes()  # another zlib level


@pytest.mark.slow
def test_bench_pipeline_runs_both_processes_and_reports_their_ratio(tmp_path):
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(6))
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(REPO_ROOT / "tools" / "bench_pipeline.py"), str(video), "--frames", "5",
           "--mode", "full", "--backbone", "test_vit_tiny16", "--resolution", "32", "48", "--backend", "pyav",
           "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = json.loads(out.read_text())
    assert row["frames"] == 5 and "5 frames" in row["summary"][0]
    assert set(row["stages"]) >= {"decode", "backbone", "cluster", "write"}
    for process in ("whole", "bare"):
        assert row[process]["cpu"] > 0 and row[process]["peak_rss_mib"] > 50 and row[process]["wall"] > 0
    assert row["ratio_wall"] == pytest.approx(row["whole"]["wall"] / row["bare"]["wall"], rel=0.01)
    assert "| 5 | full | pyav |" in result.stdout
