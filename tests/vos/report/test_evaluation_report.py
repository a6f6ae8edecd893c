"""`vos report` of scored results: numbers checked against hand-computed J&F and against `vos eval`,
and the page checked in a real browser (one bar per sequence with its value, worst first)."""

import json
import shutil

import numpy as np
import pytest

from tests.helpers.browser import open_report, screenshot_is_blank
from vos.cli import main
from vos.palette import read_label_png, write_label_png
from vos.synth import make_synthetic_dataset

FRAMES = 10
# results made from the ground truth: J&F per sequence by hand (objects 2 and 3 are exact: J = F = 1)
EXPECTED = {"synth_0000": 1.0,          # ids permuted: the unsupervised matching undoes it
            "synth_0001": 2.0 / 3.0,    # object 1 erased in every frame: its J = F = 0
            "synth_0002": 2.5 / 3.0}    # object 1 erased in the first 5 of 10 frames: its J = F = 0.5


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """(synth root, results folder, vos eval synth JSON) for the three sequences of EXPECTED."""
    base = tmp_path_factory.mktemp("eval_report")
    root = base / "synth"
    make_synthetic_dataset(root, videos=3, frames=FRAMES, objects=3, size=(64, 96), seed=3, progress=False)
    results = base / "results"
    truth = root / "Annotations_unsupervised" / "480p"
    for seq in EXPECTED:
        (results / seq).mkdir(parents=True)
        for t, png in enumerate(sorted((truth / seq).glob("*.png"))):
            labels = read_label_png(png)
            assert set(np.unique(labels)) == {0, 1, 2, 3}  # every object in every frame: J = 0 when erased
            if seq == "synth_0000":
                labels = np.array([0, 3, 1, 2], dtype=np.uint8)[labels]
            elif seq == "synth_0001" or (seq == "synth_0002" and t < FRAMES // 2):
                labels = np.where(labels == 1, 0, labels)
            write_label_png(results / seq / png.name, labels)
    assert main(["eval", "synth", str(root), "--results", str(results), "--json", str(base / "eval.json"),
                 "--csv-dir", str(base), "--workers", "1", "--quiet"]) == 0
    return root, results, json.loads((base / "eval.json").read_text())


@pytest.fixture(scope="module")
def report(scored, tmp_path_factory):
    root, results, _ = scored
    out = tmp_path_factory.mktemp("eval_report_out") / "report"
    assert main(["report", str(results), "--davis-root", str(root), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    return out


def page_data(out):
    text = (out / "index.html").read_text()
    start = text.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">')
    return json.loads(text[start:text.index("</script>", start)])


def test_scores_are_the_hand_computed_ones_worst_first(scored, report):
    _, _, evaluated = scored
    data = page_data(report)
    assert [s["name"] for s in data["sequences"]] == ["synth_0001", "synth_0002", "synth_0000"]
    for row in data["sequences"]:
        assert row["score"] == pytest.approx(EXPECTED[row["name"]], abs=1e-9)
        # the same as vos eval's per-object rows, averaged per sequence
        objects = [v for k, v in evaluated["per_object"].items() if k.startswith(row["name"] + "_")]
        assert row["J"] == pytest.approx(np.mean([o["J"] for o in objects]), abs=1e-12)
        assert row["F"] == pytest.approx(np.mean([o["F"] for o in objects]), abs=1e-12)
    for key in ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall"):
        assert data["global"][key] == pytest.approx(evaluated[key], abs=1e-12)
    assert data["objects_global"]["FG-ARI"] == pytest.approx(evaluated["FG-ARI"], abs=1e-12)
    assert (report / ".vos-output.json").is_file() and len(list((report / "assets").glob("strip_*.jpg"))) == 3


def test_the_page_in_a_browser_shows_one_bar_per_sequence_with_its_value(browser, report, tmp_path):
    opened = open_report(browser, report)
    page = opened.page
    assert opened.console_errors == [] and opened.outside_requests == []
    assert opened.image_count() == 3 and opened.broken_images() == []
    bars = page.eval_on_selector_all('#sequence-chart g[id^="seq-bar-"]', """groups => groups.map(g => {
        const r = g.querySelector('path').getBoundingClientRect();
        return {title: g.querySelector('title').textContent, left: r.left, width: r.width, top: r.top};
    })""")
    assert len(bars) == 3
    assert [b["title"].split(":")[0] for b in sorted(bars, key=lambda b: b["top"])] == \
        ["synth_0001", "synth_0002", "synth_0000"]  # worst on top
    full = max(b["width"] for b in bars)  # J&F 1 spans the whole axis (0..1)
    for bar in bars:
        name = bar["title"].split(":")[0]
        assert bar["width"] / full == pytest.approx(EXPECTED[name], abs=0.01)
        assert bar["left"] == pytest.approx(bars[0]["left"], abs=0.5)
    # global J&F-Mean by hand: the mean over the 9 objects of (J + F) / 2 = (3 + 2 + 2.5) / 9
    assert page.locator("#global-table td").first.text_content() == f"{7.5 / 9:.3f}"
    shot = page.screenshot(full_page=True)
    assert not screenshot_is_blank(shot)
    page.close()


def test_results_without_pngs_and_unknown_folders_are_one_line_errors(scored, tmp_path, capsys):
    root, _, _ = scored
    empty = tmp_path / "empty_results"
    (empty / "synth_0000").mkdir(parents=True)
    assert main(["report", str(empty), "--davis-root", str(root), "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no result PNGs" in err
    assert main(["report", str(empty), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a folder written by `vos segment`" in err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    assert not (tmp_path / "r1.partial").exists()


def test_an_existing_folder_that_is_no_report_is_kept(scored, report, tmp_path, capsys):
    root, results, _ = scored
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["report", str(results), "--davis-root", str(root), "--out", str(foreign), "--quiet"]) == 2
    assert "holds no .vos-output.json of `vos report`" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
    inside = results / "report"
    assert main(["report", str(results), "--davis-root", str(root), "--out", str(inside), "--quiet"]) == 2
    assert "lies inside the input" in capsys.readouterr().err and not inside.exists()
    again = tmp_path / "again"
    shutil.copytree(report, again)  # an earlier report is replaced
    (again / "assets" / "stale.jpg").write_bytes(b"old")
    assert main(["report", str(results), "--davis-root", str(root), "--out", str(again), "--workers", "1",
                 "--quiet"]) == 0
    assert not (again / "assets" / "stale.jpg").exists() and (again / "index.html").is_file()


def test_a_youtube_vis_report_has_fg_ari_per_video_worst_first(tmp_path):
    """Two videos of two objects: results equal to the ground truth (FG-ARI 1) and results that merge
    both objects into one segment (FG-ARI 0: one predicted cluster explains nothing of two)."""
    from PIL import Image

    root, results = tmp_path / "ytvis", tmp_path / "results"
    truth = np.zeros((24, 32), dtype=np.uint8)
    truth[2:10, 2:12], truth[12:22, 16:30] = 1, 2
    for video, predicted in (("exact", truth), ("merged", (truth > 0).astype(np.uint8))):
        for sub in ("Annotations", "JPEGImages"):
            (root / sub / video).mkdir(parents=True)
        (results / video).mkdir(parents=True)
        for frame in ("00000", "00005"):
            write_label_png(root / "Annotations" / video / f"{frame}.png", truth)
            if (video, frame) != ("merged", "00005"):  # a frame without its image: grey, and the page says so
                Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(root / "JPEGImages" / video / f"{frame}.jpg")
            write_label_png(results / video / f"{frame}.png", predicted)
    assert main(["report", str(results), "--root", str(root), "--out", str(tmp_path / "report"), "--workers", "1",
                 "--quiet"]) == 0
    data = page_data(tmp_path / "report")
    assert data["score"] == "FG-ARI"
    # merged: the one segment (220 px) is matched to the larger object (140 px) for mIoU, the smaller one
    # (80 px) gets IoU 0; mBO lets both objects take it
    assert [(s["name"], s["FG-ARI"], s["mIoU"], s["mBO"]) for s in data["sequences"]] == [
        ("merged", 0.0, pytest.approx(0.5 * 140 / 220), pytest.approx(0.5 * (80 + 140) / 220)),
        ("exact", 1.0, 1.0, 1.0)]
    assert len(list((tmp_path / "report" / "assets").glob("strip_*.jpg"))) == 2
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.count("grey instead") == 1 and f"{root / 'JPEGImages' / 'merged'}: grey instead" in page
