"""Every file reader of both packages, fed damaged files derived from good ones (tests/fuzz/harness.py).

Each test builds its good file once, then Hypothesis draws one mutation per example (derandomised:
the same examples on every run; ``--fuzz-examples N`` for a longer run, ``--fuzz-report`` for the
table in docs/io.md). The readers are called through their library entry points; test_fuzz_cli.py
checks a few through the command line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, reject
from hypothesis import strategies as st

from tests.fuzz.harness import (CSV, JSON, NPY, PNG, SAFETENSORS, TEXT, TORCH, YAML, draw_byte_mutation,
                                draw_content_mutation, fuzz_settings, read_damaged)


def fuzz(request, reader: str, fmt, good, scenario, read, examples: int | None = None, unchanged=None,
         names=None):
    """Run the examples of one reader. ``scenario(folder) -> path`` lays out a fresh copy of what the
    reader needs in ``folder`` and returns where the damaged file goes; ``read(folder, path)`` calls
    the reader; ``unchanged(folder)``: a folder a refused file must leave as it was; ``names(folder)``:
    other strings that may name the file in the error line."""
    with tempfile.TemporaryDirectory() as first:
        path = scenario(Path(first))
        if fmt is not None:
            fmt.write(good, path, Path(first) / "marker")
        good_bytes = path.read_bytes()
    extra = {} if examples is None else {"default": examples}

    @fuzz_settings(request, **extra)
    @given(st.data())
    def run(data):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            marker = folder / "payload-ran"
            path = scenario(folder)
            if fmt is None or data.draw(st.booleans(), label="bytes"):
                mutation, damaged = draw_byte_mutation(data, good_bytes)
                path.write_bytes(damaged)
            else:
                mutation, content = draw_content_mutation(data, good, fmt, marker)
                try:
                    fmt.write(content, path, marker)
                except Exception:  # a content this format cannot hold (a str in a safetensors file)
                    reject()
            read_damaged(reader, lambda: read(folder, path), path, mutation, marker,
                         unchanged=unchanged(folder) if unchanged else None,
                         names=names(folder) if names else ())

    run()


# ---------------------------------------------------------------------------------------------
# block checkpoints and DINO weights
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def tiny_vit_state(patch: int) -> dict:
    from vos.models.backbone import BACKBONES, _create_vit

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(patch)
        return _create_vit(BACKBONES[f"test_vit_tiny{patch}"], pretrained=False).state_dict()


@lru_cache(maxsize=None)
def vos_block_file() -> dict:
    from vos.models.block import SpatioTemporalBlock, block_checkpoint

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = SpatioTemporalBlock(64, 4)
    return block_checkpoint(block, "test_vit_tiny16", "random(seed=0)", 5)


@lru_cache(maxsize=None)
def release_file() -> dict:
    """The SSL-UVOS release's layout, with the tiny patch-8 ViT as encoder."""
    from vos.models.block import RELEASE_BLOCK_KEYS, RELEASE_BLOCK_PREFIX, RELEASE_NUM_HEADS, SpatioTemporalBlock

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        block = SpatioTemporalBlock(64, RELEASE_NUM_HEADS).state_dict()
    theirs = {ours: t for t, ours in RELEASE_BLOCK_KEYS.items()}
    state = {f"encoder.{k}": v for k, v in tiny_vit_state(8).items()}
    for key, value in block.items():
        prefix = next(p for p in theirs if key.startswith(p))
        state[RELEASE_BLOCK_PREFIX + theirs[prefix] + key[len(prefix):]] = value
    return {"model_state_dict": state, "iteration": 60000, "loss": 0.25}


def read_block(folder, path):
    from vos.models.block import read_block_checkpoint

    return read_block_checkpoint(path).build()


def test_vos_block_checkpoints(request):
    fuzz(request, "block checkpoint (vos.block)", TORCH, vos_block_file(), lambda d: d / "block.pt", read_block)


def test_ssl_uvos_release_checkpoints(request):
    fuzz(request, "block checkpoint (SSL-UVOS release)", TORCH, release_file(), lambda d: d / "checkpoint_dino-s-8.pth",
         read_block)


