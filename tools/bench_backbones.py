"""Speed and memory per frame of every backbone's key extraction (random weights), as `vos segment` runs it.

    OMP_NUM_THREADS=2 python tools/bench_backbones.py --resolution 320 480 --batch 4 --repeat 2 --threads 2

Each backbone runs in a process of its own (so that its peak resident memory is its own), keys
only (``with_cls=False``, as `vos segment` calls it). Per frame: wall and process CPU seconds (the
fastest of ``--repeat`` timed calls of ``--batch`` frames, after a first call). Memory: the
process's peak resident memory (building the model, the runtime, the activations of ``--batch``
frames). Activations per frame are not given: the resident memory does not isolate them (memory
freed after building the model is reused by the forward). Prints a Markdown table and the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

DEFAULT_BACKBONES = ("dino_vits16", "dino_vitb16", "dino_vits8", "dino_vitb8", "dinov2_vits14", "dinov2_vits14_reg",
                     "dinov2_vitb14", "dinov2_vitb14_reg", "dinov3_vits16", "dinov3_vitb16")


def measure(name: str, resolution: tuple[int, int], batch: int, repeat: int, threads: int) -> dict:
    """One backbone, ``batch`` frames per call, in this process."""
    import torch

    from vos.models.backbone import build_backbone, model_input_size

    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = build_backbone(name, "random")
    size = model_input_size(resolution, backbone.patch_size)
    images = torch.randn(batch, 3, *size)
    backbone(images, with_cls=False)  # a first call, untimed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        backbone(images, with_cls=False)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    params = sum(p.numel() for p in backbone.parameters())
    grid = (size[0] // backbone.patch_size, size[1] // backbone.patch_size)
    return {"name": name, "size": size, "patches": grid[0] * grid[1], "params_m": params / 1e6,
            "peak_mib": peak_mib, "wall_s": min(walls) / batch, "cpu_s": min(cpus) / batch}


def run_single(name: str, args, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--single", name, "--batch", str(batch), "--repeat", str(args.repeat),
           "--threads", str(args.threads), "--resolution", *map(str, args.resolution)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES))
    parser.add_argument("--resolution", type=int, nargs=2, default=(320, 480), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4, help="frames per call")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(measure(args.single, tuple(args.resolution), args.batch, args.repeat, args.threads)))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    print(f"| backbone | input | patches | params M | s/frame wall (CPU) | peak RSS MiB ({args.batch} frames per call) |")
    print("|---|---|---|---|---|---|")
    for name in args.backbones:
        r = run_single(name, args, args.batch)
        print(f"| `{name}` | {r['size'][0]}×{r['size'][1]} | {r['patches']} | {r['params_m']:.1f} | "
              f"{r['wall_s']:.2f} ({r['cpu_s']:.2f}) | {r['peak_mib']:.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f} (1-minute), {os.getloadavg()[1]:.1f} (5-minute)")


if __name__ == "__main__":
    main()
