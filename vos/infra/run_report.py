"""The report of a training or test run of ``vos train`` or ``ssl-video`` (pretrain, finetune, test,
retrieve): loss and learning-rate curves from ``log.csv`` (:mod:`vos.infra.training_log`),
accuracy per epoch, the test results, a confusion matrix and per-class accuracy (from
``predictions.csv``), and retrieval R@k.

Shared by both packages, so it lives in the infrastructure and knows the runs only by their files.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from vos.infra.errors import UserError
from vos.infra.outputs import MARKER, read_marker, resolve_path
from vos.infra.report_page import (Provenance, ReportAssets, line_chart, matrix_chart, newest_mtime, render,
                                   write_report)

LOG_CSV = "log.csv"
RESULTS_JSON = "results.json"
PREDICTIONS_CSV = "predictions.csv"  # ssl_video.finetune.PREDICTIONS_CSV
RUN_COMMANDS = ("vos train", "ssl-video pretrain", "ssl-video finetune")  # run folders carry their marker
# results folders of `ssl-video test --out` and `retrieve --out` have no marker: known by their JSON keys
TEST_KEYS = ("video_top1", "video_top5", "clip_top1")


def run_kind(folder: Path) -> str:
    """The command that wrote ``folder``: one of :data:`RUN_COMMANDS`, "ssl-video test" or
    "ssl-video retrieve"; one line naming what is missing otherwise."""
    marker = read_marker(folder)
    if marker is not None and marker["command"] in RUN_COMMANDS:
        return marker["command"]
    results = read_results(folder)
    if results is not None and all(k in results for k in TEST_KEYS):
        return "ssl-video test"
    if results is not None and any(str(k).startswith("R@") for k in results):
        return "ssl-video retrieve"
    if marker is not None:
        raise UserError(f"{folder} was written by `{marker['command']}`, not by a training or test command")
    raise UserError(f"{folder} is no run folder: neither a {MARKER} of {', '.join(RUN_COMMANDS)} nor a "
                   f"{RESULTS_JSON} of `ssl-video test|retrieve --out`")


def read_results(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / RESULTS_JSON).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_log(path: Path) -> dict[str, np.ndarray]:
    """``log.csv`` as columns of floats (NaN for an empty cell); needs ``step`` and a loss column."""
    if not path.is_file():
        raise UserError(f"{path}: no training log; a run folder holds the {LOG_CSV} its command writes")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0].keys()) if rows else []
    losses = [c for c in fields if "loss" in c]
    if "step" not in fields or not losses:
        raise UserError(f"{path}: the log needs the columns step and loss (has {', '.join(fields) or 'none'}); "
                       "give the log.csv of a training run")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan
    return {c: np.array([number(r.get(c)) for r in rows]) for c in fields}


def per_epoch(log: dict[str, np.ndarray], column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, mean of ``column`` over each epoch's rows)."""
    epochs = log["epoch"]
    keys = np.unique(epochs[np.isfinite(epochs)])
    return keys, np.array([np.nanmean(log[column][epochs == e]) for e in keys])


