"""The SSL-UVOS release: its checkpoint format, its inference conventions (--compat ssl-uvos), and
DINO's position-embedding interpolation.

Reference numbers marked "release" were computed by the release's own code (SSL-UVOS
``src/data.py::readRGB`` + kornia ``Normalize``, ``src/model/attention.py::Block``, and
``src/model/vision_transformer.py::interpolate_pos_encoding``, which is DINO's) on the inputs
given by the formulas here, outside this repository.
"""

import math

import cv2
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from tests.helpers.vos_clips import moving_square_frames, write_frame_folder, write_mp4
from vos.cli import main
from vos.segment.conventions import KINETICS_MEAN, KINETICS_STD, conventions
from vos.infra.errors import UserError
from vos.models.backbone import build_backbone, dino_pos_embed, preprocess_frames
from vos.models.block import SpatioTemporalBlock, read_block_checkpoint, resolve_block
from vos.segment import SegmentConfig, VideoSegmenter, attention_over_keys, key_frame_indices

RELEASE_BLOCK = {  # the release's temporal block key -> shape, for width C = 64 (qkv without bias)
    "norm1.weight": (64,), "norm1.bias": (64,), "attn.qkv.weight": (192, 64), "attn.proj.weight": (64, 64),
    "attn.proj.bias": (64,), "norm2.weight": (64,), "norm2.bias": (64,), "mlp.fc1.weight": (256, 64),
    "mlp.fc1.bias": (256,), "mlp.fc2.weight": (64, 256), "mlp.fc2.bias": (64,),
}
OUR_NAME = {"attn.qkv.weight": "qkv.weight", "attn.proj.weight": "proj.weight", "attn.proj.bias": "proj.bias"}