def load_weights(patch: int):
    def read(folder, path):
        from vos.models.backbone import BACKBONES, _create_vit, load_backbone_weights

        load_backbone_weights(_create_vit(BACKBONES[f"test_vit_tiny{patch}"], pretrained=False), path)
    return read


def test_dino_weights_timm_state_dict(request):
    fuzz(request, "DINO weights (timm state dict)", TORCH, tiny_vit_state(16), lambda d: d / "vit.pth", load_weights(16))


def test_dino_weights_full_dino_checkpoint(request):
    state = tiny_vit_state(16)
    full = {"student": {f"module.backbone.{k}": v for k, v in state.items()} | {"module.head.last_layer.weight": torch.ones(8, 4)},
            "teacher": {f"backbone.{k}": v for k, v in state.items()} | {"head.last_layer.weight": torch.ones(8, 4)},
            "epoch": 100, "args": argparse.Namespace(arch="vit_small", patch_size=16),
            "dino_loss": {"center": torch.zeros(1, 8)}}
    fuzz(request, "DINO weights (full DINO checkpoint)", TORCH, full, lambda d: d / "checkpoint.pth", load_weights(16))


def test_dino_weights_safetensors(request):
    fuzz(request, "DINO weights (safetensors)", SAFETENSORS, dict(tiny_vit_state(16)), lambda d: d / "vit.safetensors",
         load_weights(16))


def test_dino_weights_from_the_release(request):
    fuzz(request, "DINO weights (SSL-UVOS release encoder)", TORCH, release_file(), lambda d: d / "release.pth",
         load_weights(8))


# ---------------------------------------------------------------------------------------------
# ssl-video checkpoints: this toolkit's and FAME's, and run checkpoints
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def finetune_file() -> dict:
    from ssl_video.models import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        backbone = build_backbone("r3d_tiny")
        fc = torch.nn.Linear(backbone.feature_dim, 2)
    model = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    model.update({f"fc.{k}": v for k, v in fc.state_dict().items()})
    return {"kind": "finetune", "config": {"arch": "r3d_tiny", "lr": 0.1, "frames": 4}, "model": model,
            "classes": ["a", "b"]}


def read_ssl_weights(folder, path):
    from ssl_video.evaluation import classifier_from_weights
    from ssl_video.pretrained import load_backbone, read_weights

    weights = read_weights(path)
    load_backbone(path)
    if weights.classifier:
        classifier_from_weights(weights, ["a", "b"], path)


def test_ssl_video_checkpoints(request):
    fuzz(request, "ssl-video checkpoint (--pretrained)", TORCH, finetune_file(), lambda d: d / "last.pt",
         read_ssl_weights)


def _fame_subset(ckpt: dict, keep: int) -> dict:
    """FAME's layout and key names with the first ``keep`` tensors of each part (the reader renames
    and checks them the same way; the full I3D is 12M weights)."""
    parts: dict[str, list] = {}
    for key in ckpt["state_dict"]:
        parts.setdefault(key.split(".")[1] if key.count(".") > 1 else key, []).append(key)
    kept = [k for keys in parts.values() for k in keys[:keep]]
    return {**ckpt, "state_dict": {k: ckpt["state_dict"][k] for k in kept}}


def read_fame(folder, path):
    from ssl_video.pretrained import read_weights

    read_weights(path, "i3d")


def test_fame_train_checkpoints(request):
    from tests.helpers.fame_release import fame_i3d_moco_checkpoint

    good = _fame_subset(fame_i3d_moco_checkpoint(seed=0, queue=8), keep=6)
    fuzz(request, "FAME checkpoint (train.py, MoCo)", TORCH, good, lambda d: d / "checkpoint_0199.pth.tar", read_fame)


def test_fame_eval_checkpoints(request):
    from tests.helpers.fame_release import fame_i3d_finetuned_checkpoint

    good = _fame_subset(fame_i3d_finetuned_checkpoint(seed=0), keep=6)
    fuzz(request, "FAME checkpoint (eval.py, fine-tuned)", TORCH, good, lambda d: d / "ucf101_finetuned.pth.tar",
         read_fame)


SSL_RUN_CONFIG = {"arch": "r3d_tiny", "lr": 0.1, "epochs": 2, "workers": 0}


