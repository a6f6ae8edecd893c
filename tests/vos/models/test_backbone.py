"""The DINO key extractor: keys, input sizes, and every supported weights format."""

import argparse

import numpy as np
import pytest
import torch

from vos.infra.errors import UserError
from vos.models.backbone import (backbone_spec, build_backbone, model_input_size,
                                 preprocess_frames)


@pytest.fixture(scope="module")
def tiny(tiny_random_backbone):
    return tiny_random_backbone


def test_keys_are_the_last_blocks_key_projection(tiny):
    x = torch.randn(2, 3, 48, 80)
    seen = {}
    # (the hook returns None: a returned value would replace the block's output)
    handle = tiny.vit.blocks[-1].register_forward_hook(lambda m, inp, out: seen.__setitem__("x", inp[0]))
    feats = tiny(x)
    handle.remove()
    attn = tiny.vit.blocks[-1].attn
    C = tiny.dim
    expected = torch.nn.functional.linear(tiny.vit.blocks[-1].norm1(seen["x"]),
                                          attn.qkv.weight[C:2 * C], attn.qkv.bias[C:2 * C])[:, 1:]
    assert feats.grid == (3, 5)
    assert feats.keys.shape == (2, 15, C) and feats.cls.shape == (2, C)
    torch.testing.assert_close(feats.keys, expected)
    # on the grid the position embeddings were trained for (no resampling), timm's forward agrees
    # (other grids: tests/vos/test_compat_ssl_uvos.py, DINO's interpolation)
    square = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(tiny(square).cls, tiny.vit.forward_features(square)[:, 0])


def test_keys_only_skips_the_last_blocks_attention_and_mlp(tiny):
    x = torch.randn(2, 3, 48, 80)
    full = tiny(x)
    ran = []
    last = tiny.vit.blocks[-1]
    handles = [m.register_forward_hook(lambda m, inp, out: ran.append(m)) for m in (last.mlp, tiny.vit.norm)]
    handles.append(last.attn.register_forward_pre_hook(lambda m, inp: ran.append(m)))
    keys_only = tiny(x, with_cls=False)
    for handle in handles:
        handle.remove()
    assert ran == []  # neither the last attention, its MLP nor the final norm ran
    assert keys_only.cls is None and keys_only.grid == full.grid
    torch.testing.assert_close(keys_only.keys, full.keys, rtol=1e-6, atol=1e-6)


def test_random_weights_are_seeded_and_leave_global_rng_alone(tiny):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with pytest.warns(UserWarning):
        again = build_backbone("test_vit_tiny16", "random")
    assert torch.rand(1) == before
    for a, b in zip(tiny.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_backbone_is_frozen(tiny):
    assert not any(p.requires_grad for p in tiny.parameters())
    tiny.train()
    assert not tiny.training and not tiny.vit.training


@pytest.mark.parametrize("resolution,patch,expected", [((320, 480), 16, (320, 480)), ((321, 487), 8, (320, 488)),
                                                       ((100, 130), 16, (96, 128)), ((5, 7), 16, (16, 16))])
def test_model_input_size_rounds_to_patch_multiples(resolution, patch, expected):
    assert model_input_size(resolution, patch) == expected


def test_preprocess_normalises_with_imagenet_statistics():
    frames = np.full((1, 4, 6, 3), 255, np.uint8)
    x = preprocess_frames(frames, (4, 6))
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    assert preprocess_frames(frames, (8, 16)).shape == (1, 3, 8, 16)


def _save_formats(state, tmp_path):
    """The tiny backbone's weights written in every supported checkpoint layout."""
    from safetensors.torch import save_file

    paths = {}
    paths["dino_backbone"] = tmp_path / "dino_backbone.pth"
    torch.save(state, paths["dino_backbone"])
    # Full DINO checkpoint: student under DDP ('module.backbone.'), teacher plain ('backbone.'),
    # both with projection heads, plus training args. The teacher is what must be loaded.
    student = {f"module.backbone.{k}": v + 1.0 for k, v in state.items()}
    student["module.head.mlp.0.weight"] = torch.zeros(8, 64)
    teacher = {f"backbone.{k}": v for k, v in state.items()}
    teacher["head.last_layer.weight_g"] = torch.ones(4, 1)
    paths["dino_full"] = tmp_path / "dino_full_checkpoint.pth"
    torch.save({"student": student, "teacher": teacher, "optimizer": {}, "epoch": 100,
                "args": argparse.Namespace(arch="vit_small", patch_size=16)}, paths["dino_full"])
    paths["timm_wrapped"] = tmp_path / "timm.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, paths["timm_wrapped"])
    paths["safetensors"] = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(paths["safetensors"]))
    return paths


