"""`vos segment` on long videos: the mode switch, the chunked mode's ids and its bounded state."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.vos_clips import TINY, moving_square_frames, write_frame_folder
from vos.cli import main
from vos.infra.errors import UserError
from vos.infra.video_reader import open_video
from vos.segment import (ObjectMemory, SegmentConfig, StreamedSegmentation, VideoSegmenter, chunk_batches,
                         write_segmentation)


def segmenter(size, **options):
    return VideoSegmenter(SegmentConfig(backbone="test_vit_tiny16", weights="random", resolution=size, **options))


def png_labels(folder):
    return np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])


# sha256 of Segmentation.objects (T h w uint8) computed by the code before the chunked mode existed
# (its backbone already with DINO's position-embedding interpolation), with the tiny random ViT
# (seed 0) on moving_square_frames(T, size, seed=T) as PNGs. The small tau gives 18 and 43
# clusters, so the surplus merging (20 objects) is covered too.
BEFORE_CHUNKED_MODE = [
    (40, (64, 96), 4, 0.02, "2d0ff5defd5f8abdd94562cc90fe041a71f9e7f45cc138387dd705dc3e0463e7"),
    (100, (48, 64), 10, 0.005, "a7a09295d51fd56854d3f33ca36649b6a532d4cb3a3a7a6c47596ac9632b7435"),
]


@pytest.mark.parametrize("frames,size,key_every,tau,digest", BEFORE_CHUNKED_MODE)
@pytest.mark.parametrize("mode", ["auto", "full"])
def test_short_clips_give_the_partition_of_the_code_before_chunking(tmp_path, frames, size, key_every, tau,
                                                                   digest, mode):
    source = open_video(write_frame_folder(tmp_path / "clip", moving_square_frames(frames, size, seed=frames),
                                           suffix=".png"))
    seg = segmenter(size, key_every=key_every, tau=tau, mode=mode).segment(source)
    assert seg.objects.shape[0] == frames
    assert hashlib.sha256(seg.objects.numpy().tobytes()).hexdigest() == digest


def test_auto_switches_to_chunks_above_full_max_frames():
    seg = segmenter((32, 48))
    assert [seg.uses_chunks(t) for t in (1, 104, 120, 121, 10_000)] == [False, False, False, True, True]
    seg.config.full_max_frames = 20
    assert seg.uses_chunks(21) and not seg.uses_chunks(20)
    seg.config.mode = "full"
    assert not seg.uses_chunks(10_000)
    seg.config.mode = "chunked"
    assert seg.uses_chunks(1)
    release = segmenter((32, 48), compat="ssl-uvos")  # the release segments whole videos: auto is full
    assert not release.uses_chunks(10_000)
    release.config.mode = "chunked"
    assert release.uses_chunks(121)


def test_chunk_batches_split_decoded_batches_at_chunk_boundaries():
    batches = [np.arange(8), np.arange(8, 16), np.arange(16, 21)]
    pieces = list(chunk_batches(iter(batches), 6))
    assert [(c, p.tolist()) for c, p in pieces] == [
        (0, [0, 1, 2, 3, 4, 5]), (1, [6, 7]), (1, [8, 9, 10, 11]), (2, [12, 13, 14, 15]), (2, [16, 17]),
        (3, [18, 19, 20])]


def test_object_memory_links_by_prototype_similarity():
    """Hand-made chunks of one row of patches, (chunk id, descriptor) per patch; background e0."""
    e = torch.eye(4, dtype=torch.float64)
    memory = ObjectMemory(max_objects=2, similarity=0.9, channels=4)
    background = [(0, e[0])] * 4

    def link(*patches):
        ids = torch.tensor([[[i for i, _ in patches]]], dtype=torch.uint8)
        return memory.link(ids, torch.stack([d for _, d in patches]).view(1, 1, len(patches), 4)).tolist()

    assert link(*background, (1, e[1]), (2, e[2])) == [0, 1, 2]  # two new objects
    # the e2 object is now the larger (chunk id 1); e1 slightly changed keeps its id
    assert link(*background, (1, e[2]), (1, e[2]), (2, e[1] + 0.1 * e[2])) == [0, 2, 1]
    assert link(*background) == [0]  # every object has left the view
    assert link(*background, (1, e[1])) == [0, 1]  # and the e1 object comes back: its old id
    # a new look while the limit of 2 objects is reached: the most similar id; a look like the
    # background's joins the background
    assert link(*background, (1, e[3] + 2 * e[2]), (2, e[0] + 0.1 * e[3])) == [0, 2, 0]
    assert memory.num_objects == 2
    # prototypes: descriptor sums and patch counts of every id
    torch.testing.assert_close(memory.counts, torch.tensor([21.0, 3.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(memory.sums, torch.tensor(
        [[21, 0, 0, 0.1], [0, 3, 0.1, 0], [0, 0, 5, 1]], dtype=torch.float64))


def loop_video(frames, period, size):
    """moving_square_frames(period) repeated byte for byte until ``frames`` frames."""
    loop = moving_square_frames(period, size, seed=1)
    return loop[np.arange(frames) % period]


def test_a_looping_video_gets_identical_labels_for_identical_frames(tmp_path):
    """Period 7, chunks of 12: the same frame falls at different places of chunks with different
    key frames (so the chunk's clustering of it differs); the frame digests make the repeats agree."""
    size = (48, 64)
    source = open_video(write_frame_folder(tmp_path / "loop", loop_video(45, 7, size), suffix=".png"))
    seg = segmenter(size, key_every=4, tau=0.02, mode="chunked", chunk_frames=12).segment(source)
    assert isinstance(seg, StreamedSegmentation)
    write_segmentation(seg, source, tmp_path / "out" / "loop")
    labels = png_labels(tmp_path / "out" / "loop")
    assert labels.shape == (45, 48, 64) and labels.max() >= 2  # not a trivial one-object answer
    for t in range(7, 45):
        assert np.array_equal(labels[t], labels[t % 7]), t
    assert len(seg.labels_of_frame) == 7


def test_chunked_state_does_not_grow_with_the_video(tmp_path):
    """Chunk buffers are the same size for 2 and 6 chunks; what stays across chunks is the
    memory ((objects + 1) x C) and one digest + patch-grid labels per distinct frame."""
    size, chunk = (32, 48), 10
    states = {}
    for frames in (20, 60):
        source = open_video(write_frame_folder(tmp_path / f"c{frames}", moving_square_frames(frames, size), suffix=".png"))
        seg = segmenter(size, key_every=5, mode="chunked", chunk_frames=chunk).segment(source)
        chunks = [labels.shape for labels in seg.label_chunks()]
        assert chunks == [(chunk, 2, 3)] * (frames // chunk)
        states[frames] = dict(seg.largest_chunk_state)
        assert seg.memory.sums.shape == (21, 64) and seg.memory.counts.shape == (21,)  # tiny ViT: 64 channels
        assert len(seg.labels_of_frame) == frames
        assert {(v.shape, v.dtype) for v in seg.labels_of_frame.values()} == {((2, 3), torch.uint8)}
        assert not hasattr(seg, "queries") and not hasattr(seg, "keys")
    assert states[20] == states[60]
    # the chunk's queries: chunk x heads x N x hd floats, keys: heads x (chunk / key_every) N x hd
    assert states[60]["queries"] == chunk * 6 * 64 * 4 and states[60]["keys"] == 2 * 6 * 64 * 4


def test_chunked_mode_writes_every_frame_and_counts_objects(tmp_path, capsys):
    video = moving_square_frames(25, (48, 64))
    folder = write_frame_folder(tmp_path / "clip", video)
    code = main(["segment", str(folder), "--out", str(tmp_path / "out"), *TINY, "--resolution", "48", "64",
                 "--key-every", "4", "--mode", "chunked", "--chunk-frames", "8", "--overlay", str(tmp_path / "o.mp4")])
    output = capsys.readouterr()
    assert code == 0, output.err
    labels = png_labels(tmp_path / "out" / "clip")
    assert labels.shape == (25, 48, 64) and labels.max() <= 20
    assert "clip: 25 frames" in output.out and "frames/s" in output.out
    assert not list((tmp_path / "out").glob("*.partial"))


def test_interrupted_chunked_run_leaves_only_a_partial_folder(tmp_path, monkeypatch):
    """Chunks are written as they are done, into <out>.partial; an interruption after two chunks
    leaves those PNGs there and no folder under the final name."""
    size = (32, 48)
    source = open_video(write_frame_folder(tmp_path / "clip", moving_square_frames(30, size), suffix=".png"))
    seg = segmenter(size, key_every=5, mode="chunked", chunk_frames=10).segment(source)
    done = []
    real = StreamedSegmentation._segment_chunk

    def interrupted(self, pieces):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        return real(self, pieces)

    monkeypatch.setattr(StreamedSegmentation, "_segment_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_segmentation(seg, source, tmp_path / "out" / "clip")
    assert not (tmp_path / "out" / "clip").exists()
    assert len(list((tmp_path / "out" / "clip.partial").glob("*.png"))) == 20


@pytest.mark.parametrize("options,message", [
    ({"mode": "stream"}, "--mode must be one of auto, full, chunked"),
    ({"chunk_frames": 0}, "--chunk-frames must be >= 1"),
    ({"full_max_frames": 0}, "--full-max-frames must be >= 1"),
    ({"link_similarity": 1.5}, "--link-similarity is a cosine similarity"),
])
def test_bad_chunking_options_are_errors(options, message):
    with pytest.raises(UserError, match=message):
        SegmentConfig(**options).validate()


class RecordingBar:
    """Stands in for tqdm: records resets and the count after every update."""

    def __init__(self):
        self.totals, self.counts, self.n = [], [], 0.0

    def reset(self, total):
        self.totals.append(total)
        self.n = 0.0

    def update(self, n):
        self.n += n
        self.counts.append(self.n)

    def set_postfix_str(self, text, refresh=True):
        pass


@pytest.mark.parametrize("mode", ["full", "chunked"])
def test_one_progress_bar_counts_the_frames_of_the_whole_video(tmp_path, mode):
    size = (32, 48)
    source = open_video(write_frame_folder(tmp_path / "clip", moving_square_frames(25, size), suffix=".png"))
    bar = RecordingBar()
    seg = segmenter(size, key_every=5, mode=mode, chunk_frames=10).segment(source, bar)
    write_segmentation(seg, source, tmp_path / "out" / "clip", progress=bar)
    assert bar.totals == [25]  # set once: no phase restarts the bar
    assert bar.counts == sorted(bar.counts) and bar.counts[-1] == pytest.approx(25)


def test_each_chunk_is_segmented_like_a_clip_of_its_own(tmp_path):
    """Chunks of 12 frames: chunk c's partition is the full mode's on frames 12c..12c+11 as a video
    of their own (its key frames, windows, background and 20-object limit); with link_similarity 1
    every chunk object gets a new id, so the ids are a one-to-one relabelling, background 0."""
    size, video = (48, 64), moving_square_frames(24, (48, 64), seed=3)
    source = open_video(write_frame_folder(tmp_path / "all", video, suffix=".png"))
    chunked = segmenter(size, key_every=4, tau=0.2, mode="chunked", chunk_frames=12, link_similarity=1.0)
    labels = torch.cat(list(chunked.segment(source).label_chunks()))
    for c in range(2):
        part = open_video(write_frame_folder(tmp_path / f"part{c}", video[12 * c:12 * c + 12], suffix=".png"))
        full = segmenter(size, key_every=4, tau=0.2, mode="full").segment(part).objects  # 6 and 5 objects
        pairs = torch.unique(torch.stack([full.flatten(), labels[12 * c:12 * c + 12].flatten()]), dim=1)
        assert full.max() >= 2 and pairs.shape[1] == int(full.max()) + 1  # one chunked id per full id
        assert torch.unique(pairs[1]).numel() == pairs.shape[1]  # and no two full ids share one
        assert pairs[1, pairs[0] == 0].tolist() == [0]
