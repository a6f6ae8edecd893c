"""Synthetic multi-object videos with exact masks, written in the DAVIS layout (``vos synth``).

Each sequence shows K textured objects (ellipse, rectangle, triangle, star, polygon) moving and
turning over a textured background. Objects have a fixed depth order, so they occlude each other;
the first two always cross (the front one partially hides the back one). Optionally the camera
pans (background and objects shift together) and object K leaves the frame and comes back.
Objects are saturated colours with their own texture, the background is a desaturated colour
with a different texture, so colour/texture statistics separate them.

Output (``OUT``)::

    JPEGImages/480p/<seq>/00000.jpg ...               frames (JPEG quality 90)
    Annotations_unsupervised/480p/<seq>/00000.png ...  indexed PNG, 0 background, 1..K objects
    Annotations/480p/<seq>/00000.png ...               same masks (semi-supervised task)
    ImageSets/2017/val.txt, ImageSets/2016/val.txt     all sequence names
    videos/<seq>.mp4                                   the frames as a video
    synth.json                                         generation parameters and objects

Everything is a function of the seed: same seed, same PNG bytes. Sequence ``i`` uses the i-th
child of ``SeedSequence(seed)``, so it does not depend on how many videos are generated.
"""

from __future__ import annotations

import colorsys
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_path, atomic_write_text
from vos.infra.outputs import check_writable
from vos.infra.progress import progress_bar
from vos.infra.video_writer import VideoWriter
from vos.palette import write_label_png

SHAPES = ("ellipse", "rectangle", "triangle", "star", "polygon")
OBJECT_TEXTURES = ("stripes", "checker", "dots", "noise")
BACKGROUND_PATTERNS = ("stripes", "checker", "noise")
JPEG_QUALITY = 90
MAX_OBJECTS = 20
RESOLUTION = "480p"  # the DAVIS folder name; the frames have the requested size
LABEL_DIRS = ("Annotations_unsupervised", "Annotations")
MANIFEST = "synth.json"
GENERATOR = "vos synth"
# Object circumradius as a fraction of min(H, W). The ratio 0.2/0.12 < 1.86 guarantees that the
# front object of the crossing pair can never hide the back one completely (see plan_sequence).
RADIUS_RANGE = (0.12, 0.2)
# Largest camera pan over the clip, as a fraction of (H, W); objects live in the part of the
# scene that stays in view the whole time, so the pan never pushes them out.
PAN_RANGE = (0.08, 0.25)


@dataclass
class SyntheticObject:
    """One object: its look in object coordinates and its pose per frame in view coordinates."""

    label: int                 # 1..K, the id in the annotation PNGs
    shape: str
    texture: str
    colour: tuple[float, float, float]  # RGB in [0, 1], before texture modulation
    radius: float              # circumradius, pixels
    outline: np.ndarray        # V 2 (x, y) polygon around the object centre, unrotated
    texture_image: np.ndarray  # S S 3 uint8, object centre at ((S-1)/2, (S-1)/2)
    centres: np.ndarray        # T 2 (x, y) centre in the view
    angles: np.ndarray         # T rotation, radians
    depth: int                 # 0 = farthest back
    leaves_frame: bool = False

    def describe(self) -> dict:
        return {"label": self.label, "shape": self.shape, "texture": self.texture,
                "colour": [round(c, 4) for c in self.colour], "radius": round(float(self.radius), 2),
                "depth": self.depth, "leaves_frame": self.leaves_frame}


