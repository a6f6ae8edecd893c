"""A few damaged files through the command line: exit status 2, one line on stderr naming the file,
nothing written (test_fuzz_readers.py fuzzes the same readers through their library entry points)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssl_video.cli import main as ssl_main
from tests.fuzz.harness import Payload, snapshot
from tests.fuzz.test_fuzz_readers import finetune_file, vos_block_file, ytvis_annotations
from tests.helpers.vos_train import SIZE, make_frame_folders
from vos.cli import main as vos_main

TINY = ["--backbone", "test_vit_tiny16", "--weights", "random", "--resolution", *map(str, SIZE)]
TRAIN = ["--gap", "2", "--iterations", "1", "--frames", "3", "--lr", "1e-3", "--min-lr", "1e-4"]
LOSS_YAML = ("loss:\n  queries: 4\n  semantic: {positives: 3, negatives: 8}\n"
             "  motion: {positives: 2, negatives: 6}\n")  # k-counts that fit the 20 patches of a tiny frame


def one_line_error(cli, argv, capsys, names: str) -> str:
    code = cli([str(a) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "Traceback" not in captured.err, captured.err
    assert names in errors[0], errors[0]
    return errors[0]


def _without(ckpt: dict, *path) -> dict:
    ckpt = {**ckpt, path[0]: dict(ckpt[path[0]])} if len(path) > 1 else dict(ckpt)
    del (ckpt[path[0]] if len(path) > 1 else ckpt)[path[-1]]
    return ckpt


def damaged_blocks(tmp_path, marker):
    """(file, what the line must say) for a few kinds of damage to a vos.block checkpoint."""
    good = vos_block_file()
    torch.save(good, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    wrong_shape = {**good, "state_dict": {**good["state_dict"], "qkv.weight": torch.zeros(3, 64)}}
    wrong_type = {**good, "state_dict": {**good["state_dict"], "norm1.weight": "x"}}
    files = {"no_dim.pt": _without(good, "block", "dim"), "shape.pt": wrong_shape, "type.pt": wrong_type,
             "payload.pt": {**good, "iteration": Payload(marker)}, "iteration.pt": {**good, "iteration": "5"}}
    for name, content in files.items():
        torch.save(content, tmp_path / name)
    return [(tmp_path / "cut.pt", "damaged: cut short"),
            (tmp_path / "no_dim.pt", "['block']['dim'] is missing"),
            (tmp_path / "shape.pt", "qkv.weight (3, 64) where (192, 64) is expected"),
            (tmp_path / "type.pt", "['state_dict']['norm1.weight'] is a str, expected a floating-point tensor"),
            (tmp_path / "payload.pt", "refused: the file asks to run Python code"),
            (tmp_path / "iteration.pt", "['iteration'] is a str, expected an int")]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Two 4-frame videos, and beside them tiny.yaml (the loss settings of a tiny training run)."""
    root = tmp_path_factory.mktemp("frames")
    (root.parent / f"{root.name}.yaml").write_text(LOSS_YAML)
    return make_frame_folders(root, videos=2, frames=4)


def train_args(frames) -> list:
    return [*TINY, *TRAIN, "--config", frames.parent / f"{frames.name}.yaml"]


def test_vos_segment_block_and_vos_train_init_block(tmp_path, frames, capsys):
    marker = tmp_path / "payload-ran"
    for path, says in damaged_blocks(tmp_path, marker):
        line = one_line_error(vos_main, ["segment", frames / "vid_0", "--out", tmp_path / "seg", "--block", path,
                                         *TINY], capsys, str(path))
        assert says in line, line
        line = one_line_error(vos_main, ["train", "--data", frames, "--out", tmp_path / "run", "--init-block", path,
                                         *train_args(frames)], capsys, str(path))
        assert says in line, line
    assert not (tmp_path / "seg").exists() and not (tmp_path / "run").exists() and not marker.exists()


def test_a_missing_init_block_gets_its_own_advice(tmp_path, frames, capsys):
    line = one_line_error(vos_main, ["train", "--data", frames, "--out", tmp_path / "run", "--init-block",
                                     tmp_path / "nope.pt", *train_args(frames)], capsys, "nope.pt")
    assert "--init-block" in line and "omit --init-block to start from random weights" in line
    assert "omit --block" not in line
    line = one_line_error(vos_main, ["segment", frames / "vid_0", "--out", tmp_path / "seg", "--block",
                                     tmp_path / "nope.pt", *TINY], capsys, "nope.pt")
    assert "omit --block for the training-free mode" in line


