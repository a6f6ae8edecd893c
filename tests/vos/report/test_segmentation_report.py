"""`vos report` of `vos segment` outputs: the object timeline (an id switch and a vanishing object of
a constructed result), the run summary, the 10,000-frame timeline, and a real `vos segment` run."""

import json

import numpy as np
import pytest

from tests.helpers.browser import open_report, screenshot_is_blank
from tests.helpers.vos_clips import TINY, moving_square_frames, write_frame_folder
from vos.cli import main
from vos.infra.outputs import write_marker
from vos.palette import write_label_png
from vos.report.segmentation import (ObjectTrack, frame_statistics, id_switches, lane_profile, read_track,
                                     run_summary, timeline_svg)

T, H, W = 40, 48, 64
SWITCH = 20  # id 1 becomes id 2 here (the same square goes on moving)
SETTINGS = {"key_every": 10, "mode": "auto", "full_max_frames": 100, "chunk_frames": 30, "compat": None,
            "stride": 1, "max_frames": None}


def switching_labels(t: int) -> np.ndarray:
    """A square moving right: id 1 before frame SWITCH, id 2 from it on; a second square, id 3,
    present in frames 0-9 and 30-39 only."""
    labels = np.zeros((H, W), dtype=np.uint8)
    x = 4 + t
    labels[10:22, x:x + 12] = 1 if t < SWITCH else 2
    if t < 10 or t >= 30:
        labels[30:40, 40:50] = 3
    return labels


@pytest.fixture(scope="module")
def segment_out(tmp_path_factory):
    """A `vos segment` batch output of one video, 'clip', with the labels of :func:`switching_labels`."""
    out = tmp_path_factory.mktemp("seg_report") / "seg"
    folder = out / "clip"
    folder.mkdir(parents=True)
    for t in range(T):
        write_label_png(folder / f"{t:05d}.png", switching_labels(t))
    write_marker(folder, "vos segment", video=str(out / "gone.mp4"), frames=T, settings=SETTINGS, mode="full",
                 timings={"decode": 0.5, "backbone": 1.0, "backbone_cpu": 1.9, "cluster": 0.25, "write": 0.25})
    return out


@pytest.fixture(scope="module")
def report(segment_out, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_report_out") / "report"
    assert main(["report", str(segment_out), "--out", str(out), "--quiet"]) == 0
    return out


def test_the_track_finds_the_id_switch_and_the_vanishing_object(segment_out):
    track = read_track(segment_out / "clip", progress=False)
    assert track.ids == [1, 3, 2] and track.frames[0] == "00000"
    assert track.spans(1) == [(0, 19)] and track.spans(2) == [(20, 39)] and track.spans(3) == [(0, 9), (30, 39)]
    assert track.areas[5, 1] == 144 and track.areas[5, 3] == 100
    assert track.centroids[0, 1] == pytest.approx([15.5, 9.5])  # rows 10..21, columns 4..15
    switches = id_switches(track)
    assert [(s["from"], s["to"], s["frame"]) for s in switches] == [(1, 2, SWITCH)]
    assert switches[0]["distance"] == pytest.approx(1 / np.hypot(H, W))  # moved one column


def test_frame_statistics_and_lane_profile_equal_their_plain_definitions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (17, 23)).astype(np.uint8)
    labels[labels == 3] = 0  # an absent label
    areas, centroids = frame_statistics(labels, 6)
    for k in range(6):
        ys, xs = np.nonzero(labels == k)
        assert areas[k] == len(ys)
        if len(ys):
            assert centroids[k] == pytest.approx([ys.mean(), xs.mean()], abs=1e-12)
        else:
            assert np.isnan(centroids[k]).all()
    lane = rng.random(2513) * (rng.random(2513) < 0.1)
    edges, peak = lane_profile(lane, bins=100)
    assert peak.tolist() == [lane[a:b].max() for a, b in zip(edges[:-1], edges[1:])]
    assert edges[0] == 0 and edges[-1] == 2513 and (np.diff(edges) >= 25).all()


