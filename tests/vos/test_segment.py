"""`vos segment` end to end on generated clips with a tiny random ViT, and its error handling."""

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tqdm import tqdm

import vos.segment.segmenter
from tests.helpers.paths import REPO_ROOT
from tests.helpers.vos_clips import TINY, moving_square_frames, write_frame_folder, write_mp4
from vos.cli import main
from vos.models.block import SpatioTemporalBlock, block_checkpoint
from vos.palette import davis_palette
from vos.segment import attention_over_keys, key_frame_indices

FAST = TINY + ["--resolution", "64", "96", "--key-every", "4"]


def run_cli(capsys, *args):
    code = main(["segment", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("videos") / "square.mp4", moving_square_frames(10, (90, 130)))


def read_png(path):
    with Image.open(path) as image:
        return image.mode, image.getpalette(), np.array(image)


def test_segment_video_writes_davis_pngs_at_original_size(clip, tmp_path, capsys):
    code, output = run_cli(capsys, clip, "--out", tmp_path / "out", "--overlay", tmp_path / "overlay.mp4", *FAST)
    assert code == 0, output
    pngs = sorted((tmp_path / "out" / "square").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(10)]
    mode, palette, labels = read_png(pngs[3])
    assert mode == "P" and labels.shape == (90, 130) and labels.dtype == np.uint8
    assert palette[:3 * 256] == davis_palette().flatten().tolist()
    assert 1 <= labels.max() <= 20 and (labels == 0).any()
    assert "square: 10 frames" in output and "frames/s" in output and "training-free" in output
    import av

    with av.open(str(tmp_path / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    assert not list((tmp_path / "out").glob("*.partial"))


def test_frame_folder_keeps_frame_names_and_stride(tmp_path, capsys):
    video = moving_square_frames(9, (64, 80))
    folder = write_frame_folder(tmp_path / "seq", video)
    (folder / "00000.jpg").rename(folder / "00100.jpg")  # names need not start at 0
    code, output = run_cli(capsys, folder, "--out", tmp_path / "out", "--stride", "2", *FAST)
    assert code == 0, output
    names = sorted(p.name for p in (tmp_path / "out" / "seq").glob("*.png"))
    assert names == ["00001.png", "00003.png", "00005.png", "00007.png", "00100.png"]  # sorted 1..8, 100


def test_grayscale_rgba_and_odd_sizes_are_accepted(tmp_path, capsys):
    video = moving_square_frames(4, (61, 77))
    for mode in ("L", "RGBA"):
        folder = write_frame_folder(tmp_path / mode, video, mode=mode, suffix=".png")
        code, output = run_cli(capsys, folder, "--out", tmp_path / "out", *FAST)
        assert code == 0, output
        assert read_png(tmp_path / "out" / mode / "00003.png")[2].shape == (61, 77)


def test_batch_folder_and_skip_existing(tmp_path, capsys):
    batch = tmp_path / "batch"
    batch.mkdir()
    write_mp4(batch / "a.mp4", moving_square_frames(5, (64, 64)))
    write_frame_folder(batch / "b", moving_square_frames(6, (64, 64), seed=1))
    code, output = run_cli(capsys, batch, "--out", tmp_path / "out", "--overlay", tmp_path / "ov", *FAST)
    assert code == 0, output
    assert len(list((tmp_path / "out" / "a").glob("*.png"))) == 5
    assert len(list((tmp_path / "out" / "b").glob("*.png"))) == 6
    assert (tmp_path / "ov" / "a.mp4").is_file() and (tmp_path / "ov" / "b.mp4").is_file()
    marker = tmp_path / "out" / "a" / "00000.png"
    stamp = marker.stat().st_mtime_ns
    code, output = run_cli(capsys, batch, "--out", tmp_path / "out", "--skip-existing", *FAST)
    assert code == 0 and "a: skipped" in output and "b: skipped" in output
    assert marker.stat().st_mtime_ns == stamp


def test_trained_block_checkpoint_is_used(clip, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = block_checkpoint(SpatioTemporalBlock(64), "test_vit_tiny16", "random(seed=0)", iteration=5)
    torch.save(ckpt, tmp_path / "last.pt")
    code, output = run_cli(capsys, clip, "--out", tmp_path / "out", "--block", tmp_path / "last.pt", *FAST)
    assert code == 0, output
    assert "trained block (last.pt, iteration 5)" in output


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file"),
    ("text.mp4", "square/text.mp4"),
    ("empty", "empty"),
    ("notes.txt", "not a supported video"),
    ("zero.mp4", "zero.mp4"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, capsys, case, message):
    target = tmp_path / case
    if case == "text.mp4":
        target = tmp_path / "square" / "text.mp4"
        target.parent.mkdir()
        target.write_text("this is not a video")
    elif case == "empty":
        target.mkdir()
    elif case == "notes.txt":
        target.write_text("hello")
    elif case == "zero.mp4":
        import av

        with av.open(str(target), "w", format="mp4") as container:
            container.add_stream("mpeg4", rate=10)
    code, output = run_cli(capsys, target, "--out", tmp_path / "out", *FAST)
    assert code == 2
    error_lines = [line for line in output.splitlines() if "error" in line]
    assert len(error_lines) == 1 and message in error_lines[0], output
    assert "Traceback" not in output


def test_bad_options_are_errors(clip, tmp_path, capsys):
    code, output = run_cli(capsys, clip, "--key-every", "0", *TINY)
    assert code == 2 and "--key-every must be >= 1" in output
    code, output = run_cli(capsys, clip, "--block", tmp_path / "none.pt", *TINY)
    assert code == 2 and "block checkpoint not found" in output


def test_key_frames_always_include_the_first():
    assert key_frame_indices(3, 10) == [0]
    assert key_frame_indices(25, 10) == [0, 10, 20]
    assert key_frame_indices(20, 10) == [0, 10]


@pytest.mark.parametrize("block_rows", [256, 5])  # one block per window / several, the last partial
def test_windowed_attention_equals_rows_of_the_full_attention(block_rows):
    """Per-window attention over key-frame patches = the matching rows/columns of the dense
    head-averaged (T·N)×(T·N) attention restricted to key columns and renormalised."""
    torch.manual_seed(0)
    T, heads, N, hd = 5, 8, 6, 4
    block = SpatioTemporalBlock(heads * hd).eval()
    tokens = torch.randn(T, N, heads * hd)
    q, k = block.queries_keys(tokens)  # T heads N hd
    key_frames = [0, 3]
    keys = torch.cat([k[t] for t in key_frames], dim=1)  # heads K hd
    windowed = torch.cat([attention_over_keys(q[t0:t0 + 2], keys, block_rows) for t0 in range(0, T, 2)])
    flat_q = q.permute(1, 0, 2, 3).reshape(heads, T * N, hd)
    flat_k = k.permute(1, 0, 2, 3).reshape(heads, T * N, hd)
    cols = torch.cat([torch.arange(t * N, (t + 1) * N) for t in key_frames])
    dense = torch.softmax(flat_q @ flat_k[:, cols].transpose(1, 2), -1).mean(0)  # (T·N) K
    torch.testing.assert_close(windowed.reshape(T * N, -1), dense)


class TickingClock:
    """Stands in for the time module of vos.segment.segmenter: each clock advances one second per reading, so
    the timings count the timed intervals whatever the machine's speed."""

    def __init__(self):
        self.wall, self.cpu = itertools.count(), itertools.count()

    def perf_counter(self) -> float:
        return float(next(self.wall))

    def process_time(self) -> float:
        return float(next(self.cpu))


def test_keys_come_from_the_key_frames_across_backbone_batches(tmp_path, monkeypatch):
    """Queries of every frame and keys of frames 0, 3, 6 only, read in batches of 3 frames that the
    key frames do not line up with: the same as projecting all frames and picking the key frames."""
    from vos.models.backbone import preprocess_frames
    from vos.segment import SegmentConfig, VideoSegmenter
    from vos.infra.video_reader import open_video

    video = moving_square_frames(8, (48, 64))
    source = open_video(write_frame_folder(tmp_path / "clip", video))
    segmenter = VideoSegmenter(SegmentConfig(backbone="test_vit_tiny16", weights="random", resolution=(48, 64),
                                             key_every=3, batch_frames=3))
    timings = dict.fromkeys(("decode", "backbone", "backbone_cpu", "cluster", "cluster_cpu"), 0.0)
    monkeypatch.setattr(vos.segment.segmenter, "time", TickingClock())
    queries, keys, grid = segmenter._queries_and_keys(source, tqdm(disable=True), timings)
    monkeypatch.undo()
    with torch.no_grad():
        feats = segmenter.backbone(preprocess_frames(source.read_frames(range(8)), segmenter.input_size(source)), with_cls=False)
        all_q, all_k = segmenter.block.queries_keys(feats.keys)
    assert grid == (3, 4) and queries.shape == (8, 8, 12, 8) and keys.shape == (8, 3 * 12, 8)
    torch.testing.assert_close(queries, all_q)
    torch.testing.assert_close(keys, torch.cat([all_k[0], all_k[3], all_k[6]], dim=1))
    # one timed interval per batch of 3 frames in each bucket (the block's projections go with the
    # attention, in cluster), and one per read of the decoder (3 batches and the end)
    assert timings == {"decode": 4, "backbone": 3, "backbone_cpu": 3, "cluster": 3, "cluster_cpu": 3}


@pytest.mark.parametrize("logit_scale", [1.0, 300.0])  # the unshifted exp2 path / the max-shifted one
def test_attention_over_keys_is_the_head_mean_of_softmaxes(logit_scale):
    """Against float64 softmax; at scale 300 the logits reach hundreds (2**logit overflows float32
    unless shifted), and only some row blocks exceed the bound, so both paths run in one call."""
    torch.manual_seed(1)
    w, heads, N, hd, K = 2, 3, 6, 5, 7
    queries = torch.randn(w, heads, N, hd)
    queries[:, :, :2] *= logit_scale  # the first block of every window's rows
    keys = torch.randn(heads, K, hd)
    bounds = (queries * math.log2(math.e)).norm(dim=-1).amax() * keys.norm(dim=-1).amax()
    assert (bounds > vos.segment.UNSHIFTED_LOGIT_BOUND) == (logit_scale > 1)
    attention = attention_over_keys(queries, keys, block_rows=4)
    expected = torch.softmax(queries.double() @ keys.double().transpose(1, 2), dim=-1).mean(1)  # w N K
    assert attention.dtype == torch.float32 and attention.shape == (w, N, K)
    torch.testing.assert_close(attention.double(), expected, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(attention).all()


@pytest.mark.slow
def test_torchrun_shards_a_batch_across_two_processes(tmp_path):
    batch = tmp_path / "batch"
    for i in range(3):
        write_frame_folder(batch / f"v{i}", moving_square_frames(4, (48, 64), seed=i))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vos", "segment", str(batch), "--out", str(tmp_path / "dist"), *FAST]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 video(s), 12 frames" in result.stdout + result.stderr
    single = main(["segment", str(batch), "--out", str(tmp_path / "single"), *FAST])
    assert single == 0
    for i in range(3):
        for png in sorted((tmp_path / "single" / f"v{i}").glob("*.png")):
            assert np.array_equal(read_png(png)[2], read_png(tmp_path / "dist" / f"v{i}" / png.name)[2])


def test_config_file_is_read_and_flags_override_it(tmp_path):
    from vos.commands.segment import add_arguments
    import argparse

    from vos.infra.config import load_config
    from vos.infra.config_flags import config_overrides
    from vos.segment import SegmentConfig

    (tmp_path / "seg.yaml").write_text("backbone: test_vit_tiny16\nresolution: [64, 96]\ntau: 0.5\nkey_every: 4\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["clip.mp4", "--config", str(tmp_path / "seg.yaml"), "--tau", "2"])
    config = load_config(SegmentConfig, args.config, config_overrides(args, SegmentConfig))
    assert config.backbone == "test_vit_tiny16" and config.resolution == (64, 96)
    assert config.tau == 2.0 and config.key_every == 4 and config.window == 3
    shipped = load_config(SegmentConfig, REPO_ROOT / "configs" / "vos" / "segment.yaml")
    assert shipped == SegmentConfig()  # the shipped file spells out the defaults


def test_config_file_errors_are_one_line(clip, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("tua: 1.0\n")
    code, output = run_cli(capsys, clip, "--config", tmp_path / "bad.yaml", *TINY)
    assert code == 2 and "unknown key(s) tua" in output


@pytest.mark.parametrize("mode", ["full", "chunked"])
def test_the_reference_clustering_gives_the_fast_paths_partition(tmp_path, monkeypatch, mode):
    """On a GPU `vos segment` clusters with vos.cluster.reference on the device; here that path runs
    on the CPU (the device choice made to answer "not the CPU") and must give the CPU fast path's
    labels, in full mode and chunk by chunk."""
    import vos.cluster
    from vos.segment import SegmentConfig, VideoSegmenter
    from vos.infra.video_reader import open_video

    folder = write_frame_folder(tmp_path / "clip", moving_square_frames(16, (64, 96), seed=2), suffix=".png")
    config = SegmentConfig(backbone="test_vit_tiny16", weights="random", resolution=(64, 96), key_every=4,
                           tau=0.05, mode=mode, chunk_frames=8)

    def labels_of(segmenter):
        seg = segmenter.segment(open_video(folder))
        chunks = list(seg.label_chunks()) if mode == "chunked" else [seg.objects]
        return torch.cat(chunks), seg.num_clusters

    fast_labels, fast_clusters = labels_of(VideoSegmenter(config))
    asked = []
    monkeypatch.setattr(vos.cluster, "_runs_fast_path", lambda device: asked.append(device) and False)
    reference_labels, reference_clusters = labels_of(VideoSegmenter(config))
    assert asked and fast_clusters > 2 and reference_clusters == fast_clusters
    assert torch.equal(reference_labels, fast_labels)


def test_device_cuda_without_a_gpu_is_a_one_line_error(clip, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, output = run_cli(capsys, clip, "--out", tmp_path / "out", *FAST, "--device", "cuda")
    assert code == 2 and "--device cuda: torch sees no CUDA GPU here" in output and "Traceback" not in output


def test_progress_written_to_a_file_is_plain_lines(clip, tmp_path, capsys):
    """stderr is not a terminal here: the video's bar leaves at most a line or two, no redraws."""
    code, output = run_cli(capsys, clip, "--out", tmp_path / "out", *FAST)
    assert code == 0 and "\r" not in output
    assert sum(line.startswith("square: ") and "%|" in line for line in output.splitlines()) <= 2
