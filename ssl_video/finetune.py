"""Action recognition from a pretrained backbone: full fine-tuning or the linear probe, then the
10-clip video-level test (FAME's eval.py protocol).

Fine-tuning: the query encoder's backbone + dropout + a new linear classifier, all trained.
Linear probe (``linear=True``): the backbone is frozen and kept in eval mode (BatchNorm running
statistics frozen), only the classifier is trained (its dropout stays active). SGD with a step
schedule (``lr_steps`` in epochs, factor ``lr_decay``). Training uses one random clip per video
per epoch; the test averages the logits of ``clips_per_video`` uniformly spaced clips per video.
``DIR/last.pt`` is written atomically after every epoch and ``resume=True`` continues from it.
Under ``torchrun`` every process trains on its share of the videos (DDP, ``batch_size`` per
process) and tests its share of the test videos; the logits are gathered, so every process
gets the results of the whole test set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ssl_video.checkpoint import gather_rng_states, restore_training_state, seed_everything
from ssl_video.config import FinetuneConfig
from ssl_video.data.clips import LabeledClips, MultiClipVideos, normalize_clips
from ssl_video.data.config import ClipDataConfig
from ssl_video.data.splits import load_items
from ssl_video.metrics import video_level_accuracy
from ssl_video.models import build_backbone
from ssl_video.pretrained import load_backbone
from vos.infra.config import config_to_dict
from vos.infra.distributed import (DistContext, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, cleanup,
                             init_distributed, shard)
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_torch_save, atomic_write_text
from vos.infra.outputs import RUN_CHECKPOINT, remove_stale_temporaries, run_checkpoint, write_marker
from vos.infra.progress import progress_bar
from vos.infra.training_log import TrainingLog

COMMAND = "ssl-video finetune"  # the marker of its run folders


def eval_subset(dataset: str) -> str:
    """The held-out subset tested on: Kinetics has train/val folders, UCF101/HMDB51 test lists."""
    return "val" if dataset == "kinetics" else "test"


SINGLE_PROCESS = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class VideoClassifier(nn.Module):
    """backbone -> dropout -> linear: (B, C, T, H, W) -> logits (B, num_classes)."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone(x)))  # B num_classes


def build_classifier(cfg: FinetuneConfig, num_classes: int) -> tuple[VideoClassifier, str]:
    """The classifier with the pretrained backbone (or a random one without ``pretrained``), and its arch."""
    if cfg.pretrained is not None:
        backbone, arch = load_backbone(cfg.pretrained, cfg.arch)
    else:
        if cfg.arch is None:
            raise UserError("give --pretrained CKPT (or --arch for a randomly initialised baseline)")
        backbone, arch = build_backbone(cfg.arch), cfg.arch
    model = VideoClassifier(backbone, num_classes, cfg.dropout)
    if cfg.linear:
        for p in model.backbone.parameters():
            p.requires_grad = False
    return model, arch


def set_train_mode(model: VideoClassifier, linear: bool) -> None:
    model.train()
    if linear:
        model.backbone.eval()  # frozen BatchNorm statistics