@pytest.mark.parametrize("fmt", ["dino_backbone", "dino_full", "timm_wrapped", "safetensors"])
def test_local_weights_in_every_format_load_exactly(tiny, tmp_path, fmt):
    state = {k: torch.randn_like(v) for k, v in tiny.vit.state_dict().items()}
    path = _save_formats(state, tmp_path)[fmt]
    loaded = build_backbone("test_vit_tiny16", str(path))
    for k, v in loaded.vit.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=f"{fmt}: {k}")


def test_position_embeddings_of_another_grid_are_resampled(tiny, tmp_path):
    state = {k: v.clone() for k, v in tiny.vit.state_dict().items()}
    state["pos_embed"] = torch.randn(1, 1 + 7 * 7, 64)  # a 112-px checkpoint; the model's grid is 14x14
    path = tmp_path / "small_grid.pth"
    torch.save(state, path)
    loaded = build_backbone("test_vit_tiny16", str(path))
    assert loaded.vit.pos_embed.shape == (1, 1 + 14 * 14, 64)
    torch.testing.assert_close(loaded.vit.pos_embed[0, 0], state["pos_embed"][0, 0])  # class token kept as is


def test_weights_errors_are_one_line_and_name_the_file(tiny, tmp_path):
    cases = {}
    torch.save({"encoder.layer1.weight": torch.zeros(3)}, tmp_path / "unrelated.pth")
    cases["unrelated.pth"] = "no backbone weights"
    partial = {k: v for k, v in tiny.vit.state_dict().items() if not k.startswith("blocks.1.")}
    torch.save(partial, tmp_path / "partial.pth")
    cases["partial.pth"] = "missing"
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    cases["notes.pth"] = "is a text file, not DINO"
    cases["absent.pth"] = "not found"
    for name, message in cases.items():
        with pytest.raises(UserError, match=message) as info:
            build_backbone("test_vit_tiny16", str(tmp_path / name))
        assert name in str(info.value) and "\n" not in str(info.value)
    wrong = dict(tiny.vit.state_dict())
    wrong["blocks.0.mlp.fc1.weight"] = torch.zeros(10, 64)
    torch.save(wrong, tmp_path / "wrong_shape.pth")
    with pytest.raises(UserError, match=r"blocks.0.mlp.fc1.weight has shape \(10, 64\)"):
        build_backbone("test_vit_tiny16", str(tmp_path / "wrong_shape.pth"))
    # shapes are checked before completeness: the first weight whose shape differs is named
    with pytest.raises(UserError, match=r"blocks.0.attn.proj.bias has shape \(64,\), the backbone expects \(768,\); "
                                       r"the file \(patch 16, width 64, 1 blocks\) does not match this --backbone"):
        build_backbone("dino_vitb16", str(tmp_path / "partial.pth"))


def test_unknown_backbone_is_an_error():
    with pytest.raises(UserError, match="unknown backbone"):
        backbone_spec("resnet50")


def test_offline_without_cache_names_the_file_to_fetch(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as info:
        build_backbone("dino_vits16")
    message = str(info.value)
    assert "dino_deitsmall16_pretrain.pth" in message and "--weights" in message
    assert "https://dl.fbaipublicfiles.com/dino/" in message


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The hub at a closed local port (connection refused at once), no proxy, an empty cache."""
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf"


def test_unreachable_hub_fails_at_once_and_names_the_ways_out(unreachable_hub, monkeypatch):
    import vos.models.backbone as backbone_mod

    downloads = []
    monkeypatch.setattr(backbone_mod, "_create_vit", lambda *a, **k: downloads.append(a) or pytest.fail("downloaded"))
    assert backbone_mod.hub_address() == ("127.0.0.1", 9) and not backbone_mod.hub_reachable()
    with pytest.raises(UserError) as info:
        build_backbone("dino_vits16")
    message = str(info.value)
    assert "cannot reach 127.0.0.1:9" in message and "not in the local cache" in message
    assert "--weights random" in message and "--weights PATH" in message and "dino_deitsmall16_pretrain.pth" in message
    assert downloads == []  # no download attempt, hence none of its retries


def test_unreachable_hub_uses_the_cached_official_weights(unreachable_hub, monkeypatch):
    """Offline with the weights in the Hugging Face cache: loaded from there, no download attempt."""
    from safetensors.torch import save_file

    import vos.models.backbone as backbone_mod

    # a tiny ViT under the DINO ViT-S/16 hub id, so the cache layout is the real one
    spec = backbone_mod.BackboneSpec("vit_small_patch16_224.dino", 16, "dino_deitsmall16_pretrain.pth",
                                     dict(embed_dim=64, depth=2, num_heads=4))
    monkeypatch.setitem(backbone_mod.BACKBONES, "cached_tiny", spec)
    torch.manual_seed(3)
    reference = backbone_mod._create_vit(spec, pretrained=False)
    snapshot = unreachable_hub / "models--timm--vit_small_patch16_224.dino" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    assert backbone_mod.cached_official_file(spec) == str(snapshot / "model.safetensors")
    loaded = build_backbone("cached_tiny")
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.vit.state_dict()[key], value, rtol=0, atol=0)