def ssl_training_objects():
    from ssl_video.models import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        backbone = build_backbone("r3d_tiny")
        model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.1)
    return model, optimizer, scheduler


@lru_cache(maxsize=None)
def ssl_run_file() -> dict:
    from ssl_video.checkpoint import rng_state

    model, optimizer, scheduler = ssl_training_objects()
    with torch.random.fork_rng(devices=[]):
        model(torch.rand(2, 3, 4, 16, 16)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": 1, "step": 3, "rng": [rng_state()], "config": SSL_RUN_CONFIG}


def test_ssl_video_run_checkpoints(request):
    from ssl_video.checkpoint import restore_training_state
    from vos.infra.distributed import DistContext

    def read(folder, path):
        model, optimizer, scheduler = ssl_training_objects()
        return restore_training_state(path, SSL_RUN_CONFIG, model, optimizer, scheduler,
                                      DistContext(0, 1, 0, torch.device("cpu")))

    fuzz(request, "ssl-video run checkpoint (--resume)", TORCH, ssl_run_file(), lambda d: d / "last.pt", read)


@pytest.fixture(scope="module")
def vos_run(tmp_path_factory):
    """Frame folders and a finished tiny `vos train` run (its last.pt at the last iteration)."""
    from tests.helpers.vos_train import make_frame_folders, tiny_config
    from vos.train.trainer import train

    root = tmp_path_factory.mktemp("vos_run")
    data = make_frame_folders(root / "data", videos=2, frames=4)
    train(tiny_config(data, root / "run", iterations=2, checkpoint_every=2))
    return root


def test_vos_train_run_checkpoints(request, vos_run):
    from tests.helpers.vos_train import tiny_config
    from vos.train.trainer import train

    good = torch.load(vos_run / "run" / "last.pt", weights_only=True)

    def scenario(folder):
        shutil.copytree(vos_run / "run", folder / "run")
        return folder / "run" / "last.pt"

    def read(folder, path):
        result = train(tiny_config(vos_run / "data", folder / "run", iterations=2, checkpoint_every=2), resume=True)
        assert result.iterations == 2  # an accepted checkpoint is at the last iteration: nothing to redo

    fuzz(request, "vos train run checkpoint (--resume)", TORCH, good, scenario, read, examples=12,
         unchanged=lambda d: d / "run")


# ---------------------------------------------------------------------------------------------
# the feature cache of vos train
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory, tiny_random_backbone):
    """Two 4-frame videos and the cache of their features, built once."""
    from tests.helpers.vos_train import make_frame_folders
    from vos.infra.distributed import DistContext
    from vos.train.config import AugmentConfig
    from vos.train.data import FeatureCache, TrainingVideos

    root = tmp_path_factory.mktemp("cache")
    videos = TrainingVideos(make_frame_folders(root / "data", videos=2, frames=4), frames=3)

    def build(folder):
        return FeatureCache(folder, videos, tiny_random_backbone, "test_vit_tiny16", "random(seed=0)", (32, 32), 1,
                            AugmentConfig(), 0, DistContext(0, 1, 0, torch.device("cpu")))

    build(root / "cache")
    return root / "cache", build


def _cache_scenario(cache_dir, name):
    def scenario(folder):
        shutil.copytree(cache_dir, folder / "cache")
        return folder / "cache" / name
    return scenario


def _read_cache(cache_dir, build):
    """Build the cache over the damaged copy: every array is then the good one (computed again when it
    was damaged), or, when the damage left a complete float16 array of the right shape (bytes of
    the values changed), the damaged one: the cache checks structure and size, not values."""
    from vos.train.data import _cached_array_problem

    def read(folder, path):
        written = path.read_bytes()
        cache = build(folder / "cache")
        for i in range(2):
            name = f"{i:06d}.npy"
            now, good = (folder / "cache" / name).read_bytes(), (cache_dir / name).read_bytes()
            assert now == good or (now == written and folder / "cache" / name == path and
                                   _cached_array_problem(path, np.load(cache_dir / name).shape) is None)
        return cache
    return read