@torch.no_grad()
def clip_outputs(fn, loader: DataLoader, desc: str, show: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``fn`` to every clip of a MultiClipVideos loader: -> (outputs (V, n, ...), labels (V,))."""
    outputs, labels = [], []
    for clips, label in progress_bar(loader, desc=desc, leave=False, disable=not show):  # Bv n C T H W
        bv, n = clips.shape[:2]
        out = fn(normalize_clips(clips.flatten(0, 1)))              # Bv*n ...
        outputs.append(out.view(bv, n, *out.shape[1:]))
        labels.append(torch.as_tensor(label))
    return torch.cat(outputs), torch.cat(labels)


def evaluate(model: VideoClassifier, dataset: Dataset, workers: int = 0, desc: str = "test",
             ctx: DistContext | None = None, predictions: bool = False):
    """Video-level top-1/top-5 and clip-level top-1 (percent) of ``model`` on a MultiClipVideos dataset;
    with ``predictions`` also the class each video is given (V,), as a second value.

    With a distributed ``ctx`` (collective: every process calls it) each process scores every
    world_size-th video and the logits of all videos are gathered, in dataset order.
    """
    ctx = ctx or SINGLE_PROCESS
    model.eval()
    device = next(model.parameters()).device  # clips are decoded on the CPU
    mine = shard(range(len(dataset)), ctx)
    loader = DataLoader(Subset(dataset, mine), batch_size=1, shuffle=False, num_workers=workers)
    logits, labels = clip_outputs(lambda clips: model(clips.to(device)), loader, desc, show=ctx.is_main)  # V' n C, V'
    parts = all_gather_objects((mine, logits.cpu(), labels), ctx)
    order = torch.tensor([i for indices, _, _ in parts for i in indices]).argsort()
    logits = torch.cat([part_logits for _, part_logits, _ in parts])[order]   # V n C, in dataset order
    labels = torch.cat([part_labels for _, _, part_labels in parts])[order]
    results = video_level_accuracy(logits, labels)
    return (results, logits.mean(dim=1).argmax(dim=1)) if predictions else results


PREDICTIONS_CSV = "predictions.csv"  # per test video: its class and the class the model gives it
PREDICTIONS_HEADER = "video,label,predicted"


def write_predictions(path: Path, items: list, predicted: torch.Tensor, classes: list[str]) -> None:
    """``path``: CSV ``video,label,predicted`` (class names), one row per test video in dataset order;
    the confusion matrix and per-class accuracy of ``ssl-video report`` come from it."""
    rows = [f"{item.path.parent.name}/{item.path.name},{classes[item.label]},{classes[int(p)]}"
            for item, p in zip(items, predicted)]
    atomic_write_text(path, PREDICTIONS_HEADER + "\n" + "".join(row + "\n" for row in rows))


def predictions_owned(path: Path) -> bool:
    """``path`` is a predictions file this module wrote (it may be replaced)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == PREDICTIONS_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def labeled_items(cfg: ClipDataConfig, subset: str) -> tuple[list, list[str]]:
    """The videos of ``subset`` and the class names; UserError for a dataset without labels."""
    if cfg.data_root is None:
        raise UserError("no --data-root given: pass the folder holding the videos")
    items, classes = load_items(cfg.dataset, cfg.data_root, cfg.split_dir, cfg.split, subset)
    if not classes or any(item.label < 0 for item in items):
        raise UserError(f"--dataset {cfg.dataset} has no class labels; fine-tuning needs ucf101, hmdb51 or kinetics")
    return items, classes


def evaluation_datasets(cfg: ClipDataConfig, clips_per_video: int, eval_train: bool) -> tuple[Dataset, Dataset | None, list[str]]:
    """The test protocol's datasets: ``clips_per_video`` clips of every held-out video (and of every
    training video with ``eval_train``), and the class names."""
    test_items, classes = labeled_items(cfg, eval_subset(cfg.dataset))
    args = (cfg.frames, cfg.frame_stride, cfg.crop)
    train_eval = None
    if eval_train:
        train_items, _ = labeled_items(cfg, "train")
        train_eval = MultiClipVideos(train_items, *args, clips_per_video=clips_per_video)
    return MultiClipVideos(test_items, *args, clips_per_video=clips_per_video), train_eval, classes


def evaluation_results(model: nn.Module, test_set: Dataset, train_eval_set: Dataset | None, workers: int = 0,
                       ctx: DistContext | None = None, predictions_csv: Path | None = None,
                       classes: list[str] | None = None) -> dict[str, float]:
    """The results of the test step: ``{"video_top1", "video_top5", "clip_top1"}`` on the held-out
    videos, plus ``"train_video_top1"`` when ``train_eval_set`` is given (percent). With
    ``predictions_csv`` (and ``classes``) the main process also writes each test video's predicted class there."""
    results, predicted = evaluate(model, test_set, workers, ctx=ctx, predictions=True)
    if predictions_csv is not None and (ctx or SINGLE_PROCESS).is_main:
        write_predictions(predictions_csv, test_set.items, predicted, classes)
    if train_eval_set is not None:
        results["train_video_top1"] = evaluate(model, train_eval_set, workers, desc="train videos", ctx=ctx)["video_top1"]
    return results


def _datasets(cfg: FinetuneConfig) -> tuple[Dataset, Dataset, Dataset | None, list[str]]:
    train_items, classes = labeled_items(cfg, "train")
    test_set, train_eval, _ = evaluation_datasets(cfg, cfg.clips_per_video, cfg.eval_train)
    return LabeledClips(train_items, cfg.frames, cfg.frame_stride, cfg.crop, train=True), test_set, train_eval, classes


def finetune(cfg: FinetuneConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Train the classifier on the training split, test on the test split; returns the results dict
    ``{"video_top1", "video_top5", "clip_top1"}`` (percent; plus ``"train_video_top1"`` with
    ``eval_train``) and writes it to ``out_dir/results.json`` (each test video's predicted class to
    ``out_dir/predictions.csv``). Under torchrun every process
    returns the same results."""
    if cfg.epochs < 1 or cfg.batch_size < 1 or not 0.0 <= cfg.dropout < 1.0:
        raise UserError("--epochs and --batch-size must be positive and --dropout in [0, 1)")
    ctx = init_distributed()
    try:
        return _finetune(cfg, Path(out_dir), resume, ctx)
    finally:
        cleanup(ctx)


def _finetune(cfg: FinetuneConfig, out_dir: Path, resume: bool, ctx: DistContext) -> dict:
    resume_from = run_checkpoint(out_dir, COMMAND, resume)
    seed_everything(cfg.seed)  # identical initial classifier in every process
    train_set, test_set, train_eval_set, classes = _datasets(cfg)
    model, arch = build_classifier(cfg, len(classes))
    model = model.to(ctx.device)
    cfg = dataclasses.replace(cfg, arch=arch)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.lr_steps, gamma=cfg.lr_decay)
    start_epoch, step = 0, 0
    if resume_from is not None:
        start_epoch, step = restore_training_state(resume_from, config_to_dict(cfg), model, optimizer, scheduler, ctx)
    ddp = DistributedDataParallel(model) if ctx.enabled else model
    # every process gets the same number of videos per epoch (the sampler repeats a few to even out)
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_marker(out_dir, COMMAND)
        remove_stale_temporaries(out_dir / RUN_CHECKPOINT)  # left by a process killed while saving
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    log = TrainingLog(out_dir, start_step=step, enabled=ctx.is_main)
    last_path = out_dir / RUN_CHECKPOINT
    mode = "linear" if cfg.linear else "finetune"
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        # the loader's generator seeds its workers from (seed, epoch, rank) only: a resumed epoch
        # loads the same clips
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=False,
                            num_workers=cfg.workers,
                            generator=torch.Generator().manual_seed(cfg.seed * 1009 + epoch + 1_000_003 * ctx.rank))
        set_train_mode(model, cfg.linear)
        seen, loss_sum, correct = 0, 0.0, 0
        for clips, labels in progress_bar(loader, desc=f"{mode} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                                          disable=not ctx.is_main):   # B C T H W, B
            clips, labels = clips.to(ctx.device), labels.to(ctx.device)
            logits = ddp(normalize_clips(clips))
            loss = F.cross_entropy(logits, labels)
            # every process must take the same decision, so the check uses the sum over processes
            if not math.isfinite(float(all_reduce_sum(loss.detach().reshape(1), ctx))):
                kept = f"the last good checkpoint {last_path} is kept" if last_path.exists() else "no checkpoint was written yet"
                raise UserError(f"loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}; stopped, "
                               f"{kept}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(labels)
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
        # the epoch's numbers over all processes
        totals = torch.tensor([seen, loss_sum, correct], dtype=torch.float64, device=ctx.device)
        seen, loss_sum, correct = all_reduce_sum(totals, ctx).tolist()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        log.log(step, epoch=epoch + 1, lr=lr, loss=loss_sum / seen, train_clip_top1=100.0 * correct / seen)
        rng = gather_rng_states(ctx)  # collective: every process takes part
        if ctx.is_main:
            atomic_torch_save({"kind": "finetune", "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "step": step,
                               "rng": rng, "config": config_to_dict(cfg), "classes": classes}, last_path)
            print(f"{mode}: epoch {epoch + 1}/{cfg.epochs} loss {loss_sum / seen:.4f} "
                  f"train clip top-1 {100.0 * correct / seen:.1f}%", flush=True)
        barrier(ctx)  # the checkpoint is complete before any process goes on
    log.close()
    broadcast_buffers(model, ctx)  # every process tests the checkpointed model (rank 0's BatchNorm statistics)
    results = evaluation_results(model, test_set, train_eval_set, cfg.workers, ctx, out_dir / PREDICTIONS_CSV, classes)
    if ctx.is_main:
        atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
        print(f"{mode}: done in {time.time() - t0:.0f} s, test video top-1 "
              f"{results['video_top1']:.2f}% top-5 {results['video_top5']:.2f}% clip top-1 {results['clip_top1']:.2f}%",
              flush=True)
    return results
