"""The shipped `vos train` configs load and encode the reference recipe."""

from tests.helpers.paths import REPO_ROOT
from vos.infra.config import load_config
from vos.train.config import TrainConfig

CONFIGS = REPO_ROOT / "configs" / "vos"


def test_reference_config_is_the_reference_recipe():
    cfg = load_config(TrainConfig, CONFIGS / "train_reference.yaml")
    assert cfg.backbone == "dino_vits8" and cfg.frames == 3 and cfg.gap == 4
    assert tuple(cfg.resolution) == (192, 384) and cfg.iterations == 60000 and cfg.batch_size == 1
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.weight_decay) == (1e-5, 1e-6, 0.1)
    assert (cfg.block.num_heads, cfg.block.proj_drop, cfg.block.attn_drop) == (8, 0.1, 0.4)
    s, m = cfg.loss.semantic, cfg.loss.motion
    assert (cfg.loss.queries, s.positives, s.negatives, s.positive_margin, s.negative_margin) == (8, 30, 200, 0.9, 0.1)
    assert (m.positives, m.negatives, m.margin, s.weight, m.weight) == (10, 50, 1.0, 1.0, 1.0)
    assert cfg.checkpoint_every == 1000
    # the defaults are the same recipe apart from the backbone
    assert load_config(TrainConfig, None, {"backbone": "dino_vits8"}) == cfg


def test_tiny_config_fits_its_patch_grid():
    cfg = load_config(TrainConfig, CONFIGS / "train_synth_tiny.yaml")
    patches = (cfg.resolution[0] // 16) * (cfg.resolution[1] // 16)
    assert cfg.backbone == "test_vit_tiny16" and patches == 192
    assert cfg.loss.semantic.positives + cfg.loss.semantic.negatives <= patches
    assert cfg.loss.motion.positives + cfg.loss.motion.negatives <= patches
