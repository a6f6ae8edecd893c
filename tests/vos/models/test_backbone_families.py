"""DINOv2 (with and without registers) and DINOv3 backbones: keys equal to the official model code's,
official key formats, tiny models of each family, and the block checkpoint's backbone."""

import json
from pathlib import Path

import pytest
import torch

from tests.vos.models.official_layouts import (dinov2_official_shapes, dinov3_official_shapes,
                                               random_official_state, reference_input)
from vos.infra.errors import UserError
from vos.models.backbone import (BACKBONES, backbone_spec, build_backbone, infer_backbone, load_backbone_state,
                                 model_input_size)
from vos.models.dinov2 import official_to_timm as dinov2_to_timm
from vos.models.dinov3 import dinov3_rope
from vos.models.dinov3 import official_to_timm as dinov3_to_timm
from vos.models.vit_keys import key_projection

# Computed by the official facebookresearch/dinov2 and dinov3 model code (hub constructors, strict
# load_state_dict) from random_official_state(shapes, weight_seed) and reference_input(size, input_seed):
# the last block's input through its norm1 and qkv (key third, patch tokens), and forward_features'
# x_norm_clstoken.
REFERENCES = json.loads((Path(__file__).parent / "official_references.json").read_text())
OFFICIAL_SHAPES = {
    "dinov2_vits14": lambda: dinov2_official_shapes(384),
    "dinov2_vits14_reg": lambda: dinov2_official_shapes(384, registers=4),
    "dinov2_vitb14": lambda: dinov2_official_shapes(768),
    "dinov2_vitb14_reg": lambda: dinov2_official_shapes(768, registers=4),
    "dinov3_vits16": lambda: dinov3_official_shapes(384, heads=6),
    "dinov3_vitb16": lambda: dinov3_official_shapes(768, heads=12),
}
TINY = ("test_dinov2_tiny14", "test_dinov2_reg_tiny14", "test_dinov3_tiny16")


def _random_backbone(name):
    with pytest.warns(UserWarning, match="random weights"):
        return build_backbone(name, "random")


TINY_OFFICIAL_SHAPES = {
    "test_dinov2_tiny14": lambda: dinov2_official_shapes(64, depth=2),
    "test_dinov2_reg_tiny14": lambda: dinov2_official_shapes(64, depth=2, registers=4),
    "test_dinov3_tiny16": lambda: dinov3_official_shapes(64, heads=4, depth=2),
}


def _tiny_with_official_layout_weights(name, seed=5):
    """A tiny backbone with random weights in which every block matters (timm's own initialisation
    scales the residual branches by 1e-5 and the position embeddings by 0.02)."""
    backbone = _random_backbone(name)
    state = random_official_state(TINY_OFFICIAL_SHAPES[name](), seed)
    load_backbone_state(backbone.vit, state, backbone_spec(name).family, "tiny")
    return backbone