def test_feature_cache_meta(request, feature_cache):
    cache_dir, build = feature_cache
    good = json.loads((cache_dir / "meta.json").read_text())
    fuzz(request, "feature cache meta.json", JSON, good, _cache_scenario(cache_dir, "meta.json"),
         _read_cache(cache_dir, build), unchanged=lambda d: d / "cache",
         names=lambda d: (str(d / "cache"),))  # settings that differ: the line names the cache folder


def test_feature_cache_arrays(request, feature_cache):
    cache_dir, build = feature_cache
    good = {"array": torch.from_numpy(np.load(cache_dir / "000001.npy"))}
    fuzz(request, "feature cache array (.npy)", NPY, good, _cache_scenario(cache_dir, "000001.npy"),
         _read_cache(cache_dir, build))


# ---------------------------------------------------------------------------------------------
# settings, split files, logs
# ---------------------------------------------------------------------------------------------

def test_config_yaml(request):
    from ssl_video.config import FinetuneConfig
    from vos.infra.config import config_to_dict, load_config
    from vos.train.config import TrainConfig

    def read(folder, path):
        load_config(TrainConfig, path)

    fuzz(request, "config YAML (vos train)", YAML, config_to_dict(TrainConfig()), lambda d: d / "train.yaml", read)
    fuzz(request, "config YAML (ssl-video finetune)", YAML, config_to_dict(FinetuneConfig()), lambda d: d / "ft.yaml",
         lambda folder, path: load_config(FinetuneConfig, path))


UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups"]


