"""HTML reports that open offline from disk: templates, plots, thumbnails and the report folder.

A report is a folder ``DIR`` holding ``index.html`` and its files under ``DIR/assets/``; every
reference in the page is relative and inside ``DIR`` (no server, no CDN). Pages come from Jinja2
templates (``vos/infra/templates/`` and the templates of the package that builds the page); plots
are matplotlib figures drawn without pyplot (no global backend or figure state), inlined as SVG so
that the page, its tests and a reader see the same numbers; frames are small JPEG thumbnails.

The folder is written by the output rules of :mod:`vos.infra.outputs`: built in ``DIR.partial``,
marked with the command that wrote it, and moved into place, replacing only an earlier report.
"""

from __future__ import annotations

import datetime
import html
import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from vos.infra.errors import UserError
from vos.infra.outputs import MARKER, check_output_dir, is_within, replace_output_dir, resolve_path

ASSETS = "assets"
THUMB_WIDTH = 200  # pixels of one frame thumbnail
JPEG_QUALITY = 85
WEBP_QUALITY = 70
# matplotlib settings of every plot: text stays text (a smaller page, searchable labels) and the
# SVG ids do not depend on the process (the same data gives the same page)
_SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "vos-report", "font.size": 9,
           "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False}
PALETTE_NEUTRAL = "#4c72b0"


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ssl-video-toolkit")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class Provenance:
    """Where a report came from: shown at the top of every page."""

    kind: str                 # what the folder is, e.g. "vos eval davis results"
    source: Path              # the folder reported on
    command: str = ""         # the command that wrote it, if known
    settings: dict = field(default_factory=dict)
    written: str = ""         # when the source was written (its newest file), ISO date
    report_command: str = ""  # the command line that wrote the report

    def rows(self) -> list[tuple[str, str]]:
        rows = [("Report of", self.kind), ("Folder", str(self.source))]
        if self.command:
            rows.append(("Written by", self.command))
        if self.written:
            rows.append(("Written on", self.written))
        rows += [("Report by", self.report_command or "report"), ("Toolkit version", toolkit_version()),
                 ("Report date", datetime.datetime.now().astimezone().isoformat(timespec="seconds"))]
        return rows


def newest_mtime(paths: Iterable[Path]) -> str:
    """ISO date of the newest of ``paths`` (the time a result was written), or ''."""
    times = [p.stat().st_mtime for p in paths if p.exists()]
    if not times:
        return ""
    return datetime.datetime.fromtimestamp(max(times)).astimezone().isoformat(timespec="seconds")


class ReportAssets:
    """The files of one report under ``folder/assets``; every method returns the path to put in the page."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        (self.folder / ASSETS).mkdir(parents=True, exist_ok=True)
        self._names: set[str] = set()

    def _name(self, stem: str, suffix: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "asset"
        name, n = f"{base}{suffix}", 1
        while name in self._names:  # two sequences whose names differ only in unsafe characters
            n += 1
            name = f"{base}-{n}{suffix}"
        self._names.add(name)
        return name

    def jpeg(self, stem: str, image: np.ndarray) -> str:
        """Save an RGB uint8 (H, W, 3) image as ``assets/<stem>.jpg``."""
        name = self._name(stem, ".jpg")
        Image.fromarray(np.ascontiguousarray(image)).save(self.folder / ASSETS / name, quality=JPEG_QUALITY)
        return f"{ASSETS}/{name}"

    def animation(self, stem: str, frames: Sequence[np.ndarray], fps: float) -> str:
        """Save RGB uint8 frames as a looping animated ``assets/<stem>.webp`` (lossy: a few times
        smaller than a GIF of the same frames; every current browser plays it)."""
        name = self._name(stem, ".webp")
        images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
        images[0].save(self.folder / ASSETS / name, save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, int(round(1000 / fps))), quality=WEBP_QUALITY, method=4)
        return f"{ASSETS}/{name}"


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """``image`` (H, W[, 3]) resized to ``width`` pixels wide, aspect kept; label maps (2-D integer
    arrays) by nearest neighbour so that no new label appears, images by area averaging."""
    h, w = image.shape[:2]
    size = (width, max(1, int(round(h * width / w))))
    if image.ndim == 2:
        return np.asarray(Image.fromarray(image.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def colorize(labels: np.ndarray, palette: np.ndarray, image: np.ndarray | None = None,
             alpha: float = 0.85, dim: float = 0.35) -> np.ndarray:
    """Label map (H, W) in ``palette`` colours (K, 3). Over ``image`` (H, W, 3): objects blended with
    ``alpha``, the background dimmed to ``dim`` of its brightness, so that the masks stand out."""
    colours = palette[np.minimum(labels, len(palette) - 1)].astype(np.float32)   # H W 3
    if image is None:
        return colours.astype(np.uint8)
    fg = (labels > 0)[..., None]
    image = image.astype(np.float32)
    return np.where(fg, (1 - alpha) * image + alpha * colours, dim * image).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------------- plots

def new_figure(width: float, height: float):
    """A matplotlib Figure (inches) on the Agg canvas, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def svg_markup(fig) -> str:
    """The figure as inline ``<svg>`` markup (no XML prologue, no fixed size: it scales with the page)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # width/height in pt would pin the size; the viewBox keeps the aspect ratio
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="plot"', text, count=1)


def plotted(draw: Callable, width: float, height: float) -> str:
    """Inline SVG of a figure drawn by ``draw(fig)`` with the report's matplotlib settings."""
    import matplotlib

    with matplotlib.rc_context(_SVG_RC):
        fig = new_figure(width, height)
        draw(fig)
    return svg_markup(fig)