@dataclass
class SequencePlan:
    """Everything needed to render a sequence frame by frame."""

    name: str
    height: int
    width: int
    background: np.ndarray     # Hc Wc 3 uint8 scene, at least as large as the view
    offsets: np.ndarray        # T 2 (x, y) integer top-left of the view in the scene
    objects: list[SyntheticObject] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.offsets)

    def describe(self) -> dict:
        return {"name": self.name, "frames": self.num_frames, "objects": [o.describe() for o in self.objects],
                "camera_offsets_xy": self.offsets.tolist()}


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Float32 (H, W) noise in [0, 1] with about ``cells`` blobs across the shorter side."""
    scale = min(height, width) / cells
    grid = rng.random((max(2, round(height / scale)) + 1, max(2, round(width / scale)) + 1)).astype(np.float32)
    noise = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return (noise - noise.min()) / max(float(noise.max() - noise.min()), 1e-6)


def pattern(rng: np.random.Generator, kind: str, height: int, width: int, scale: float) -> np.ndarray:
    """Float32 (H, W) texture in [0, 1]: stripes, checker, dots or noise with feature size ``scale`` px."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phi = rng.uniform(0, np.pi)
    u = x * np.cos(phi) + y * np.sin(phi)
    v = -x * np.sin(phi) + y * np.cos(phi)
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / scale + rng.uniform(0, 2 * np.pi))
    if kind == "checker":
        return ((np.floor(u / scale) + np.floor(v / scale)) % 2).astype(np.float32)
    if kind == "dots":
        du = (u / scale) % 1.0 - 0.5
        dv = (v / scale) % 1.0 - 0.5
        return (du * du + dv * dv < 0.09).astype(np.float32)
    if kind == "noise":
        return smooth_noise(rng, height, width, max(2, round(min(height, width) / scale)))
    raise ValueError(f"unknown pattern {kind!r}")


def make_background(rng: np.random.Generator, height: int, width: int, hue: float) -> np.ndarray:
    """A desaturated colour with slow colour variation and a low-contrast pattern; uint8 (H, W, 3)."""
    base = _hsv(hue, rng.uniform(0.08, 0.3), rng.uniform(0.35, 0.7))
    kind = BACKGROUND_PATTERNS[rng.integers(len(BACKGROUND_PATTERNS))]
    texture = pattern(rng, kind, height, width, rng.uniform(10, 24))
    colour_drift = np.stack([smooth_noise(rng, height, width, 3) for _ in range(3)], axis=-1) - 0.5
    image = base * (0.75 + 0.35 * texture[..., None]) + 0.12 * colour_drift
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def shape_outline(rng: np.random.Generator, shape: str, radius: float) -> np.ndarray:
    """Polygon (V, 2) of ``shape`` centred at the origin, all vertices within ``radius``."""
    if shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([radius * np.cos(t), radius * rng.uniform(0.55, 1.0) * np.sin(t)], axis=1)
    if shape == "rectangle":
        beta = rng.uniform(np.radians(25), np.radians(65))
        hx, hy = radius * np.cos(beta), radius * np.sin(beta)
        return np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    if shape == "triangle":
        t = np.radians(90 + np.array([0, 120, 240]) + rng.uniform(-20, 20, 3))
        return radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "star":
        points = int(rng.integers(5, 8))
        t = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
        r = np.where(np.arange(2 * points) % 2 == 0, radius, radius * rng.uniform(0.45, 0.6))
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "polygon":
        t = np.linspace(0, 2 * np.pi, int(rng.choice([5, 6, 8])), endpoint=False)
        return radius * np.stack([np.cos(t), np.sin(t)], axis=1)
    raise ValueError(f"unknown shape {shape!r}")


