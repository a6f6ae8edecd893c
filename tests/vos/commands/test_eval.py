"""`vos eval davis|ytvis|synth` through the CLI dispatcher: outputs (table, CSVs, JSON), stale files,
one-line errors with exit status 2.

The dispatcher is called with the ``eval`` entry of ``vos.cli.COMMANDS`` only, so these tests do not
depend on other commands' modules being present in this branch.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.davis_reference import make_davis_root, random_blobs, write_results
from tests.helpers.paths import REPO_ROOT
from vos.cli import COMMANDS, run_cli
from vos.palette import write_label_png

GLOBAL_KEYS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


def vos(argv):
    return run_cli("vos", {"eval": COMMANDS["eval"]}, argv)


@pytest.fixture
def davis(tmp_path):
    rng = np.random.default_rng(1)
    gt = {"a": random_blobs(rng, 5, (40, 60), 2, max_radius=10), "b": random_blobs(rng, 6, (40, 60), 1, max_radius=10)}
    root = make_davis_root(tmp_path / "davis", gt)
    pred = {k: np.where(rng.random(v.shape) < 0.1, 0, v) for k, v in gt.items()}
    return root, write_results(tmp_path / "res", pred)


def test_davis_prints_table_writes_official_csvs_and_json(davis, tmp_path, capsys):
    root, results = davis
    out_json = tmp_path / "out" / "scores.json"
    assert vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--json", str(out_json),
                "--workers", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "one Hungarian assignment per sequence" in printed
    data = json.loads(out_json.read_text())
    assert set(GLOBAL_KEYS) <= set(data) and all(0 <= data[k] <= 1 for k in GLOBAL_KEYS if "Decay" not in k)
    assert sorted(data["per_object"]) == ["a_1", "a_2", "b_1"]
    assert set(data["per_object"]["a_1"]) == {"J", "F"}
    with open(results / "global_results-val.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == GLOBAL_KEYS and rows[1] == [f"{data[k]:.3f}" for k in GLOBAL_KEYS]
    with open(results / "per-sequence_results-val.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert [r[0] for r in rows[1:]] == ["a_1", "a_2", "b_1"]
    assert rows[1][1] == f"{data['per_object']['a_1']['J']:.3f}"
    assert f"{np.mean([v['J'] for v in data['per_object'].values()]):.6f}" == f"{data['J-Mean']:.6f}"


def test_stale_csvs_are_recomputed_and_replaced(davis, capsys):
    root, results = davis
    (results / "global_results-val.csv").write_text("J&F-Mean\n0.999\n")
    (results / "per-sequence_results-val.csv").write_text("stale\n")
    assert vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "replaced existing" in captured.err
    assert "0.999" not in (results / "global_results-val.csv").read_text()
    assert "stale" not in (results / "per-sequence_results-val.csv").read_text()


def test_frame_matching_says_it_is_not_official(davis, tmp_path, capsys):
    root, results = davis
    out_json = tmp_path / "f.json"
    assert vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--matching", "frame",
                "--json", str(out_json), "--workers", "1", "--quiet", "--csv-dir", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv" / "global_results-val.csv").is_file()
    assert not (results / "global_results-val.csv").exists()
    assert "NOT the official protocol" in capsys.readouterr().out
    assert "NOT the official protocol" in json.loads(out_json.read_text())["protocol"]


@pytest.mark.parametrize("break_it, message", [
    (lambda r: write_label_png(r / "a" / "00002.png", np.full((40, 60), 25, np.uint8)),
     "sequence a, frame 00002: result index 25 exceeds the maximum of 20 proposals"),
    (lambda r: (r / "b" / "00003.png").unlink(), "sequence b, frame 00003:"),
    (lambda r: write_label_png(r / "a" / "00001.png", np.zeros((30, 60), np.uint8)), "sequence a, frame 00001:"),
])
def test_bad_results_give_one_line_errors_and_exit_2(davis, capsys, break_it, message):
    root, results = davis
    break_it(results)
    code = vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--workers", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vos eval: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (results / "global_results-val.csv").exists()  # nothing half-written


def test_rgb_results_and_unknown_sequence(davis, capsys):
    from PIL import Image

    root, results = davis
    assert vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--sequences", "zzz"]) == 2
    assert "unknown sequence(s) zzz" in capsys.readouterr().err
    Image.new("RGB", (60, 40)).save(results / "a" / "00000.png")
    assert vos(["eval", "davis", "--davis-root", str(root), "--results", str(results), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sequence a, frame 00000: " in err and "a/00000.png: label PNG is RGB, not indexed" in err and len(err.strip().splitlines()) == 1


def test_synth_json_has_davis_and_object_keys(davis, tmp_path, capsys):
    root, results = davis
    out_json = tmp_path / "synth.json"
    assert vos(["eval", "synth", str(root), "--results", str(results), "--json", str(out_json),
                "--workers", "1", "--quiet"]) == 0
    data = json.loads(out_json.read_text())
    for key in GLOBAL_KEYS + ["FG-ARI", "FG-ARI-per-frame", "mIoU", "mBO"]:
        assert isinstance(data[key], float) and -1 <= data[key] <= 1
    assert "video-level" in data["variants"]["FG-ARI"]
    printed = capsys.readouterr().out
    assert "FG-ARI-per-frame" in printed and "Hungarian" in printed


def test_ytvis_from_png_folders(tmp_path, capsys):
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, 6:9, 6:9] = 2
    write_results(tmp_path / "yt" / "Annotations", {"vid": gt})
    results = write_results(tmp_path / "res", {"vid": gt * 4})
    out_json = tmp_path / "yt.json"
    assert vos(["eval", "ytvis", "--root", str(tmp_path / "yt"), "--results", str(results), "--json", str(out_json),
                "--workers", "1", "--quiet"]) == 0
    data = json.loads(out_json.read_text())
    assert {k: data[k] for k in ("FG-ARI", "FG-ARI-per-frame", "mIoU", "mBO")} == \
        {"FG-ARI": 1.0, "FG-ARI-per-frame": 1.0, "mIoU": 1.0, "mBO": 1.0}
    assert vos(["eval", "ytvis", "--root", str(tmp_path / "nope"), "--results", str(results)]) == 2
    assert "Annotations" in capsys.readouterr().err


def test_tools_script_is_a_thin_wrapper(davis):
    root, results = davis
    env = {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "eval_davis.py"), "--davis-root", str(root),
                           "--results", str(results), "--workers", "1", "--quiet", "--year", "2015"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "invalid choice: 2015" in done.stderr
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "eval_davis.py"), "--davis-root", str(root),
                           "--results", str(results), "--workers", "1", "--quiet"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "J&F-Mean" in done.stdout and (results / "global_results-val.csv").is_file()


def test_undefined_fg_ari_is_null_in_json(tmp_path):
    gt = np.zeros((2, 10, 10), np.uint8)  # a video without any object
    write_results(tmp_path / "yt" / "Annotations", {"empty": gt})
    results = write_results(tmp_path / "res", {"empty": gt + 1})
    out_json = tmp_path / "yt.json"
    assert vos(["eval", "ytvis", "--root", str(tmp_path / "yt"), "--results", str(results), "--json", str(out_json),
                "--workers", "1", "--quiet"]) == 0
    data = json.loads(out_json.read_text())
    assert data["FG-ARI"] is None and data["FG-ARI-per-frame"] is None and data["mIoU"] is None
    assert data["per_video"]["empty"]["mIoU"] == []