def bar_chart(labels: Sequence[str], values: Sequence[float], xlabel: str, gid_prefix: str,
              colour: Callable[[float], str] | None = None, xlim: tuple[float, float] = (0.0, 1.0)) -> str:
    """Horizontal bars, the first label on top; bar ``i`` is the SVG group ``<gid_prefix><i>`` and
    carries its label and value in its ``<title>`` (a tooltip in the browser)."""
    def draw(fig):
        ax = fig.add_subplot()
        y = np.arange(len(labels))
        bars = ax.barh(y, values, color=[colour(v) if colour else PALETTE_NEUTRAL for v in values], height=0.7)
        for i, bar in enumerate(bars):
            bar.set_gid(f"{gid_prefix}{i}")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(*xlim)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        for i, v in enumerate(values):
            ax.text(min(v, xlim[1]) + 0.01 * (xlim[1] - xlim[0]), i, f"{v:.3f}", va="center", fontsize=7)
    height = 0.6 + 0.2 * max(len(labels), 1)
    svg = plotted(draw, 5.0, height)
    return _titled_groups(svg, gid_prefix, [f"{label}: {v:.3f}" for label, v in zip(labels, values)])


def _titled_groups(svg: str, gid_prefix: str, titles: Sequence[str]) -> str:
    """Add a ``<title>`` to each group ``<gid_prefix><i>`` of ``svg``."""
    for i, title in enumerate(titles):
        svg = svg.replace(f'<g id="{gid_prefix}{i}">', f'<g id="{gid_prefix}{i}"><title>{html.escape(title)}</title>', 1)
    return svg


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
               log_y: bool = False, gid_prefix: str = "line-", integer_x: bool = False) -> str:
    """One line per ``name -> (x, y)``; line ``i`` is the SVG group ``<gid_prefix><i>``."""
    def draw(fig):
        from matplotlib.ticker import MaxNLocator

        ax = fig.add_subplot()
        if integer_x:  # epochs, steps
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i, (name, (x, y)) in enumerate(series.items()):
            (line,) = ax.plot(x, y, label=name, linewidth=1.4, marker="o" if len(x) <= 30 else None, markersize=3)
            line.set_gid(f"{gid_prefix}{i}")
        if log_y and all(min(y, default=1.0) > 0 for _, y in series.values()):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(frameon=False)
    return plotted(draw, 5.0, 2.8)


def matrix_chart(matrix: np.ndarray, labels: Sequence[str], xlabel: str, ylabel: str) -> str:
    """A confusion matrix (rows: true class, columns: predicted), each row as a share of its row sum,
    with the counts written in the cells when there are few classes."""
    matrix = np.asarray(matrix, dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(labels)

    def draw(fig):
        ax = fig.add_subplot()
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        if n <= 30:
            ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(n), labels, fontsize=7)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
                                color="white" if shares[i, j] > 0.5 else "black")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the row")
    side = min(9.0, 2.5 + 0.22 * n)
    return plotted(draw, side + 1.2, side)


# ----------------------------------------------------------------------------------------------- pages

def render(template: str, packages: Sequence[str] = (), **context) -> str:
    """Render ``template`` found in the ``templates`` folder of ``packages`` (first match wins) or of
    :mod:`vos.infra` (the shared base page); HTML is escaped unless marked ``|safe``."""
    from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

    loader = ChoiceLoader([PackageLoader(p, "templates") for p in (*packages, "vos.infra")])
    env = Environment(loader=loader, autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _number
    return env.get_template(template).render(**context)


def _number(value, digits: int = 3) -> str:
    """A table cell: ``digits`` decimals, '–' for a missing or undefined value."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def check_report_out(out: Path, inputs: Sequence[Path], command: str, overwrite: bool) -> None:
    """Before any work: ``out`` is outside every input, writable, and new or an earlier report of ``command``."""
    for source in inputs:
        if is_within(out, source) or is_within(source, out):
            raise UserError(f"--out {out} {'lies inside' if is_within(out, source) else 'contains'} the input "
                           f"{source}; choose an --out outside it")
    check_output_dir(out, command, overwrite)
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and not overwrite and not _is_report_partial(partial):
        raise UserError(f"{partial} exists and is not an unfinished report; pass --overwrite to replace it, "
                       "or choose another --out")


def _is_report_partial(folder: Path) -> bool:
    """An unfinished report of ours: only index.html, assets/ and the marker (or less)."""
    return folder.is_dir() and all(p.name in ("index.html", ASSETS, MARKER) for p in folder.iterdir())


def write_report(out: str | Path, command: str, build: Callable[[ReportAssets], str],
                 inputs: Sequence[Path] = (), overwrite: bool = False) -> Path:
    """Write ``out/index.html`` = ``build(assets)`` (which also saves the page's files) atomically:
    built in ``out.partial``, marked as ``command``'s, then moved to ``out``. Returns the page's path."""
    out = resolve_path(Path(out))
    check_report_out(out, [resolve_path(p) for p in inputs], command, overwrite)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        page = build(ReportAssets(partial))
        (partial / "index.html").write_text(page, encoding="utf-8")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed report leaves nothing behind
        raise
    replace_output_dir(partial, out, command, overwrite, inputs=[str(p) for p in inputs])
    return out / "index.html"