def make_object_texture(rng: np.random.Generator, size: int, colour: np.ndarray, kind: str) -> np.ndarray:
    """The object's own texture, uint8 (size, size, 3): ``colour`` modulated by a pattern."""
    texture = pattern(rng, kind, size, size, rng.uniform(4, 9))
    image = colour * (0.6 + 0.4 * texture[..., None])
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def fold(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect ``values`` into [low, high] (a triangle wave): straight motion that bounces off walls."""
    span = high - low
    phase = np.mod(values - low, 2 * span)
    return low + np.where(phase <= span, phase, 2 * span - phase)


def _exit_distance(centre: np.ndarray, direction: np.ndarray, radius: float, width: int, height: int) -> float:
    """Distance along ``direction`` after which a disc of ``radius`` at ``centre`` is fully out of view."""
    distances = []
    for axis, extent in ((0, width), (1, height)):
        d = direction[axis]
        if d > 1e-6:
            distances.append((extent + radius - centre[axis]) / d)
        elif d < -1e-6:
            distances.append((centre[axis] + radius) / -d)
    return min(distances)


def plan_sequence(rng: np.random.Generator, name: str, frames: int, objects: int, size: tuple[int, int],
                  camera_pan: bool = False, leave_frame: bool = False) -> SequencePlan:
    """Draw the background, camera path, objects and trajectories of one sequence."""
    height, width = size
    t = np.arange(frames, dtype=np.float64)
    phase = t / max(frames - 1, 1)  # 0 .. 1 over the clip

    # Camera: a straight pan; offsets are the view's top-left corner in the scene (integers, so
    # the background shifts exactly by whole pixels).
    if camera_pan:
        sign = rng.choice([-1.0, 1.0], 2)
        pan = sign * np.array([rng.uniform(*PAN_RANGE) * width, rng.uniform(0, PAN_RANGE[0]) * height])
        offsets = np.rint(phase[:, None] * pan[None, :]).astype(np.int64)
        offsets -= offsets.min(axis=0)
    else:
        offsets = np.zeros((frames, 2), np.int64)
    span = offsets.max(axis=0)  # x, y
    bg_hue = rng.random()
    background = make_background(rng, height + int(span[1]), width + int(span[0]), bg_hue)

    shapes = rng.permutation(SHAPES)
    radii = rng.uniform(*RADIUS_RANGE, objects) * min(height, width)
    # Object hues spread evenly around the colour circle, away from the background hue.
    hues = bg_hue + (np.arange(1, objects + 1) + rng.uniform(-0.3, 0.3, objects)) / (objects + 1)
    depths = rng.permutation(objects)
    leaver = objects - 1 if leave_frame else None
    if objects >= 2 and depths[1] < depths[0]:  # object 2 crosses in front of object 1
        depths[[0, 1]] = depths[[1, 0]]
    if leaver is not None:  # frontmost, so it is visible on the frames where it is in view
        depths = np.where(depths > depths[leaver], depths - 1, depths)
        depths[leaver] = objects - 1

    # The crossing of objects 1 and 2: both pass near one point of the view at frame t_cross.
    if leaver == 1:  # the only partner leaves in mid-clip: cross on the first frame instead
        t_cross = 0
    else:
        t_cross = int(rng.integers(frames // 4, 3 * frames // 4 + 1))
    common_low = span.astype(np.float64)           # scene region in view on every frame
    common_size = np.array([width, height], np.float64) - span
    cross_point = common_low + common_size * rng.uniform(0.3, 0.7, 2)

    plan = SequencePlan(name=name, height=height, width=width, background=background, offsets=offsets)
    for k in range(objects):
        radius = float(radii[k])
        outline = shape_outline(rng, str(shapes[k % len(SHAPES)]), radius)
        colour = _hsv(float(hues[k]), rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
        texture_kind = OBJECT_TEXTURES[rng.integers(len(OBJECT_TEXTURES))]
        texture = make_object_texture(rng, 2 * int(np.ceil(radius)) + 3, colour, texture_kind)
        angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.06, 0.06) * t
        if k == leaver:
            # View-space path out and back: c0 + A d sin(pi t / (T-1)). A is chosen so the object is
            # fully outside while sin > 0.825 (about the middle third of the clip).
            start = np.array([rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)])
            if k == 1:  # it is also the crossing partner: start beside object 1 (t_cross = 0)
                start = cross_point - offsets[0] + 0.3 * (radii[0] + radius) * _unit(rng.uniform(0, 2 * np.pi))
            direction = _unit(rng.uniform(0, 2 * np.pi))
            amplitude = 1.05 * _exit_distance(start, direction, radius, width, height) / np.sin(np.pi / 3)
            centres = start[None, :] + amplitude * np.sin(np.pi * phase)[:, None] * direction[None, :]
        else:
            # Scene-space straight motion folded into the always-visible region (the centre stays
            # half a radius inside the view), seen through the moving camera.
            low = common_low + 0.5 * radius
            high = common_low + common_size - 0.5 * radius
            velocity = rng.uniform(0.01, 0.03) * min(height, width) * _unit(rng.uniform(0, 2 * np.pi))
            if k < 2 and objects >= 2:
                at_cross = cross_point if k == 0 else cross_point + 0.3 * (radii[0] + radius) * _unit(
                    rng.uniform(0, 2 * np.pi))
                at_cross = np.clip(at_cross, low, high)  # fold() only passes through points inside
                anchor = at_cross - velocity * t_cross
            else:
                anchor = rng.uniform(low, high)
            scene = fold(anchor[None, :] + velocity[None, :] * t[:, None], low, high)
            centres = scene - offsets
        plan.objects.append(SyntheticObject(
            label=k + 1, shape=str(shapes[k % len(SHAPES)]), texture=texture_kind, colour=tuple(map(float, colour)),
            radius=radius, outline=outline, texture_image=texture, centres=centres, angles=angles,
            depth=int(depths[k]), leaves_frame=k == leaver))
    return plan


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def render_frame(plan: SequencePlan, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t``: image (H, W, 3) uint8, labels (H, W) uint8 and amodal masks (K, H, W) bool.

    ``amodal[k]`` is object k+1's full extent in the view, including the parts hidden behind
    objects in front of it; ``labels`` shows only what is visible.
    """
    h, w = plan.height, plan.width
    ox, oy = (int(v) for v in plan.offsets[t])
    image = plan.background[oy:oy + h, ox:ox + w].copy()
    labels = np.zeros((h, w), np.uint8)
    amodal = np.zeros((len(plan.objects), h, w), bool)
    for obj in sorted(plan.objects, key=lambda o: o.depth):  # back to front
        cos, sin = np.cos(obj.angles[t]), np.sin(obj.angles[t])
        rotation = np.array([[cos, -sin], [sin, cos]])
        centre = obj.centres[t]
        # 4 fractional bits: sub-pixel motion moves the mask smoothly.
        polygon = np.rint((obj.outline @ rotation.T + centre) * 16).astype(np.int32)
        # Draw and warp only inside the object's bounding box (clipped to the view), not the whole frame.
        x0, y0 = np.maximum(polygon.min(axis=0) // 16, 0)
        x1, y1 = np.minimum(polygon.max(axis=0) // 16 + 2, [w, h])
        if x0 >= x1 or y0 >= y1:
            continue  # entirely outside the view
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(inside, [polygon - 16 * np.array([x0, y0], np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        inside = inside.astype(bool)
        texture_centre = (obj.texture_image.shape[0] - 1) / 2
        shift = centre - [x0, y0] - rotation @ [texture_centre, texture_centre]
        warped = cv2.warpAffine(obj.texture_image, np.hstack([rotation, shift[:, None]]),
                                (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        box = (slice(y0, y1), slice(x0, x1))
        image[box][inside] = warped[inside]
        labels[box][inside] = obj.label
        amodal[obj.label - 1][box] = inside
    return image, labels, amodal


def write_sequence(plan: SequencePlan, out: Path, fps: float) -> None:
    """Render ``plan`` frame by frame into the DAVIS folders of ``out`` and ``videos/<name>.mp4``."""
    frame_dir = out / "JPEGImages" / RESOLUTION / plan.name
    label_dirs = [out / d / RESOLUTION / plan.name for d in LABEL_DIRS]
    with VideoWriter(out / "videos" / f"{plan.name}.mp4", fps=fps) as video:
        for t in range(plan.num_frames):
            image, labels, _ = render_frame(plan, t)
            with atomic_path(frame_dir / f"{t:05d}.jpg") as tmp:
                Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY)
            for label_dir in label_dirs:
                write_label_png(label_dir / f"{t:05d}.png", labels)
            video.write(image)


def sequence_names(videos: int) -> list[str]:
    return [f"synth_{i:04d}" for i in range(videos)]


def sequence_rngs(seed: int, videos: int) -> list[np.random.Generator]:
    """One generator per sequence; sequence i's stream does not depend on ``videos``."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(videos)]


def _check_options(videos, frames, objects, size, seed, fps, leave_frame) -> None:
    def positive_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

    if not positive_int(videos):
        raise UserError(f"--videos must be a positive integer, got {videos!r}")
    if not positive_int(frames):
        raise UserError(f"--frames must be a positive integer, got {frames!r}")
    if leave_frame and frames < 3:
        raise UserError(f"--leave-frame needs at least 3 frames (in, out, back in), got --frames {frames}")
    if not positive_int(objects) or objects > MAX_OBJECTS:
        raise UserError(f"--objects must be an integer in 1..{MAX_OBJECTS}, got {objects!r}")
    if len(size) != 2 or not all(positive_int(s) and s >= 32 and s % 2 == 0 for s in size):
        raise UserError(f"--size must be two even integers >= 32 (H W; mp4 needs even sizes), got {tuple(size)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
    if not fps > 0:
        raise UserError(f"--fps must be positive, got {fps}")


def _prepare_output(out: Path) -> None:
    """Accept a new/empty folder or a previous synth output (whose sequences are removed)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is a file; give a folder for the synthetic dataset")
    check_writable(out, "OUT")
    if not out.is_dir() or not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    try:
        previous = json.loads(manifest.read_text())
        assert previous.get("generator") == GENERATOR
        names = [s["name"] for s in previous["sequences"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, AssertionError):
        raise UserError(f"{out}: folder is not empty and is not a previous '{GENERATOR}' output (no valid "
                       f"{MANIFEST}); choose a new or empty folder") from None
    # Remove the old sequences first: a shorter new clip must not keep stale frames of the old one.
    for name in names:
        if not re.fullmatch(r"synth_\d+", name):
            continue  # only ever delete what synth itself names
        for top in ("JPEGImages",) + LABEL_DIRS:
            shutil.rmtree(out / top / RESOLUTION / name, ignore_errors=True)
        (out / "videos" / f"{name}.mp4").unlink(missing_ok=True)


def _write_manifest(out: Path, params: dict, sequences: list[dict], complete: bool) -> None:
    manifest = {"generator": GENERATOR, "complete": complete, "params": params, "sequences": sequences}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def make_synthetic_dataset(out: str | os.PathLike, videos: int = 4, frames: int = 24, objects: int = 3,
                           size: tuple[int, int] = (240, 320), seed: int = 0, camera_pan: bool = False,
                           fps: float = 10, leave_frame: bool = False, progress: bool = True) -> list[str]:
    """Write a synthetic DAVIS-style dataset to ``out`` and return its sequence names.

    ``leave_frame``: the last object of every sequence leaves the view around the middle of the
    clip and comes back. ``progress``: show a tqdm bar and print a one-line summary.
    """
    _check_options(videos, frames, objects, size, seed, fps, leave_frame)
    out = Path(out)
    _prepare_output(out)
    started = time.perf_counter()
    params = {"videos": videos, "frames": frames, "objects": objects, "size": [int(s) for s in size],
              "seed": seed, "camera_pan": camera_pan, "leave_frame": leave_frame, "fps": fps,
              "jpeg_quality": JPEG_QUALITY}
    names = sequence_names(videos)
    rngs = sequence_rngs(seed, videos)
    out.mkdir(parents=True, exist_ok=True)
    # Written first (complete=false) so that an interrupted run can be regenerated in place.
    _write_manifest(out, params, [{"name": name} for name in names], complete=False)
    described = []
    for rng, name in progress_bar(list(zip(rngs, names)), desc="vos synth", unit="video", disable=not progress):
        plan = plan_sequence(rng, name, frames, objects, tuple(size), camera_pan, leave_frame)
        write_sequence(plan, out, fps)
        described.append(plan.describe())
    listing = "".join(f"{name}\n" for name in names)
    atomic_write_text(out / "ImageSets" / "2017" / "val.txt", listing)
    atomic_write_text(out / "ImageSets" / "2016" / "val.txt", listing)
    _write_manifest(out, params, described, complete=True)
    if progress:
        print(f"vos synth: wrote {videos} sequences x {frames} frames ({size[0]}x{size[1]}, {objects} objects) "
              f"to {out} in {time.perf_counter() - started:.1f} s")
    return names