def ucf101_scenario(name):
    def scenario(folder):
        root, splits = folder / "UCF-101", folder / "UCF-101" / "splits"
        splits.mkdir(parents=True)
        (splits / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
        train = [f"{c}/v_{c}_g01_c0{k}.avi {i}\n" for i, c in enumerate(UCF_CLASSES, 1) for k in (1, 2)]
        (splits / "trainlist01.txt").write_text("".join(train))
        for line in train:
            video = root / line.split()[0]
            video.parent.mkdir(exist_ok=True)
            video.touch()
        return splits / name
    return scenario


def read_ucf101(folder, path):
    from ssl_video.data.splits import load_items

    load_items("ucf101", folder / "UCF-101", folder / "UCF-101" / "splits", 1, "train")


def _lines(path_text: str) -> list[list[str]]:
    return [line.split() for line in path_text.splitlines()]


def test_ucf101_split_files(request):
    with tempfile.TemporaryDirectory() as tmp:
        scenario = ucf101_scenario("classInd.txt")
        classes = _lines(scenario(Path(tmp)).read_text())
        train = _lines((Path(tmp) / "UCF-101" / "splits" / "trainlist01.txt").read_text())
    fuzz(request, "split file (UCF101 classInd.txt)", TEXT, classes, ucf101_scenario("classInd.txt"), read_ucf101)
    fuzz(request, "split file (UCF101 trainlist01.txt)", TEXT, train, ucf101_scenario("trainlist01.txt"), read_ucf101,
         names=lambda d: (str(d),))  # a listed video that is missing is named with its folder


def test_hmdb51_split_files(request):
    def scenario(folder):
        splits = folder / "hmdb" / "splits"
        splits.mkdir(parents=True)
        for c in ("brush_hair", "cartwheel"):
            (splits / f"{c}_test_split1.txt").write_text(f"{c}_a.avi 1\n{c}_b.avi 2\n{c}_c.avi 0\n")
            (folder / "hmdb" / c).mkdir()
            for v in "abc":
                (folder / "hmdb" / c / f"{c}_{v}.avi").touch()
        return splits / "cartwheel_test_split1.txt"

    def read(folder, path):
        from ssl_video.data.splits import load_items

        load_items("hmdb51", folder / "hmdb", folder / "hmdb" / "splits", 1, "train")

    good = [["cartwheel_a.avi", "1"], ["cartwheel_b.avi", "2"], ["cartwheel_c.avi", "0"]]
    fuzz(request, "split file (HMDB51)", TEXT, good, scenario, read, names=lambda d: (str(d),))


def test_training_logs(request):
    from vos.infra.training_log import TrainingLog

    good = [["step", "loss", "lr"], ["1", "0.5", "0.001"], ["2", "0.25", "0.001"], ["3", "nan", "0.0005"]]

    def scenario(folder):
        (folder / "run").mkdir()
        return folder / "run" / "log.csv"

    def read(folder, path):
        TrainingLog(folder / "run", start_step=2).close()

    fuzz(request, "training log (log.csv, on --resume)", CSV, good, scenario, read,
         unchanged=lambda d: d / "run")


# ---------------------------------------------------------------------------------------------
# vos eval: result PNGs, sequence lists, YouTube-VIS annotations
# ---------------------------------------------------------------------------------------------

def _labels(frames: int = 3, shape=(24, 32)) -> np.ndarray:
    labels = np.zeros((frames, *shape), np.uint8)
    for t in range(frames):
        labels[t, 4:14, 3 + 2 * t:15 + 2 * t] = 1
        labels[t, 12:22, 18:28] = 2
    return labels


def davis_scenario(name):
    def scenario(folder):
        from tests.helpers.davis_reference import make_davis_root, write_results

        make_davis_root(folder / "DAVIS", {"blobs": _labels()})
        write_results(folder / "results", {"blobs": _labels()[:, ::-1].copy()})
        return {"list": folder / "DAVIS" / "ImageSets" / "2017" / "val.txt",
                "png": folder / "results" / "blobs" / "00001.png"}[name]
    return scenario


def read_davis(folder, path):
    from vos.eval.davis_eval import evaluate_davis

    evaluate_davis(folder / "DAVIS", folder / "results", workers=1, progress=False)


def test_davis_results_and_sequence_lists(request):
    fuzz(request, "vos eval davis: result PNG", PNG, {"labels": torch.from_numpy(_labels()[1, ::-1].copy())},
         davis_scenario("png"), read_davis)
    fuzz(request, "vos eval davis: sequence list", TEXT, [["blobs"]], davis_scenario("list"), read_davis)


def ytvis_annotations() -> dict:
    """Two 3-frame videos: object 1 as uncompressed RLE, object 2 as polygons, absent in one frame."""
    labels = _labels(3, (24, 32))
    videos, annotations = [], []
    for vid in (1, 2):
        videos.append({"id": vid, "height": 24, "width": 32, "length": 3,
                       "file_names": [f"vid{vid}/{t:05d}.jpg" for t in range(3)]})
        rles = []
        for t in range(3):
            column = (labels[t] == 1).T.ravel()  # COCO RLE runs go down the columns
            changes = np.flatnonzero(np.diff(np.concatenate([[0], column.astype(int), [0]]))).tolist()
            counts = [changes[0]] + np.diff(changes).tolist()
            counts.append(column.size - sum(counts))
            rles.append({"size": [24, 32], "counts": counts})
        annotations.append({"id": 2 * vid - 1, "video_id": vid, "category_id": 1, "segmentations": rles})
        annotations.append({"id": 2 * vid, "video_id": vid, "category_id": 2,
                            "segmentations": [[[18, 12, 28, 12, 28, 22, 18, 22]], None, [[18, 12, 28, 12, 28, 22]]]})
    return {"videos": videos, "annotations": annotations, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def ytvis_scenario(name):
    def scenario(folder):
        from tests.helpers.davis_reference import write_results

        (folder / "ytvis").mkdir()
        write_results(folder / "results", {f"vid{v}": _labels() for v in (1, 2)})
        return {"json": folder / "ytvis" / "train.json", "png": folder / "results" / "vid2" / "00002.png"}[name]
    return scenario


def read_ytvis(folder, path):
    from vos.eval.ytvis import evaluate_ytvis

    annotations = folder / "ytvis" / "train.json"
    if not annotations.exists():
        annotations.write_text(json.dumps(ytvis_annotations()))
    evaluate_ytvis(folder / "ytvis", folder / "results", annotations=annotations, workers=1, progress=False)


def test_youtube_vis_annotations_and_results(request):
    fuzz(request, "vos eval ytvis: annotation JSON", JSON, ytvis_annotations(), ytvis_scenario("json"), read_ytvis)
    fuzz(request, "vos eval ytvis: result PNG", PNG, {"labels": torch.from_numpy(_labels()[2])},
         ytvis_scenario("png"), read_ytvis)