def read_predictions(path: Path) -> tuple[list[str], np.ndarray]:
    """(class names sorted, confusion counts (C, C), rows true class, columns predicted) of ``predictions.csv``."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"label", "predicted"} <= set(rows[0]):
        raise UserError(f"{path}: needs the columns video,label,predicted (written by ssl-video finetune/test)")
    classes = sorted({r["label"] for r in rows} | {r["predicted"] for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for r in rows:
        matrix[index[r["label"]], index[r["predicted"]]] += 1
    return classes, matrix


def curves(log: dict[str, np.ndarray]) -> list[dict]:
    """The run's plots: losses and learning rate over steps, accuracies per epoch (or per step),
    any other logged number over steps."""
    step = log["step"]
    losses = [c for c in log if "loss" in c]
    accuracies = [c for c in log if any(t in c for t in ("acc", "top1", "top5"))]
    others = [c for c in log if c not in ("step", "epoch", "lr", *losses, *accuracies)]
    plots = [{"title": "Loss", "svg": line_chart({c: (step, log[c]) for c in losses}, "step", "loss",
                                                 log_y=len(losses) > 1, gid_prefix="loss-")}]
    if "lr" in log:
        plots.append({"title": "Learning rate", "svg": line_chart({"lr": (step, log["lr"])}, "step", "learning rate",
                                                                  gid_prefix="lr-")})
    if accuracies:
        if "epoch" in log:
            series = {c: per_epoch(log, c) for c in accuracies}
            plots.append({"title": "Accuracy per epoch", "svg": line_chart(series, "epoch", "accuracy",
                                                                           gid_prefix="acc-", integer_x=True)})
        else:
            plots.append({"title": "Accuracy", "svg": line_chart({c: (step, log[c]) for c in accuracies}, "step",
                                                                 "accuracy", gid_prefix="acc-")})
    if others:
        plots.append({"title": "Other logged values", "svg": line_chart({c: (step, log[c]) for c in others}, "step",
                                                                        "value", gid_prefix="other-")})
    return plots


def training_run_page(folder: Path, assets: ReportAssets, report_command: str,
                      expected: tuple[str, ...] = ()) -> str:
    """The page of the run in ``folder``; ``expected`` the commands the caller reports on (another
    package's run is one line naming the right report command)."""
    folder = Path(folder)
    kind = run_kind(folder)
    if expected and kind not in expected:
        tool = kind.split()[0]
        raise UserError(f"{folder} is a run of `{kind}`; its report is `{tool} report {folder} --out DIR`")
    settings = {}
    if (folder / "config.yaml").is_file():
        settings = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    data: dict = {"kind": kind}
    plots, log_rows = [], 0
    if (folder / LOG_CSV).exists() or kind in RUN_COMMANDS:
        log = read_log(folder / LOG_CSV)
        plots = curves(log)
        log_rows = len(log["step"])
        data["log"] = {c: [None if not np.isfinite(v) else float(v) for v in values] for c, values in log.items()}
    results = read_results(folder) or {}
    confusion = None
    if (folder / PREDICTIONS_CSV).is_file():
        classes, matrix = read_predictions(folder / PREDICTIONS_CSV)
        per_class = [{"class": c, "videos": int(matrix[i].sum()), "correct": int(matrix[i, i]),
                      "accuracy": 100.0 * matrix[i, i] / matrix[i].sum() if matrix[i].sum() else float("nan")}
                     for i, c in enumerate(classes)]
        confusions = Counter({(classes[i], classes[j]): int(matrix[i, j])
                              for i in range(len(classes)) for j in range(len(classes)) if i != j and matrix[i, j]})
        confusion = {"svg": matrix_chart(matrix, classes, "predicted class", "true class"),
                     "per_class": sorted(per_class, key=lambda r: (r["accuracy"], r["class"])),
                     "top": confusions.most_common(10)}
        data["confusion"] = {"classes": classes, "matrix": matrix.tolist()}
    data["results"] = results
    recall = {k: v for k, v in results.items() if str(k).startswith("R@")}
    provenance = Provenance(f"{kind} run" if kind in RUN_COMMANDS else f"{kind} results", folder, command=kind,
                            settings=settings, written=newest_mtime(folder / n for n in (LOG_CSV, RESULTS_JSON, MARKER)),
                            report_command=report_command)
    return render("training_run.html.j2", title=f"{kind}: {folder.name}", provenance=provenance, plots=plots,
                  log_rows=log_rows, results={k: v for k, v in results.items() if k not in recall and
                                              isinstance(v, (int, float))},
                  recall=recall, confusion=confusion, data=data)


def write_run_report(folder: str | Path, out: str | Path, report_command: str, expected: tuple[str, ...],
                     overwrite: bool = False, command_line: str = "") -> tuple[str, Path]:
    """Write the report of the run in ``folder`` to ``out/index.html`` (marked as ``report_command``'s);
    returns (the run's command, the page's path). ``expected``: see :func:`training_run_page`."""
    folder = resolve_path(Path(folder))
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a run folder (--out of a training or test command)")
    kind = run_kind(folder)
    page = write_report(out, report_command, lambda assets: training_run_page(
        folder, assets, command_line or report_command, expected), [folder], overwrite)
    return kind, page
