"""The spatio-temporal block: size, attention, the training-free mode and the checkpoint format."""

import pytest
import torch

from vos.infra.errors import UserError
from vos.models.block import SpatioTemporalBlock, block_checkpoint, load_block, training_free_block


def test_parameter_count_matches_the_reference_block():
    # dim 384, 8 heads, MLP ratio 4, qkv without bias: LN 768 + qkv 442,368 + proj 147,840
    # + LN 768 + fc1 591,360 + fc2 590,208 = 1,773,312
    assert sum(p.numel() for p in SpatioTemporalBlock(384).parameters()) == 1_773_312


def test_forward_attention_is_the_head_average_of_softmax_qk():
    torch.manual_seed(0)
    block = SpatioTemporalBlock(32, num_heads=8).eval()
    x = torch.randn(2, 10, 32)
    out, attn = block(x)
    q, k, _ = block.qkv(block.norm1(x)).chunk(3, dim=-1)
    ref = torch.stack([torch.softmax(q[..., h * 4:(h + 1) * 4] @ k[..., h * 4:(h + 1) * 4].transpose(1, 2) / 2.0, -1)
                       for h in range(8)]).mean(0)
    torch.testing.assert_close(attn, ref)
    assert out.shape == x.shape
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 10))
    qs, ks = block.queries_keys(x)
    torch.testing.assert_close((torch.softmax(qs @ ks.transpose(-1, -2), -1)).mean(1), attn)
    q1, k1 = block.queries_keys(x, [1])  # all queries, the keys of the second sequence only
    torch.testing.assert_close(q1, qs)
    torch.testing.assert_close(k1, ks[1:])
    assert q1.shape == (2, 8, 10, 4) and k1.shape == (1, 8, 10, 4)


def test_identity_projections_are_skipped_exactly(monkeypatch):
    """The training-free block's queries and keys are the layer-normalised tokens (scaled): no
    product is computed, and the result equals the product with the identity."""
    block = training_free_block(16, num_heads=8)
    x = torch.randn(3, 6, 16)
    expected = block.qkv(block.norm1(x)).chunk(3, dim=-1)
    calls = []
    monkeypatch.setattr(torch.nn.functional, "linear", lambda *a: calls.append(1) or torch.zeros(()))
    q, k = block.queries_keys(x, [2])
    assert not calls
    torch.testing.assert_close(q, block._split_heads(expected[0]) * block.scale, rtol=0, atol=0)
    torch.testing.assert_close(k, block._split_heads(expected[1][2:]), rtol=0, atol=0)


def test_training_free_attention_uses_layer_normalised_keys_directly():
    x = torch.randn(1, 6, 16)
    _, attn = training_free_block(16, num_heads=8)(x)
    ln = torch.nn.functional.layer_norm(x[0], (16,))
    ref = torch.stack([torch.softmax(ln[:, 2 * h:2 * h + 2] @ ln[:, 2 * h:2 * h + 2].T / 2 ** 0.5, -1)
                       for h in range(8)]).mean(0)
    torch.testing.assert_close(attn[0], ref)


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(1)
    block = SpatioTemporalBlock(64)
    path = tmp_path / "block.pt"
    ckpt = block_checkpoint(block, "test_vit_tiny16", "random(seed=0)", iteration=7)
    ckpt["optimizer"] = {"state": {}}  # training checkpoints carry more keys; they are ignored
    torch.save(ckpt, path)
    loaded, meta = load_block(path, "test_vit_tiny16", 64)
    assert meta["iteration"] == 7 and not loaded.training
    for a, b in zip(block.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="trained on test_vit_tiny16, not --backbone dino_vits16"):
        load_block(path, "dino_vits16", 384)
    torch.save({"state_dict": block.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="not a block checkpoint; expected a .vos train. checkpoint"):
        load_block(tmp_path / "plain.pt", "test_vit_tiny16", 64)
    torch.save({**ckpt, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(UserError, match="version 99"):
        load_block(tmp_path / "future.pt", "test_vit_tiny16", 64)
    with pytest.raises(UserError, match="not found"):
        load_block(tmp_path / "absent.pt", "test_vit_tiny16", 64)