def _assert_matches_reference(feats, ref):
    tokens = (0, 17, 34)
    torch.testing.assert_close(feats.keys[0, list(tokens), :4], torch.tensor(ref["keys_sample"]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(feats.keys[0].mean(-1), torch.tensor(ref["keys_token_mean"]), rtol=1e-4, atol=1e-5)
    assert feats.keys.abs().mean().item() == pytest.approx(ref["keys_abs_mean"], rel=1e-5)
    torch.testing.assert_close(feats.cls[0, :8], torch.tensor(ref["cls_sample"]), rtol=1e-4, atol=1e-5)
    assert feats.cls.abs().mean().item() == pytest.approx(ref["cls_abs_mean"], rel=1e-5)


@pytest.mark.parametrize("name", ["dinov2_vits14", "dinov2_vits14_reg", "dinov3_vits16"])
def test_official_files_give_the_official_models_keys(name, tmp_path):
    """A file in the official layout (real ViT-S shapes, seeded random weights) through --weights PATH:
    keys and CLS equal the official model code's at a 5x7 grid (position embeddings resampled from
    37x37 as DINOv2 does with and without registers; DINOv3's RoPE with the file's periods)."""
    ref = REFERENCES[name]
    path = tmp_path / f"{name}_pretrain.pth"
    torch.save(random_official_state(OFFICIAL_SHAPES[name](), ref["weight_seed"]), path)
    backbone = build_backbone(name, str(path))
    feats = backbone(reference_input(tuple(ref["input_size"]), ref["input_seed"]))
    assert feats.grid == (5, 7) and feats.keys.shape == (1, 35, 384)
    _assert_matches_reference(feats, ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dinov2_vitb14", "dinov2_vitb14_reg", "dinov3_vitb16"])
def test_official_vitb_weights_give_the_official_models_keys(name):
    ref = REFERENCES[name]
    spec = backbone_spec(name)
    backbone = _random_backbone(name)
    load_backbone_state(backbone.vit, random_official_state(OFFICIAL_SHAPES[name](), ref["weight_seed"]),
                        spec.family, "official layout")
    _assert_matches_reference(backbone(reference_input(tuple(ref["input_size"]), ref["input_seed"])), ref)


@pytest.mark.parametrize("name,prefix", [("test_dinov2_tiny14", 1), ("test_dinov2_reg_tiny14", 5),
                                         ("test_dinov3_tiny16", 5)])
def test_keys_are_the_last_blocks_key_projection_of_the_patches_only(name, prefix):
    backbone = _random_backbone(name)
    p = backbone.patch_size
    seen = {}
    handle = backbone.vit.blocks[-1].register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    feats = backbone(torch.randn(2, 3, 3 * p, 5 * p))
    handle.remove()
    last, C = backbone.vit.blocks[-1], backbone.dim
    assert seen["x"].shape == (2, prefix + 15, C)  # CLS (+ 4 registers) + 15 patches enter the last block
    qkv = torch.nn.functional.linear(last.norm1(seen["x"]), last.attn.qkv.weight)
    if last.attn.qkv.bias is not None:
        qkv = qkv + last.attn.qkv.bias
    torch.testing.assert_close(feats.keys, qkv[:, prefix:, C:2 * C])
    keys_only = backbone(torch.randn(2, 3, 3 * p, 5 * p), with_cls=False)
    assert keys_only.cls is None and keys_only.keys.shape == (2, 15, C)


@pytest.mark.parametrize("name", ["test_dinov2_reg_tiny14", "test_dinov3_tiny16"])
def test_timm_forward_agrees_where_its_position_handling_is_the_official_one(name):
    """timm resamples DINOv2-with-registers embeddings as the official code does (size, antialiased),
    and its DINOv3 RoPE is the official one; so its CLS output equals ours on a non-square grid."""
    backbone = _tiny_with_official_layout_weights(name)
    x = torch.randn(1, 3, 4 * backbone.patch_size, 6 * backbone.patch_size)
    with torch.no_grad():
        timm_cls = backbone.vit.forward_features(x)[:, 0]
    torch.testing.assert_close(backbone(x).cls, timm_cls, rtol=1e-5, atol=1e-5)


def test_dinov2_without_registers_is_resampled_as_dinov2_not_as_timm():
    """Without registers DINOv2 resamples with scale factors (n + 0.1) / 37 and no antialiasing; timm
    resizes with antialiasing, which gives other features off the 37x37 grid (and the same on it)."""
    backbone = _tiny_with_official_layout_weights("test_dinov2_tiny14")
    off_grid, on_grid = torch.randn(1, 3, 4 * 14, 6 * 14), torch.randn(1, 3, 518, 518)
    with torch.no_grad():
        assert not torch.allclose(backbone(off_grid).cls, backbone.vit.forward_features(off_grid)[:, 0], atol=1e-3)
        torch.testing.assert_close(backbone(on_grid).cls, backbone.vit.forward_features(on_grid)[:, 0])


def test_dinov3_rope_is_the_hand_formula_and_timms():
    from timm.layers.pos_embed_sincos import RotaryEmbeddingDinoV3

    periods = 100 ** (torch.arange(4) / 4)  # head_dim 16: P = 4 periods
    sin, cos = dinov3_rope((3, 5), periods)
    assert sin.shape == cos.shape == (15, 16)
    i, j = 2, 1  # patch (2, 1) of the 3x5 grid is token 2 * 5 + 1
    y, x = 2 * (i + 0.5) / 3 - 1, 2 * (j + 0.5) / 5 - 1
    angles = torch.cat([2 * torch.pi * y / periods, 2 * torch.pi * x / periods])
    torch.testing.assert_close(sin[11], torch.cat([angles.sin(), angles.sin()]))
    torch.testing.assert_close(cos[11], torch.cat([angles.cos(), angles.cos()]))
    timm_rope = RotaryEmbeddingDinoV3(16, temperature=100, rotate_half=True)
    torch.testing.assert_close(torch.cat([sin, cos], -1), timm_rope.get_embed(shape=(3, 5)))


def test_official_dinov2_register_layout_converts_to_timms():
    state = random_official_state(dinov2_official_shapes(64, depth=2, registers=4), seed=0)
    chunked = {("blocks.1.1." + k[len("blocks.1."):] if k.startswith("blocks.1.") else k): v for k, v in state.items()}
    out = dinov2_to_timm(chunked, "file")
    assert "mask_token" not in out and "register_tokens" not in out and not any(k.startswith("blocks.1.1.") for k in out)
    assert torch.equal(out["reg_token"], state["register_tokens"])
    torch.testing.assert_close(out["cls_token"], state["cls_token"] + state["pos_embed"][:, :1])
    assert torch.equal(out["pos_embed"], state["pos_embed"][:, 1:])
    assert torch.equal(out["blocks.1.mlp.fc1.weight"], state["blocks.1.mlp.fc1.weight"])
    without_mask_token = dinov2_to_timm({k: v for k, v in state.items() if k != "mask_token"}, "file")
    assert torch.equal(without_mask_token["reg_token"], state["register_tokens"])
    timm_state = {"cls_token": torch.zeros(1, 1, 4)}
    assert dinov2_to_timm(timm_state, "file") is timm_state  # timm's layout passes as it is


def test_official_dinov3_layout_converts_to_timms_with_the_key_bias_masked():
    state = random_official_state(dinov3_official_shapes(64, heads=4, depth=2), seed=0)
    out = dinov3_to_timm(state, "file")
    bias = state["blocks.0.attn.qkv.bias"]
    assert torch.equal(out["blocks.0.attn.q_bias"], bias[:64]) and torch.equal(out["blocks.0.attn.v_bias"], bias[128:])
    assert torch.equal(out["blocks.1.gamma_2"], state["blocks.1.ls2.gamma"])
    assert torch.equal(out["reg_token"], state["storage_tokens"]) and "rope.periods" in out
    assert not any(k.endswith(("bias_mask", "qkv.bias")) or k == "mask_token" for k in out)
    unmasked = dict(state, **{"blocks.0.attn.qkv.bias_mask": torch.ones(192)})
    with pytest.raises(UserError, match="file: blocks.0.attn.qkv.bias_mask does not mask the key bias"):
        dinov3_to_timm(unmasked, "file")


@pytest.mark.parametrize("name", TINY)
def test_tiny_official_layout_files_load_and_name_their_backbone(name, tmp_path):
    state = random_official_state(TINY_OFFICIAL_SHAPES[name](), seed=3)
    path = tmp_path / "official.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in state.items()}}, path)  # a full training checkpoint
    backbone = build_backbone(name, str(path))
    assert torch.equal(backbone.vit.blocks[1].mlp.fc2.weight, state["blocks.1.mlp.fc2.weight"])
    if "rope_embed.periods" in state:
        assert torch.equal(backbone.vit.rope.periods, state["rope_embed.periods"])  # the file's, not timm's
    assert infer_backbone(backbone.vit.state_dict()) == name
    with pytest.raises(UserError, match="official.pth: weight .* has shape .* does not match this --backbone"):
        build_backbone("test_vit_tiny16" if "dinov2" in name else "test_dinov2_tiny14", str(path))


def test_input_sizes_round_to_patch_14_for_dinov2():
    assert model_input_size((320, 480), backbone_spec("dinov2_vits14").patch_size) == (322, 476)
    assert model_input_size((320, 480), backbone_spec("dinov3_vits16").patch_size) == (320, 480)


@pytest.mark.parametrize("name,file,where", [
    ("dinov2_vits14_reg", "dinov2_vits14_reg4_pretrain.pth", "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/"),
    ("dinov3_vitb16", "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth", "dinov3-downloads"),
])
def test_offline_without_cache_names_the_official_file(name, file, where, monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError) as info:
        build_backbone(name)
    assert file in str(info.value) and where in str(info.value) and "--weights" in str(info.value)


@pytest.mark.parametrize("name", ["dinov2_vitb14_reg", "dinov3_vits16"])
def test_cached_official_weights_load_through_timm_when_offline(name, monkeypatch, tmp_path):
    """The hub's layout in the cache (here a tiny model under the real hub id): loaded offline through
    timm's pretrained mechanism, as for DINO."""
    from safetensors.torch import save_file

    import huggingface_hub.constants as hf
    import vos.models.backbone as backbone_mod

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    real = backbone_spec(name)
    spec = type(real)(real.timm_name, real.patch_size, real.official_file, dict(embed_dim=64, depth=2, num_heads=4),
                      real.family, real.official_url)
    monkeypatch.setitem(backbone_mod.BACKBONES, "cached_tiny", spec)
    torch.manual_seed(3)
    reference = backbone_mod._create_vit(spec, pretrained=False)
    snapshot = tmp_path / f"models--timm--{real.timm_name}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    loaded = build_backbone("cached_tiny")
    assert type(loaded).__name__ == {"dinov2": "Dinov2KeyBackbone", "dinov3": "Dinov3KeyBackbone"}[real.family]
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.vit.state_dict()[key], value, rtol=0, atol=0)


def test_every_backbone_has_a_family_and_a_tiny_random_sibling():
    families = {spec.family for spec in BACKBONES.values()}
    assert families == {"dino", "dinov2", "dinov3"}
    for family in families:
        assert any(name.startswith("test_") and spec.family == family for name, spec in BACKBONES.items())


def test_key_projection_uses_the_fixed_zero_key_bias_of_dinov3():
    backbone = _random_backbone("test_dinov3_tiny16")
    attn = backbone.vit.blocks[0].attn
    with torch.no_grad():
        attn.q_bias.fill_(5.0)
        attn.v_bias.fill_(5.0)
    x = torch.randn(1, 3, 64)
    torch.testing.assert_close(key_projection(attn, x), x @ attn.qkv.weight[64:128].T)


def test_vos_train_and_segment_run_on_dinov2_and_record_it_in_the_block(tmp_path, capsys):
    """`vos train` on a DINOv2-with-registers layout records it in the block checkpoint; `vos segment`
    with that block runs on it (patch 14: 64x80 frames become 70x84 inputs) and refuses DINOv3."""
    from tests.helpers.vos_train import SIZE, make_frame_folders
    from vos.cli import main
    from vos.models.block import read_block_checkpoint
    from vos.palette import read_label_png

    data = make_frame_folders(tmp_path / "data", videos=2, frames=6)
    out = tmp_path / "run"
    (tmp_path / "tiny.yaml").write_text("loss:\n  queries: 4\n  semantic: {positives: 3, negatives: 8}\n"
                                        "  motion: {positives: 2, negatives: 6}\n")
    assert main(["train", "--data", str(data), "--out", str(out), "--backbone", "test_dinov2_reg_tiny14",
                 "--weights", "random", "--resolution", *map(str, SIZE), "--gap", "2", "--iterations", "1",
                 "--config", str(tmp_path / "tiny.yaml")]) == 0
    ckpt = read_block_checkpoint(out / "last.pt")
    assert (ckpt.backbone, ckpt.backbone_weights, ckpt.dim) == ("test_dinov2_reg_tiny14", "random(seed=0)", 64)
    capsys.readouterr()
    seg = tmp_path / "seg"
    assert main(["segment", str(data / "vid_0"), "--out", str(seg), "--block", str(out / "last.pt"),
                 "--weights", "random", "--resolution", *map(str, SIZE)]) == 0
    pngs = sorted(seg.rglob("*.png"))
    assert len(pngs) == 6 and read_label_png(pngs[0]).shape == SIZE
    capsys.readouterr()
    assert main(["segment", str(data / "vid_0"), "--out", str(tmp_path / "seg3"), "--block", str(out / "last.pt"),
                 "--backbone", "test_dinov3_tiny16", "--weights", "random"]) == 2
    assert ("the block was trained on test_dinov2_reg_tiny14, not --backbone test_dinov3_tiny16"
            in capsys.readouterr().err)
    assert main(["segment", str(data / "vid_1"), "--out", str(tmp_path / "seg3"), "--backbone", "test_dinov3_tiny16",
                 "--weights", "random", "--resolution", *map(str, SIZE)]) == 0
    assert len(sorted((tmp_path / "seg3").rglob("*.png"))) == 6