def test_the_summary_is_the_runs(segment_out):
    from vos.infra.outputs import read_marker

    summary = run_summary(read_marker(segment_out / "clip"), read_track(segment_out / "clip", progress=False))
    assert summary["frames"] == T and summary["objects"] == 3 and summary["mode"] == "full"
    assert summary["chunks"] == 1 and summary["key frames"] == 4  # frames 0, 10, 20, 30
    assert summary["seconds"] == 2.0 and summary["frames/s"] == 20.0  # wall stages only, not the CPU time
    chunked = run_summary({"settings": {**SETTINGS, "mode": "chunked"}}, read_track(segment_out / "clip", False))
    assert chunked["mode"] == "chunked" and chunked["chunks"] == 2 and chunked["key frames"] == 3 + 1  # 30 + 10


def test_a_10000_frame_timeline_stays_one_small_picture_where_one_frame_shows():
    t = 10_000
    areas = np.zeros((t, 4))
    areas[:6000, 1] = 50.0
    areas[6000:, 2] = 50.0       # an id switch at frame 6000
    areas[7777, 3] = 5.0         # an object seen in one frame only
    track = ObjectTrack([f"{i:05d}" for i in range(t)], 100, 100, areas, np.full((t, 4, 2), 50.0))
    edges, peak = lane_profile(areas[:, 3])
    assert len(peak) == 800 and edges[-1] == t and np.count_nonzero(peak) == 1
    assert edges[np.flatnonzero(peak)[0]] <= 7777 < edges[np.flatnonzero(peak)[0] + 1]
    svg = timeline_svg(track, id_switches(track))
    assert len(svg) < 250_000 and all(f'id="lane-{k}"' in svg for k in (1, 2, 3))
    assert "1→2" in svg


def test_the_page_in_a_browser_shows_the_switch_on_the_timeline(browser, report):
    opened = open_report(browser, report)
    page = opened.page
    assert opened.console_errors == [] and opened.outside_requests == []
    assert opened.image_count() == 1 and opened.broken_images() == []  # the animated preview
    lanes = {k: page.locator(f"g#lane-{k}").bounding_box() for k in (1, 2, 3)}
    axis = page.locator(".timeline svg g#axes_1").bounding_box()
    # lane 1 fills frames 0..19 and lane 2 frames 20..39 of the 40-frame axis: they meet at the switch
    x_switch = lanes[1]["x"] + lanes[1]["width"]
    assert lanes[2]["x"] == pytest.approx(x_switch, abs=1.0)
    assert lanes[1]["width"] == pytest.approx(lanes[2]["width"], abs=1.0)
    assert lanes[1]["y"] < lanes[3]["y"] < lanes[2]["y"]  # lanes in order of first appearance
    # id 3 is seen at both ends (frames 0-9 and 30-39): its lane spans the whole axis, in two runs
    assert lanes[3]["width"] == pytest.approx(lanes[1]["width"] + lanes[2]["width"], abs=1.0)
    assert "frame 00020: id 1 ends, id 2 begins" in " ".join(page.locator(".switches li").all_text_contents())
    data = opened.data()["videos"][0]
    assert data["summary"]["frames"] == T and data["switches"][0]["frame"] == SWITCH
    assert [len(lane["spans"]) for lane in data["lanes"]] == [1, 2, 1]
    assert axis["width"] > 0 and lanes[1]["width"] == pytest.approx(axis["width"] * SWITCH / T, rel=0.1)
    assert not screenshot_is_blank(page.screenshot(full_page=True))
    page.close()


def test_a_real_vos_segment_run_is_reported(tmp_path, capsys):
    frames = write_frame_folder(tmp_path / "video" / "square", moving_square_frames(6, (48, 64)))
    assert main(["segment", str(frames), "--out", str(tmp_path / "seg"), *TINY, "--resolution", "48", "64", "--key-every", "4"]) == 0
    assert main(["report", str(tmp_path / "seg" / "square"), "--out", str(tmp_path / "report"), "--quiet"]) == 0
    text = (tmp_path / "report" / "index.html").read_text()
    data = json.loads(text[text.index('id="report-data">') + len('id="report-data">'):text.rindex("</script>")])
    summary = data["videos"][0]["summary"]
    assert summary["frames"] == 6 and summary["mode"] == "full" and summary["seconds"] > 0
    assert summary["key frames"] == 2  # a key frame every 4 frames: 0, 4
    assert "masks only" not in text  # the preview shows the frames, read again from the input
    assert (tmp_path / "report" / "assets" / "preview_square.webp").stat().st_size > 0
