"""tools/bench_segment.py: medians over repeated runs, and a small end-to-end run."""

import json
import math
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools"))
import bench_segment  # noqa: E402


def run(cluster, backbone, peak):
    return {"frames": 50, "mode": "full", "decode": 0.1, "backbone": backbone, "cluster": cluster, "backbone_cpu": backbone,
            "cluster_cpu": cluster, "write": 0.2, "total": backbone + cluster, "clusters": 7,
            "peak_rss_mib": peak, "model_rss_mib": 800, "pipeline_mib": peak - 800}


def test_median_row_takes_medians_of_values_and_of_ratios():
    runs = [run(6.0, 20.0, 1500), run(5.0, 25.0, 1600), run(5.5, 22.0, 1400)]
    row = bench_segment.median_row(runs)
    assert row["cluster"] == 5.5 and row["backbone"] == 22.0 and row["peak_rss_mib"] == 1500
    # ratios 0.30, 0.20, 0.25: the median ratio, not the ratio of the medians (5.5 / 22 = 0.25 too)
    assert row["ratio_wall"] == pytest.approx(0.25) and row["ratio_cpu"] == pytest.approx(0.25)
    line = bench_segment.table_row("50 (median of 3)", row)
    assert line.startswith("| 50 (median of 3) | full | 0.1 | 22 (22) | 5.5 (5.5) | 0.2 | 25% (25%) | 7 | 1500 | 700 |")
    assert math.isnan(bench_segment.ratio(1.0, 0.0))


@pytest.mark.slow
def test_repeated_runs_print_a_median_row(tmp_path):
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(REPO_ROOT / "tools" / "bench_segment.py"), "--frames", "3", "--repeat", "2",
           "--backbone", "test_vit_tiny16", "--resolution", "32", "48", "--threads", "1", "--device", "cpu",
           "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 3 (median of 2) |" in result.stdout
    rows = json.loads(out.read_text())
    assert [r["frames"] for r in rows] == [3, 3] and all(r["clusters"] >= 1 for r in rows)
    for r in rows:  # the phases the GPU command reports, measured on the CPU (no GPU memory there)
        assert r["device"] == "cpu" and r["gpu_peak_mib"] is None
        # one window of 3 frames: its attention is computed once, kept for the assignment pass
        assert r["attention_calls"] == 1 and 0 <= r["attention"] <= r["cluster"]
        assert r["clustering"] == pytest.approx(r["cluster"] - r["attention"], abs=0.02)
        assert r["decode"] > 0 and r["backbone"] > 0 and r["write"] > 0