def tiny_vit(patch: int = 8, width: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    return timm.create_model(f"vit_small_patch{patch}_224", pretrained=False, num_classes=0,
                             embed_dim=width, depth=2, num_heads=4)


def release_checkpoint(seed: int = 0, encoder=None, block=None) -> dict:
    """A file as the release's training script saves it, with a 2-block 64-wide patch-8 ViT as encoder
    (DINO key names = timm's) and random block weights."""
    gen = torch.Generator().manual_seed(seed)
    encoder = encoder if encoder is not None else tiny_vit(seed=seed).state_dict()
    block = block if block is not None else {k: torch.randn(s, generator=gen) * 0.1 for k, s in RELEASE_BLOCK.items()}
    state = {f"encoder.{k}": v for k, v in encoder.items()}
    state.update({f"temporal_transformer.0.{k}": v for k, v in block.items()})
    return {"model_state_dict": state, "iteration": 60000, "loss": 0.25}


@pytest.fixture()
def release_file(tmp_path):
    path = tmp_path / "checkpoint_dino-s-8.pth"
    torch.save(release_checkpoint(), path)
    return path


# --- the checkpoint format ---------------------------------------------------------------------

def test_release_file_loads_with_its_backbone_and_encoder(release_file):
    ckpt = torch.load(release_file, weights_only=True)
    info = read_block_checkpoint(release_file)
    assert (info.backbone, info.dim, info.num_heads, info.mlp_ratio, info.iteration) == ("test_vit_tiny8", 64, 8, 4.0, 60000)
    assert info.has_encoder and info.backbone_weights == "file:checkpoint_dino-s-8.pth"
    block = info.build()
    for theirs in RELEASE_BLOCK:
        ours = OUR_NAME.get(theirs, theirs)
        assert torch.equal(block.state_dict()[ours], ckpt["model_state_dict"][f"temporal_transformer.0.{theirs}"])
    assert block.qkv.bias is None and block.num_heads == 8
    # no --backbone, no --weights: the file's encoder is the backbone (test_vit_tiny8 has no official
    # weights, so anything else would raise)
    segmenter = VideoSegmenter(SegmentConfig(block=str(release_file), resolution=(32, 48)))
    assert segmenter.backbone_name == "test_vit_tiny8" and segmenter.backbone.patch_size == 8
    for k, v in segmenter.backbone.vit.state_dict().items():
        assert torch.equal(v, ckpt["model_state_dict"][f"encoder.{k}"]), k
    # the same backbone, named, is fine; --weights takes precedence over the file's encoder
    assert resolve_block(release_file, "test_vit_tiny8", None)[1:] == ("test_vit_tiny8", str(release_file))
    assert resolve_block(release_file, None, "random")[2] == "random"


def test_a_backbone_that_contradicts_the_file_is_an_error_naming_both(release_file):
    with pytest.raises(UserError, match=r"checkpoint_dino-s-8.pth: its encoder is test_vit_tiny8, not --backbone "
                                       r"dino_vits8; omit --backbone or pass --backbone test_vit_tiny8"):
        VideoSegmenter(SegmentConfig(block=str(release_file), backbone="dino_vits8"))


def test_segment_cli_runs_the_release_file_in_compat_mode(release_file, tmp_path, capsys):
    clip = write_mp4(tmp_path / "square.mp4", moving_square_frames(9, (40, 56)))
    code = main(["segment", str(clip), "--out", str(tmp_path / "out"), "--block", str(release_file),
                 "--compat", "ssl-uvos", "--resolution", "32", "48", "--key-every", "4"])
    out = capsys.readouterr()
    assert code == 0, out.err
    text = out.out + out.err
    assert "backbone test_vit_tiny8, trained block (checkpoint_dino-s-8.pth, SSL-UVOS release, iteration 60000)" in text
    assert "compat ssl-uvos" in text
    assert len(list((tmp_path / "out" / "square").glob("*.png"))) == 9


def test_init_block_starts_training_from_the_release_block(release_file):
    from vos.train.config import TrainConfig
    from vos.train.trainer import _load_initial_block

    block = SpatioTemporalBlock(64, 8)
    _load_initial_block(block, TrainConfig(backbone="test_vit_tiny8", init_block=str(release_file)))
    torch.testing.assert_close(block.state_dict(), read_block_checkpoint(release_file).state_dict, rtol=0, atol=0)
    with pytest.raises(UserError, match=r"\(dim, heads, MLP ratio\) \(64, 8, 4.0\) differs from this run's \(64, 4, 4.0\)"):
        _load_initial_block(SpatioTemporalBlock(64, 4), TrainConfig(backbone="test_vit_tiny8", init_block=str(release_file)))
    with pytest.raises(UserError, match="its encoder is test_vit_tiny8, not --backbone dino_vits16"):
        _load_initial_block(block, TrainConfig(backbone="dino_vits16", init_block=str(release_file)))


def _bad_files(tmp_path, good):
    bad = {}
    bad["neither format"] = ({"weights": torch.zeros(3)}, "not a block checkpoint; expected a 'vos train' checkpoint")
    bad["a bare tensor"] = (torch.zeros(3), "not a block checkpoint; expected")
    qkv_bias = release_checkpoint()
    qkv_bias["model_state_dict"]["temporal_transformer.0.attn.qkv.bias"] = torch.zeros(192)
    bad["qkv bias"] = (qkv_bias, r"unexpected block weight\(s\) qkv.bias")
    narrow = release_checkpoint()
    narrow["model_state_dict"]["temporal_transformer.0.mlp.fc2.weight"] = torch.zeros(64, 100)
    bad["block shapes"] = (narrow, r"temporal_transformer.0.mlp.fc2.weight is \(64, 100\), expected \(64, 256\)")
    unknown = release_checkpoint(encoder=tiny_vit(width=48).state_dict(),
                                 block={k: torch.zeros(tuple(48 * d // 64 for d in s)) for k, s in RELEASE_BLOCK.items()})
    bad["unknown encoder"] = (unknown, r"its encoder \(patch 8, width 48, 2 blocks\) is none of the known backbones")
    paths = {}
    for name, (obj, message) in bad.items():
        paths[name] = (tmp_path / f"{name.replace(' ', '_')}.pth", message)
        torch.save(obj, paths[name][0])
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    paths["truncated"] = (truncated, r"damaged: cut short .*\(expected a 'vos train' checkpoint")
    return paths


def test_bad_block_files_give_one_line_errors_naming_the_file(release_file, tmp_path, capsys):
    for name, (path, message) in _bad_files(tmp_path, release_file).items():
        with pytest.raises(UserError, match=message) as err:
            read_block_checkpoint(path)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value), name
    path, message = _bad_files(tmp_path, release_file)["truncated"]
    clip = write_frame_folder(tmp_path / "clip", moving_square_frames(3, (32, 48)))
    code = main(["segment", str(clip), "--block", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(path) in err


def test_weights_whose_shapes_do_not_fit_the_named_backbone(release_file):
    # patch-8 weights as a patch-16 backbone: refused, not resampled
    with pytest.raises(UserError, match=r"weight patch_embed.proj.weight has shape \(64, 3, 8, 8\), the backbone "
                                       r"expects \(64, 3, 16, 16\); the file \(patch 8, width 64, 2 blocks\)"):
        build_backbone("test_vit_tiny16", str(release_file))
    with pytest.raises(UserError, match=r"blocks.0.attn.proj.bias has shape \(64,\), the backbone expects \(384,\); "
                                       r"the file \(patch 8, width 64, 2 blocks\) does not match this --backbone"):
        build_backbone("dino_vits8", str(release_file))


# --- the inference conventions -------------------------------------------------------------------

def test_key_frames_release_rule():
    assert key_frame_indices(25, 10, "release") == [0, 10]  # arange(25 // 10) * 10
    assert key_frame_indices(25, 10) == [0, 10, 20]
    assert key_frame_indices(30, 10, "release") == [0, 10, 20]
    assert key_frame_indices(9, 10, "release") == [0]  # the release would have no key frame
    assert key_frame_indices(8, 3, "release") == [0, 3]
    with pytest.raises(UserError, match="unknown key frame rule"):
        key_frame_indices(8, 3, "sometimes")


def test_compat_segmenter_takes_keys_by_the_release_rule(release_file, tmp_path):
    from tqdm import tqdm

    from vos.infra.video_reader import open_video

    source = open_video(write_frame_folder(tmp_path / "clip", moving_square_frames(8, (32, 48)), suffix=".png"))
    timings = dict.fromkeys(("decode", "backbone", "backbone_cpu", "cluster", "cluster_cpu"), 0.0)
    for compat, key_frames in ((None, 3), ("ssl-uvos", 2)):  # 0, 3, 6 / arange(8 // 3) * 3 = 0, 3
        segmenter = VideoSegmenter(SegmentConfig(block=str(release_file), resolution=(32, 48), key_every=3,
                                                 compat=compat))
        queries, keys, grid = segmenter._queries_and_keys(source, tqdm(disable=True), timings)
        assert grid == (4, 6) and queries.shape[0] == 8 and keys.shape[1] == key_frames * 24


def test_compat_preprocessing_matches_the_release():
    # The release reads [0, 1] float64 frames, resizes them with cv2.resize(INTER_LINEAR), casts to
    # float32 and normalises with the Kinetics statistics (kornia). Reference: release code, row 1
    # of each channel of a 6x10 image resized to 4x6.
    image = np.array([[[(37 * y + 11 * x + 53 * c) % 256 for c in range(3)] for x in range(10)] for y in range(6)],
                     np.uint8)
    release = torch.tensor([-0.718587, -0.403297, -0.088008, 0.227281, 0.54257, 0.85786,
                            0.367929, 0.692586, 1.017244, 1.341901, 1.666559, 1.991217,
                            1.417293, 1.748625, 2.079957, 2.411289, -0.72733, -0.395998]).view(3, 6)
    conv = conventions("ssl-uvos")
    assert conv.normalisation == ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
    x = preprocess_frames(image[None], (4, 6), normalisation=conv.normalisation, resize=conv.resize)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 1, :], release, rtol=0, atol=2e-6)
    # the same against OpenCV itself, and against torch's bilinear interpolation without antialiasing
    # on float64, each normalised by hand
    mean, std = np.array(KINETICS_MEAN, np.float32), np.array(KINETICS_STD, np.float32)
    frames = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    ours = preprocess_frames(frames, (24, 32), normalisation=conv.normalisation, resize="bilinear").numpy()
    for frame, got in zip(frames, ours):
        opencv = cv2.resize(frame / 255, (32, 24), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        np.testing.assert_allclose(got, ((opencv - mean) / std).transpose(2, 0, 1), rtol=0, atol=1e-5)
    torch_ref = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255, size=(24, 32),
                              mode="bilinear", align_corners=False).float()
    torch.testing.assert_close(torch.from_numpy(ours), (torch_ref - torch.from_numpy(mean).view(3, 1, 1))
                               / torch.from_numpy(std).view(3, 1, 1), rtol=0, atol=1e-6)
    # the default: ImageNet statistics and an antialiased resize, which differs when shrinking
    default = preprocess_frames(frames, (24, 32)).numpy()
    assert np.abs(default - ours).max() > 0.1


def _release_named_block_weights() -> dict:
    """Weights given by a formula of the release's parameter names (dim 16, 8 heads)."""
    shapes = {"norm1.weight": (16,), "norm1.bias": (16,), "attn.qkv.weight": (48, 16), "attn.proj.weight": (16, 16),
              "attn.proj.bias": (16,), "norm2.weight": (16,), "norm2.bias": (16,), "mlp.fc1.weight": (64, 16),
              "mlp.fc1.bias": (64,), "mlp.fc2.weight": (16, 64), "mlp.fc2.bias": (16,)}
    out = {}
    for name, shape in shapes.items():
        idx = torch.arange(math.prod(shape), dtype=torch.float64)
        value = torch.sin(0.37 * idx + len(name)) * (0.5 if len(shape) == 2 else 0.1)
        value += 1.0 if "norm" in name and name.endswith("weight") else 0.0
        out[OUR_NAME.get(name, name)] = value.view(shape).float()
    return out


def test_block_attention_matches_the_release_block():
    # head-averaged attention of 6 tokens through the release's Block (LN1, qkv, softmax(q k^T 2^-0.5))
    release = torch.tensor([
        0.198697, 0.228137, 0.06894, 0.152229, 0.278734, 0.073263, 0.105282, 0.23203, 0.15805, 0.087038, 0.238584,
        0.179016, 0.054158, 0.052035, 0.4255, 0.071635, 0.045043, 0.35163, 0.206557, 0.198999, 0.093844, 0.177807,
        0.226335, 0.096458, 0.116388, 0.253766, 0.119673, 0.088174, 0.284231, 0.137767, 0.04907, 0.055141, 0.423584,
        0.065607, 0.046063, 0.360535]).view(6, 6)
    block = SpatioTemporalBlock(16, 8).eval()
    block.load_state_dict(_release_named_block_weights())
    x = torch.sin(torch.arange(6 * 16, dtype=torch.float64) * 0.91).view(1, 6, 16).float() * 2
    with torch.no_grad():
        q, k = block.queries_keys(x)  # 1 8 6 2 each
        torch.testing.assert_close(attention_over_keys(q, k[0])[0], release, rtol=0, atol=2e-6)
        torch.testing.assert_close(block(x)[1][0], release, rtol=0, atol=2e-6)


# --- DINO's position-embedding interpolation ------------------------------------------------------

def _sin_pos_embed(n: int, channels: int) -> torch.Tensor:
    return torch.tensor([[math.sin(0.7 * i + 1.3 * c) for c in range(channels)] for i in range(1 + n * n)],
                        dtype=torch.float32)[None]


def test_dino_pos_embed_matches_dinos_interpolate_pos_encoding():
    pe = _sin_pos_embed(4, 2)  # a 4x4 grid, 2 channels
    release_3x5_c0 = [0.0, 0.502597, 0.683453, 0.735839, 0.504447, 0.187335, -0.320956, -0.343138, -0.28283,
                      -0.115072, 0.055525, 0.277643, 0.077672, -0.194714, -0.386792, -0.459419]
    release_6x7_c1 = [
        0.963558, 1.132945, 0.944341, 0.613894, 0.158561, -0.308757, -0.738194, -0.999109, -0.178436, -0.214341,
        -0.260659, -0.262828, -0.212147, -0.123226, -0.05598, -0.920945, -0.822572, -0.636324, -0.328061, 0.032619,
        0.399522, 0.633513, 0.736621, 0.768014, 0.784068, 0.661458, 0.411421, 0.082241, -0.148796, 0.384289,
        0.336152, 0.247807, 0.111194, -0.041785, -0.192586, -0.287399, -0.925059, -1.019665, -1.122556, -1.030722,
        -0.736, -0.304708, 0.007428]
    torch.testing.assert_close(dino_pos_embed(pe, (3, 5))[0, :, 0], torch.tensor(release_3x5_c0), rtol=0, atol=2e-6)
    torch.testing.assert_close(dino_pos_embed(pe, (6, 7))[0, :, 1], torch.tensor(release_6x7_c1), rtol=0, atol=2e-6)
    assert dino_pos_embed(pe, (4, 4)) is pe  # DINO's own grid: unchanged


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _hand_bicubic_axis(values: np.ndarray, out_size: int, scale: float) -> np.ndarray:
    """Resample axis 0 of ``values``: output i samples the source at (i + 0.5) / scale - 0.5 with Keys'
    cubic kernel (a = -0.75), source indices clamped to the border."""
    n = values.shape[0]
    out = np.zeros((out_size,) + values.shape[1:])
    for i in range(out_size):
        x = (i + 0.5) / scale - 0.5
        x0 = math.floor(x)
        for offset, weight in zip((-1, 0, 1, 2), _cubic_weights(x - x0)):
            out[i] += weight * values[min(max(x0 + offset, 0), n - 1)]
    return out


def test_dino_pos_embed_is_the_hand_formula():
    torch.manual_seed(0)
    n, C, (h, w) = 5, 3, (7, 11)
    pe = torch.randn(1, 1 + n * n, C, dtype=torch.float64)
    grid = pe[0, 1:].numpy().reshape(n, n, C)
    rows = _hand_bicubic_axis(grid, h, (h + 0.1) / n)  # h n C
    both = _hand_bicubic_axis(rows.transpose(1, 0, 2), w, (w + 0.1) / n).transpose(1, 0, 2)  # h w C
    got = dino_pos_embed(pe, (h, w))
    assert got.shape == (1, 1 + h * w, C)
    torch.testing.assert_close(got[0, 0], pe[0, 0])
    np.testing.assert_allclose(got[0, 1:].numpy(), both.reshape(h * w, C), rtol=0, atol=1e-12)


def test_backbone_uses_dinos_interpolation_not_timms():
    """The backbone's CLS output at a 3x5 grid equals timm's forward on a model whose stored position
    embeddings are already DINO's for that grid (timm then adds them unchanged)."""
    with pytest.warns(UserWarning, match="random weights"):
        backbone = build_backbone("test_vit_tiny16", "random")
    x = torch.randn(2, 3, 48, 80)
    reference = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, embed_dim=64, depth=2,
                                  num_heads=4, img_size=(48, 80)).eval()
    state = dict(backbone.vit.state_dict())
    state["pos_embed"] = dino_pos_embed(state["pos_embed"], (3, 5))
    reference.load_state_dict(state)
    with torch.no_grad():
        expected = reference.forward_features(x)[:, 0]
        timm_resampled = backbone.vit.forward_features(x)[:, 0]
    torch.testing.assert_close(backbone(x).cls, expected)
    assert (backbone(x).cls - timm_resampled).abs().max() > 1e-3  # timm's own resampling differs
