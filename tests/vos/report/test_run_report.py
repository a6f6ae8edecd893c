"""Reports of training and test runs (`vos report` of a `vos train` run, `ssl-video report`): curves
from log.csv, the confusion matrix and per-class accuracy from predictions.csv, R@k, bad input."""

import json

import pytest

from ssl_video.cli import main as ssl_main
from tests.helpers.browser import open_report, screenshot_is_blank
from vos.cli import main as vos_main
from vos.infra.outputs import write_marker

# predictions of six test videos: true class -> predicted class
PREDICTIONS = [("A", "A"), ("A", "B"), ("B", "B"), ("B", "B"), ("C", "A"), ("C", "C")]
CONFUSION = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows A, B, C (true), columns predicted


def page_data(out):
    text = (out / "index.html").read_text()
    marker = 'id="report-data">'
    return json.loads(text[text.index(marker) + len(marker):text.rindex("</script>")])


@pytest.fixture
def finetune_run(tmp_path):
    run = tmp_path / "ft"
    run.mkdir()
    write_marker(run, "ssl-video finetune")
    (run / "config.yaml").write_text("epochs: 3\nlr: 0.1\n")
    (run / "log.csv").write_text("step,epoch,lr,loss,train_clip_top1\n2,1,0.1,1.5,40.0\n4,2,0.1,1.0,60.0\n"
                                 "6,3,0.01,0.5,80.0\n")
    (run / "results.json").write_text(json.dumps({"video_top1": 200 / 3, "video_top5": 100.0, "clip_top1": 60.0}))
    (run / "predictions.csv").write_text("video,label,predicted\n" + "".join(
        f"{t}/v{i}.avi,{t},{p}\n" for i, (t, p) in enumerate(PREDICTIONS)))
    return run


def test_a_finetune_run_in_a_browser(browser, finetune_run, tmp_path, capsys):
    assert ssl_main(["report", str(finetune_run), "--out", str(tmp_path / "report")]) == 0
    assert "ssl-video finetune report" in capsys.readouterr().out
    data = page_data(tmp_path / "report")
    assert data["confusion"] == {"classes": ["A", "B", "C"], "matrix": CONFUSION}
    assert data["log"]["loss"] == [1.5, 1.0, 0.5] and data["log"]["lr"] == [0.1, 0.1, 0.01]
    opened = open_report(browser, tmp_path / "report")
    page = opened.page
    assert opened.console_errors == [] and opened.outside_requests == [] and opened.broken_images() == []
    rows = [r.split("\t") for r in page.locator("#per-class-table tr").all_inner_texts()[1:]]
    assert [(r[0], r[3]) for r in rows] == [("A", "50.0"), ("C", "50.0"), ("B", "100.0")]  # worst first
    assert page.locator("#results-table td").first.text_content() == "66.67"
    # the loss curve: three points, falling (SVG y grows downwards)
    points = page.eval_on_selector("g#loss-0 path", "p => p.getAttribute('d')")
    ys = [float(v) for v in points.replace("M", " ").replace("L", " ").split()[1::2]]
    assert len(ys) == 3 and ys[0] < ys[1] < ys[2]
    assert page.locator("#confusion-matrix svg").count() == 1
    assert not screenshot_is_blank(page.screenshot(full_page=True))
    page.close()


def test_a_vos_train_run_and_retrieval_results(tmp_path, capsys):
    run = tmp_path / "train"
    run.mkdir()
    write_marker(run, "vos train")
    (run / "log.csv").write_text("step,loss,loss_kl,loss_ent,lr\n10,2.0,1.5,0.5,0.001\n20,1.0,0.8,0.2,0.0005\n")
    assert vos_main(["report", str(run), "--out", str(tmp_path / "r_train")]) == 0
    data = page_data(tmp_path / "r_train")
    assert data["kind"] == "vos train" and data["log"]["loss_kl"] == [1.5, 0.8]
    assert 'id="loss-2"' in (tmp_path / "r_train" / "index.html").read_text()  # loss, loss_kl, loss_ent

    retrieval = tmp_path / "retrieve"
    retrieval.mkdir()
    (retrieval / "results.json").write_text(json.dumps({"R@1": 25.0, "R@5": 50.0, "R@10": 75.0, "R@20": 100.0}))
    assert ssl_main(["report", str(retrieval), "--out", str(tmp_path / "r_ret")]) == 0
    text = (tmp_path / "r_ret" / "index.html").read_text()
    assert "<th>R@20</th>" in text and "<td>75.00</td>" in text and "Training curves" not in text


@pytest.mark.parametrize("case, message", [
    ("no_columns", "the log needs the columns step and loss (has step, lr)"),
    ("other_package", "its report is `vos report"),
    ("not_a_run", "is no run folder"),
])
def test_bad_runs_are_one_line_errors(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    run.mkdir()
    if case == "no_columns":
        write_marker(run, "ssl-video pretrain")
        (run / "log.csv").write_text("step,lr\n1,0.1\n")
    elif case == "other_package":
        write_marker(run, "vos train")
    assert ssl_main(["report", str(run), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "report").exists() and not (tmp_path / "report.partial").exists()


def test_vos_report_names_the_ssl_video_report_for_its_runs(finetune_run, tmp_path, capsys):
    assert vos_main(["report", str(finetune_run), "--out", str(tmp_path / "report")]) == 2
    assert f"its report is `ssl-video report {finetune_run} --out DIR`" in capsys.readouterr().err
