"""MoCo queue / momentum invariants, the CO2 term against a numpy computation, and the backbones."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_video.co2 import co2_consistency
from ssl_video.moco import MoCo
from ssl_video.models import build_backbone, list_backbones
from vos.infra.errors import UserError


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_co2_matches_numpy_symmetric_kl():
    rng = np.random.default_rng(0)
    B, D, K, t = 3, 4, 5, 0.05
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
    q, k, queue = unit(rng.normal(size=(B, D))), unit(rng.normal(size=(B, D))), unit(rng.normal(size=(K, D)))
    expected = []
    for i in range(B):
        p_q = _softmax(np.concatenate([[q[i] @ k[i]], queue @ q[i]]) / t)
        p_k = _softmax(np.concatenate([[k[i] @ q[i]], queue @ k[i]]) / t)
        kl_qk = np.sum(p_q * np.log(p_q / p_k))
        kl_kq = np.sum(p_k * np.log(p_k / p_q))
        expected.append(0.5 * (kl_qk + kl_kq))
    got = co2_consistency(torch.tensor(q), torch.tensor(k), torch.tensor(queue.T), temperature=t)
    assert got.item() == pytest.approx(float(np.mean(expected)), rel=1e-9)
    assert got.item() > 0.01
    # identical query and key: identical distributions, no consistency penalty
    same = co2_consistency(torch.tensor(q), torch.tensor(q), torch.tensor(queue.T), temperature=t)
    assert same.item() == pytest.approx(0.0, abs=1e-12)


def _tiny_moco(**kw):
    torch.manual_seed(0)
    return MoCo("r3d_tiny", dim=16, K=kw.pop("K", 12), **kw)


def test_momentum_update_is_ema_of_query_encoder():
    model = _tiny_moco(m=0.9)
    for p in model.encoder_q.parameters():
        p.data.add_(1.0)
    k_before = [p.clone() for p in model.encoder_k.parameters()]
    q_now = [p.clone() for p in model.encoder_q.parameters()]
    model._momentum_update_key_encoder()
    for kb, qn, ka in zip(k_before, q_now, model.encoder_k.parameters()):
        torch.testing.assert_close(ka, 0.9 * kb + 0.1 * qn)
        assert not ka.requires_grad


def test_queue_receives_both_directions_keys_and_wraps():
    model = _tiny_moco(K=12)
    x1, x2 = torch.rand(4, 3, 4, 32, 32), torch.rand(4, 3, 4, 32, 32)
    model(x1, x2)
    assert int(model.queue_ptr) == 8
    ref = copy.deepcopy(model)
    model(x1, x2)  # 8 more keys: slots 8..11 then 0..3
    assert int(model.queue_ptr) == 4
    with torch.no_grad():
        ref._momentum_update_key_encoder()
        k1 = F.normalize(ref.encoder_k(x1), dim=1)
        k2 = F.normalize(ref.encoder_k(x2), dim=1)
    keys = torch.cat([k1, k2]).T  # dim 8
    torch.testing.assert_close(model.queue[:, [8, 9, 10, 11, 0, 1, 2, 3]], keys)
    torch.testing.assert_close(model.queue[:, 4:8], ref.queue[:, 4:8])  # untouched slots kept
    torch.testing.assert_close(model.queue.norm(dim=0), torch.ones(12))


def test_loss_is_symmetric_infonce_over_queue_plus_co2():
    model = _tiny_moco(K=12, T=0.1, co2_alpha=2.0, co2_t=0.05)
    x1, x2 = torch.rand(2, 3, 4, 32, 32), torch.rand(2, 3, 4, 32, 32)
    ref = copy.deepcopy(model)
    loss, stats = model(x1, x2)
    queue = ref.queue.clone()
    q1, q2 = F.normalize(ref.encoder_q(x1), dim=1), F.normalize(ref.encoder_q(x2), dim=1)
    with torch.no_grad():
        ref._momentum_update_key_encoder()
        k1, k2 = F.normalize(ref.encoder_k(x1), dim=1), F.normalize(ref.encoder_k(x2), dim=1)

    def nce(q, k):  # -log softmax of the positive, written out
        pos = torch.exp((q * k).sum(1) / 0.1)
        neg = torch.exp(q @ queue / 0.1).sum(1)
        return (-torch.log(pos / (pos + neg))).mean()

    expected_nce = (nce(q1, k2) + nce(q2, k1)) / 2
    expected_co2 = (co2_consistency(q1, k2, queue, 0.05) + co2_consistency(q2, k1, queue, 0.05)) / 2
    torch.testing.assert_close(stats["loss_nce"], expected_nce.detach())
    torch.testing.assert_close(loss, (expected_nce + 2.0 * expected_co2).detach())
    loss.backward()
    assert all(p.grad is None for p in model.encoder_k.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder_q.parameters())


def test_queue_too_short_for_batch_is_an_error():
    model = _tiny_moco(K=6)
    with pytest.raises(UserError, match="moco-k"):
        model(torch.rand(4, 3, 4, 32, 32), torch.rand(4, 3, 4, 32, 32))


@pytest.mark.parametrize("arch,dim", [("r3d_tiny", 128), ("r3d_18", 512), ("mc3_18", 512),
                                      ("r2plus1d_18", 512), ("s3d", 1024), ("i3d", 1024)])
def test_backbones_return_pooled_features(arch, dim):
    model = build_backbone(arch).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, 64, 64))
    assert out.shape == (2, dim) and model.feature_dim == dim
    assert torch.isfinite(out).all()


def test_unknown_arch_is_a_user_error():
    assert "i3d" in list_backbones()
    with pytest.raises(UserError, match="unknown --arch 'resnet50'"):
        build_backbone("resnet50")