def test_vos_train_resume_and_config(tmp_path, frames, capsys):
    run = tmp_path / "run"
    assert vos_main([str(a) for a in ["train", "--data", frames, "--out", run, *train_args(frames)]]) == 0
    capsys.readouterr()
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[:-100])
    before = snapshot(run)
    line = one_line_error(vos_main, ["train", "--out", run, "--resume"], capsys, str(run / "last.pt"))
    assert "damaged: cut short" in line and snapshot(run) == before
    (run / "last.pt").write_bytes(data)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["rng"][0]["torch"] = ckpt["rng"][0]["torch"][:100]
    torch.save(ckpt, run / "last.pt")
    before = snapshot(run)
    line = one_line_error(vos_main, ["train", "--out", run, "--resume"], capsys, str(run / "last.pt"))
    assert "['rng'][0]['torch'] is a uint8 tensor of shape (100,), expected a torch RNG state (a uint8 tensor of " \
        "shape (5056,) that torch accepts)" in line
    assert snapshot(run) == before
    ckpt["rng"][0]["torch"] = torch.zeros(5056, dtype=torch.uint8)  # the right size, but no state torch accepts
    torch.save(ckpt, run / "last.pt")
    before = snapshot(run)
    line = one_line_error(vos_main, ["train", "--out", run, "--resume"], capsys, str(run / "last.pt"))
    assert "['rng'][0]['torch'] is a uint8 tensor of shape (5056,), expected a torch RNG state" in line
    assert snapshot(run) == before
    (tmp_path / "bad.yaml").write_bytes(b"frames: [3, 4]\n")
    line = one_line_error(vos_main, ["train", "--data", frames, "--out", tmp_path / "new", "--config",
                                     tmp_path / "bad.yaml"], capsys, "bad.yaml")
    assert "bad.yaml.frames: expected int, got [3, 4]" in line and not (tmp_path / "new").exists()


def test_vos_eval_damaged_results_and_annotations(tmp_path, capsys):
    from tests.helpers.davis_reference import make_davis_root, write_results
    from tests.fuzz.test_fuzz_readers import _labels

    root = make_davis_root(tmp_path / "DAVIS", {"blobs": _labels()})
    results = write_results(tmp_path / "results", {"blobs": _labels()})
    png = results / "blobs" / "00001.png"
    png.write_bytes(png.read_bytes()[:40])
    line = one_line_error(vos_main, ["eval", "davis", "--davis-root", root, "--results", results, "--workers", "1",
                                     "--quiet", "--json", tmp_path / "scores.json"], capsys, str(png))
    assert "cannot read label PNG" in line and not (tmp_path / "scores.json").exists()
    (root / "ImageSets" / "2017" / "val.txt").write_bytes(b"\xff\xfe\x00blobs")
    one_line_error(vos_main, ["eval", "davis", "--davis-root", root, "--results", results, "--workers", "1",
                              "--quiet"], capsys, "val.txt: not a text file")
    annotations = ytvis_annotations()
    del annotations["videos"][1]["height"]
    (tmp_path / "train.json").write_text(json.dumps(annotations))
    write_results(tmp_path / "yt", {f"vid{v}": _labels() for v in (1, 2)})
    line = one_line_error(vos_main, ["eval", "ytvis", "--root", tmp_path, "--results", tmp_path / "yt",
                                     "--annotations", tmp_path / "train.json", "--workers", "1", "--quiet"],
                          capsys, "train.json")
    assert "['videos'][1]['height'] is missing" in line


def test_ssl_video_finetune_pretrained(tmp_path, ssl_synth_data, capsys):
    synth = ssl_synth_data(classes=2, videos_per_class=3, frames=8, seed=1)
    data = ["--data-root", synth, "--split-dir", synth / "splits", "--frames", "4", "--frame-stride", "1",
            "--crop", "32", "--workers", "0", "--epochs", "1", "--out", tmp_path / "ft"]
    good = finetune_file()
    torch.save(good, tmp_path / "good.pt")
    raw = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) - 300])
    torch.save({**good, "classes": "ab"}, tmp_path / "classes.pt")
    model = dict(good["model"])
    model["fc.weight"] = torch.zeros(2)
    torch.save({**good, "model": model}, tmp_path / "fc.pt")
    for name, says in [("cut.pt", "damaged: cut short"), ("classes.pt", "['classes'] is a str, expected a list"),
                       ("fc.pt", "['model']['fc.weight'] is a float32 tensor of shape (2,), expected a "
                                 "floating-point tensor with 2 dimension(s)")]:
        line = one_line_error(ssl_main, ["finetune", *data, "--pretrained", tmp_path / name], capsys, name)
        assert says in line, line
    assert not (tmp_path / "ft").exists()


def test_feature_cache_damage_is_rebuilt_or_refused_with_the_way_out(tmp_path, frames, capsys, caplog):
    cache = tmp_path / "cache"
    argv = ["train", "--data", frames, "--out", tmp_path / "run", "--cache-features", cache, *train_args(frames)]
    assert vos_main([str(a) for a in argv]) == 0
    good = np.load(cache / "000001.npy")
    raw = (cache / "000001.npy").read_bytes()
    (cache / "000001.npy").write_bytes(raw[: len(raw) // 3])
    argv[4] = tmp_path / "run2"
    assert vos_main([str(a) for a in argv]) == 0
    assert "000001.npy: damaged: " in caplog.text and "computing it again" in caplog.text
    assert np.array_equal(np.load(cache / "000001.npy"), good)
    (cache / "meta.json").write_text((cache / "meta.json").read_text()[:-10])
    argv[4] = tmp_path / "run3"
    line = one_line_error(vos_main, argv, capsys, "meta.json")
    assert "damaged: cut short" in line and f"delete {cache} to rebuild the cache" in line
    assert not (tmp_path / "run3").exists()
