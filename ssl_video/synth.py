"""A synthetic action dataset in the UCF101 layout whose backgrounds are a measurable shortcut.

Each class is a motion pattern of one textured square (:data:`MOTIONS`; by default the first
``classes`` of them, or the ``motions`` named). The object's side is ``object_size`` times the frame
side. Its texture and colours are drawn independently of the class, so only its motion tells the
classes apart: per video (``object_appearance="random"``, the default), or one object shared by every
video (``"shared"``). With a shared object, FAME's merged query keeps no per-video appearance cue of
the object either, so matching a clip to its own video needs the object's motion (docs/benchmarks.md,
"Evidence: MoCo vs MoCo + FAME").
Backgrounds come in ``C`` families (family k: hue around k/C, one of three texture types):

* training split: a video of class k always gets background family k, so the background alone
  predicts the class perfectly (the shortcut a contrastive model happily learns);
* test split: the family is drawn uniformly at random, independently of the class, so a
  background-only classifier is at chance (1/C) and only motion-aware features generalise.

Layout (as UCF101; ``--split-dir OUT/splits``)::

    OUT/<Class>/v_<Class>_gGG_c01.avi      one group per video, MPEG-4 Part 2 in AVI
    OUT/splits/classInd.txt                 "1 MoveRight" ...
    OUT/splits/trainlist01.txt              "MoveRight/v_MoveRight_g05_c01.avi 1"
    OUT/splits/testlist01.txt               "MoveRight/v_MoveRight_g01_c01.avi" (no label)
    OUT/synth.json                          options + per video: class, split, background family

Groups g01..gNN with N = round(test_fraction * videos_per_class) are the test split (UCF101's
split 1 also tests on its first groups). Every video is drawn from its own random stream
``(seed, class, video)``, so the output is deterministic for a seed and an interrupted run resumes
by skipping the videos already written (each file is written atomically).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text
from vos.infra.outputs import check_writable
from vos.infra.progress import progress_bar
from vos.infra.video_writer import VideoWriter

MOTIONS = ("MoveRight", "MoveLeft", "MoveUp", "MoveDown", "Circle", "Zoom", "Oscillate", "Diagonal")
TEXTURES = ("stripes", "checker", "waves")
FLIP_SAFE_MOTIONS = ("MoveUp", "MoveDown", "Zoom", "Circle")  # a horizontal flip maps each onto its own class
FPS = 25
OBJECT_APPEARANCES = ("random", "shared")


@dataclass(frozen=True)
class SynthOptions:
    classes: int = 5
    videos_per_class: int = 12
    frames: int = 16
    size: int = 64
    seed: int = 0
    test_fraction: float = 1 / 3
    object_size: float = 0.25  # object side / frame side: 6.25% of the frame at rest
    motions: Optional[tuple[str, ...]] = None  # the classes by name; None: MOTIONS[:classes]
    object_appearance: str = "random"  # "random": texture and colours per video; "shared": one for all videos

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.motions) if self.motions else MOTIONS[: self.classes]

    def validate(self) -> None:
        if self.motions:
            unknown = [m for m in self.motions if m not in MOTIONS]
            if unknown:
                raise UserError(f"--motions: unknown motion {unknown[0]!r}; choose from {', '.join(MOTIONS)}")
            if len(set(self.motions)) != len(self.motions) or len(self.motions) < 2:
                raise UserError(f"--motions needs at least 2 different motions, got {','.join(self.motions)}")
            if len(self.motions) != self.classes:
                raise UserError(f"--classes {self.classes} disagrees with the {len(self.motions)} --motions given; "
                               "give only one of them")
        if self.object_appearance not in OBJECT_APPEARANCES:
            raise UserError(f"--object-appearance must be one of {', '.join(OBJECT_APPEARANCES)}, "
                           f"got {self.object_appearance!r}")
        if not 0.05 <= self.object_size <= 0.6:
            raise UserError(f"--object-size is the object side over the frame side, in [0.05, 0.6] (the moves "
                           f"need room), got {self.object_size}")
        if not 2 <= self.classes <= len(MOTIONS):
            raise UserError(f"--classes must be between 2 and {len(MOTIONS)} (one per motion pattern: "
                           f"{', '.join(MOTIONS)}), got {self.classes}")
        if self.videos_per_class < 2:
            raise UserError(f"--videos-per-class must be at least 2 (one train, one test), got {self.videos_per_class}")
        if self.frames < 2:
            raise UserError(f"--frames must be at least 2, got {self.frames}")
        if self.size < 16 or self.size % 2:
            raise UserError(f"--size must be an even number of pixels >= 16 (the codec needs even sizes), got {self.size}")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        if not 1 <= self.num_test_groups < self.videos_per_class:
            raise UserError(f"--test-fraction {self.test_fraction} leaves no train or no test video among "
                           f"{self.videos_per_class} per class")

    @property
    def num_test_groups(self) -> int:
        return int(round(self.test_fraction * self.videos_per_class))


@dataclass(frozen=True)
class SynthVideo:
    relpath: str  # "<Class>/v_<Class>_gGG_c01.avi"
    label: int  # 0-based class index = motion pattern
    group: int  # 1-based, the gGG of the name
    split: str  # "train" | "test"
    background_family: int


# ---------------------------------------------------------------------------------------- rendering
def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """float (..., 3) with hue in turns, s and v in [0, 1] -> float RGB in [0, 1]."""
    h = (hsv[..., 0] % 1.0) * 6
    s, v = hsv[..., 1], hsv[..., 2]
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    return np.choose(i[..., None], choices)


def render_background(family: int, num_families: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """float (size, size, 3) RGB: two shades of hue ~family/num_families in the family's texture."""
    hue = family / num_families + rng.uniform(-0.2, 0.2) / num_families
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = rng.uniform(6, 14)
    phase = rng.uniform(0, 2 * math.pi)
    texture = TEXTURES[family % len(TEXTURES)]
    if texture == "stripes":
        angle = rng.uniform(0, math.pi)
        pattern = (np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period + phase) > 0)
    elif texture == "checker":
        cell = int(period // 2)
        pattern = ((xx // cell + yy // cell) % 2) > 0
    else:  # smooth waves
        pattern = np.sin(2 * math.pi * xx / period + phase) * np.sin(2 * math.pi * yy / (1.3 * period)) > 0
    sat = rng.uniform(0.45, 0.85)
    v_dark, v_light = rng.uniform(0.35, 0.55), rng.uniform(0.7, 0.95)
    hsv = np.stack([np.full_like(xx, hue), np.full_like(xx, sat), np.where(pattern, v_light, v_dark)], -1)
    return _hsv_to_rgb(hsv)


def render_object_texture(side: int, rng: np.random.Generator) -> np.ndarray:
    """float (side, side, 3): a checkerboard of two random saturated colours, independent of the class."""
    hues = rng.uniform(0, 1, 2)
    colors = _hsv_to_rgb(np.stack([hues, rng.uniform(0.6, 1.0, 2), np.array([rng.uniform(0.85, 1.0),
                                                                             rng.uniform(0.2, 0.45)])], -1))
    cell = max(2, side // 4)
    yy, xx = np.mgrid[0:side, 0:side]
    return colors[((yy // cell + xx // cell) % 2)]


def object_track(motion: str, frames: int, size: int, rng: np.random.Generator,
                 object_size: float = 0.25) -> np.ndarray:
    """float (frames, 3): top-left x, y and side of the square in every frame (kept inside the frame)."""
    side0 = object_size * size
    t = np.linspace(0, 1, frames)
    lo, hi = 0.05 * size, 0.95 * size - side0  # travel range of the top-left corner
    travel = rng.uniform(0.7, 1.0) * (hi - lo)
    start = lo + rng.uniform(0, hi - lo - travel)
    across = rng.uniform(lo, hi)  # the fixed coordinate of straight moves
    side = np.full(frames, side0)
    if motion in ("MoveRight", "MoveLeft", "MoveDown", "MoveUp"):
        along = start + travel * (t if motion in ("MoveRight", "MoveDown") else 1 - t)
        x, y = (along, np.full(frames, across)) if motion in ("MoveRight", "MoveLeft") else (np.full(frames, across), along)
    elif motion == "Diagonal":
        x = y = start + travel * t
    elif motion == "Circle":
        radius = rng.uniform(0.18, 0.25) * size
        direction = rng.choice([-1.0, 1.0])
        angle = rng.uniform(0, 2 * math.pi) + direction * 2 * math.pi * t
        centre = size / 2 - side0 / 2 + rng.uniform(-0.05, 0.05, 2) * size
        x, y = centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)
    elif motion == "Zoom":
        side = side0 * (0.6 + 0.9 * (1 - np.abs(2 * t - 1)))  # grows, then shrinks
        centre = rng.uniform(0.35, 0.65, 2) * size
        x, y = centre[0] - side / 2, centre[1] - side / 2
    elif motion == "Oscillate":
        amplitude = rng.uniform(0.15, 0.22) * size
        x = size / 2 - side0 / 2 + amplitude * np.sin(2 * math.pi * 2 * t + rng.uniform(0, 2 * math.pi))
        y = np.full(frames, across)
    else:
        raise UserError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    x = np.clip(x, 0, size - side)
    y = np.clip(y, 0, size - side)
    return np.stack([x, y, side], -1)


def render_video(motion: str, family: int, num_families: int, frames: int, size: int,
                 rng: np.random.Generator, object_size: float = 0.25,
                 object_texture: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic video: uint8 RGB (T, H, W, 3) and the object's masks bool (T, H, W).

    ``object_texture`` (side, side, 3) in [0, 1] replaces the object's look drawn from ``rng``; that
    draw is made either way, so the background and the track are the same with or without it.
    """
    background = render_background(family, num_families, size, rng)
    texture = render_object_texture(int(round(object_size * size)), rng)
    if object_texture is not None:
        texture = object_texture
    track = object_track(motion, frames, size, rng, object_size)
    video = np.repeat(background[None], frames, axis=0)
    masks = np.zeros((frames, size, size), dtype=bool)
    for t, (x, y, side) in enumerate(track):
        x0, y0, s = int(round(x)), int(round(y)), max(2, int(round(side)))
        s = min(s, size - x0, size - y0)
        # nearest-neighbour resize of the texture so it scales with the object (Zoom)
        src = (np.arange(s) * texture.shape[0] / s).astype(np.int64)
        video[t, y0:y0 + s, x0:x0 + s] = texture[src[:, None], src[None, :]]
        masks[t, y0:y0 + s, x0:x0 + s] = True
    return (np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8), masks


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """uint8 RGB (T, H, W, 3) -> MPEG-4 Part 2 AVI at high quality, written atomically."""
    # 4 Mbit/s is near-lossless at these sizes (compression noise is not motion); one encoder
    # thread keeps the bitstream reproducible
    with VideoWriter(path, fps=fps, codec="mpeg4", bit_rate=4_000_000, threads=1) as writer:
        for frame in frames:
            writer.write(frame)


# ------------------------------------------------------------------------------------------ dataset
def plan_videos(opts: SynthOptions) -> list[SynthVideo]:
    """Every video of the dataset with its split and background family (deterministic for the seed)."""
    width = max(2, len(str(opts.videos_per_class)))
    videos = []
    for label, name in enumerate(opts.class_names):
        for v in range(opts.videos_per_class):
            split = "test" if v < opts.num_test_groups else "train"
            rng = np.random.default_rng([opts.seed, label, v + 1, 0])
            family = int(rng.integers(opts.classes)) if split == "test" else label
            relpath = f"{name}/v_{name}_g{v + 1:0{width}d}_c01.avi"
            videos.append(SynthVideo(relpath, label, v + 1, split, family))
    return videos


def _check_out_dir(out: Path, manifest: dict) -> None:
    """Refuse to write into a non-empty folder that is not the same synthetic dataset (resume is fine)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another OUT")
    check_writable(out, "OUT")
    if not out.exists():
        return
    meta = out / "synth.json"
    if meta.is_file():
        try:
            previous = json.loads(meta.read_text())["options"]
        except (ValueError, KeyError, TypeError) as exc:  # TypeError: JSON that is not an object
            raise UserError(f"{meta} is not a synth manifest; choose another OUT") from exc
        if previous != manifest["options"]:
            raise UserError(f"{out} holds a synthetic dataset made with other options ({previous}); "
                           "choose another OUT or delete it")
    elif any(out.iterdir()):
        raise UserError(f"{out} is not empty and is not a synthetic dataset; choose an empty or new OUT")


def make_synth_dataset(out, classes: int = 5, videos_per_class: int = 12, frames: int = 16, size: int = 64,
                       seed: int = 0, test_fraction: float = 1 / 3, object_size: float = 0.25,
                       motions: Optional[Sequence[str]] = None, object_appearance: str = "random",
                       progress: bool = True) -> dict:
    """Write the dataset to ``out`` (layout in the module doc); returns counts for the summary line.

    ``motions`` names the classes (``classes`` is then their number); ``object_size`` is the object's
    side over the frame side; ``object_appearance`` "shared" gives every video the same object.
    """
    motions = tuple(motions) if motions else None
    opts = SynthOptions(len(motions) if motions else classes, videos_per_class, frames, size, seed, test_fraction,
                        object_size, motions, object_appearance)
    opts.validate()
    out = Path(out)
    videos = plan_videos(opts)
    options = asdict(opts)
    options["motions"] = list(opts.class_names)
    manifest = {"options": options, "classes": list(opts.class_names),
                "videos": [asdict(v) for v in videos]}
    _check_out_dir(out, manifest)
    atomic_write_text(out / "synth.json", json.dumps(manifest, indent=1) + "\n")

    shared_texture = None
    if opts.object_appearance == "shared":  # a stream of its own: the videos' streams are those of "random"
        side = int(round(opts.object_size * size))
        shared_texture = render_object_texture(side, np.random.default_rng([opts.seed, 2]))
    started, written = time.perf_counter(), 0
    for video in progress_bar(videos, desc="synth", unit="video", disable=not progress):
        path = out / video.relpath
        if path.is_file():  # written by an interrupted run with the same options
            continue
        rng = np.random.default_rng([opts.seed, video.label, video.group, 1])  # the video's own stream
        frames_rgb, _ = render_video(opts.class_names[video.label], video.background_family, opts.classes, frames,
                                     size, rng, opts.object_size, shared_texture)
        write_video(path, frames_rgb)
        written += 1

    splits = out / "splits"
    atomic_write_text(splits / "classInd.txt", "".join(f"{k + 1} {n}\n" for k, n in enumerate(opts.class_names)))
    atomic_write_text(splits / "trainlist01.txt",
                      "".join(f"{v.relpath} {v.label + 1}\n" for v in videos if v.split == "train"))
    atomic_write_text(splits / "testlist01.txt", "".join(f"{v.relpath}\n" for v in videos if v.split == "test"))
    num_test = sum(v.split == "test" for v in videos)
    return {"videos": len(videos), "train": len(videos) - num_test, "test": num_test, "written": written,
            "skipped": len(videos) - written, "seconds": time.perf_counter() - started}
