"""Video lists and labels from the official dataset layouts and split files.

``load_items(dataset, data_root, split_dir, split, subset)`` returns the videos of one subset as
:class:`VideoItem` (path + 0-based label) together with the class names (index = label).

Layouts (``data_root`` always holds the videos):

* ``ucf101``: ``<root>/<Class>/v_<Class>_gGG_cCC.avi``; split files ``classInd.txt``,
  ``trainlist0{1,2,3}.txt`` (``<Class>/<file>.avi <1-based label>``) and ``testlist0{1,2,3}.txt``
  (``<Class>/<file>.avi``, no label: it comes from the class folder through ``classInd``).
* ``hmdb51``: ``<root>/<class>/<name>.avi``; split files ``<class>_test_split{1,2,3}.txt`` with
  lines ``<name>.avi <tag>``, tag 1 = train, 2 = test, 0 = unused. Classes are sorted by name.
* ``kinetics``: ``<root>/<subset>/<class>/*.mp4`` (any video extension); classes are the sorted
  sub-folders of ``<root>/train`` (so train and val share label indices), or of
  ``<root>/<subset>`` when there is no train folder.
* ``folder``: every video under ``<root>``, recursively, sorted; labels -1, no classes. ``split``
  and ``subset`` are ignored (unlabelled pretraining data).

Split files are read with CRLF/LF line ends and surrounding blanks stripped; names are matched
case-sensitively, as in the lists (UCF101's ``HandstandPushups`` folder holds
``v_HandStandPushups_*`` files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ssl_video.data.config import DATASETS
from vos.infra.errors import UserError
from vos.infra.video_reader import VIDEO_SUFFIXES

SUBSETS = ("train", "test")
VIDEO_EXTENSIONS = VIDEO_SUFFIXES  # the files vos.infra.video_reader reads

# Where split files are looked for when --split-dir is not given, relative to data_root (first hit).
DEFAULT_SPLIT_DIRS = {
    "ucf101": ("splits", "ucfTrainTestlist", "anno", "."),
    "hmdb51": ("splits", "testTrainMulti_7030_splits", "anno", "."),
}
HMDB_TAGS = {"train": 1, "test": 2}


@dataclass(frozen=True)
class VideoItem:
    """One video file and its 0-based class label (-1 when unlabelled)."""

    path: Path
    label: int


def load_items(dataset: str, data_root, split_dir=None, split: int = 1,
               subset: str = "train") -> tuple[list[VideoItem], list[str]]:
    """Videos of ``subset`` ("train" | "test"; "val" etc. also for kinetics) and the class names."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = Path(data_root)
    if not root.is_dir():
        raise UserError(f"data root {root} is not a directory; pass --data-root pointing at the videos")
    if dataset == "folder":
        return _folder_items(root), []
    if dataset == "kinetics":
        return _kinetics_items(root, subset)
    if subset not in SUBSETS:
        raise UserError(f"unknown subset {subset!r} for {dataset}; choose train or test")
    if split not in (1, 2, 3):
        raise UserError(f"{dataset} has splits 1, 2 and 3, got --split {split}")
    sdir = _find_split_dir(dataset, root, split_dir)
    if dataset == "ucf101":
        items, classes = _ucf101_items(root, sdir, split, subset)
    else:
        items, classes = _hmdb51_items(root, sdir, split, subset)
    _check_exist(items, dataset)
    return items, classes


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank stripped lines with their 1-based line numbers (handles CRLF and a BOM)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"cannot read split file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; split files are text (the official split lists)") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _find_split_dir(dataset: str, root: Path, split_dir) -> Path:
    if split_dir is not None:
        sdir = Path(split_dir)
        if not sdir.is_dir():
            raise UserError(f"split directory {sdir} does not exist; check --split-dir")
        return sdir
    marker = "classInd.txt" if dataset == "ucf101" else "*_test_split1.txt"
    for rel in DEFAULT_SPLIT_DIRS[dataset]:
        cand = root / rel
        if cand.is_dir() and any(cand.glob(marker)):
            return cand
    tried = ", ".join(str(root / rel) for rel in DEFAULT_SPLIT_DIRS[dataset])
    raise UserError(f"no {dataset} split files found (looked in {tried}); pass --split-dir")


def _ucf101_classes(sdir: Path) -> list[str]:
    path = sdir / "classInd.txt"
    if not path.is_file():
        raise UserError(f"{path} not found; --split-dir must hold classInd.txt and the train/test lists")
    classes: dict[int, str] = {}
    for n, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
            raise UserError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index in classes:
            raise UserError(f"{path}:{n}: class index {index} appears twice")
        classes[index] = name
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise UserError(f"{path}: class indices must be 1..{len(classes)} without gaps")
    return [classes[i] for i in range(1, len(classes) + 1)]


def _ucf101_items(root: Path, sdir: Path, split: int, subset: str) -> tuple[list[VideoItem], list[str]]:
    classes = _ucf101_classes(sdir)
    label_of = {name: i for i, name in enumerate(classes)}
    path = sdir / f"{subset}list0{split}.txt"
    if not path.is_file():
        raise UserError(f"{path} not found; is --split-dir the UCF101 split folder (ucfTrainTestlist)?")
    items = []
    for n, line in _read_lines(path):
        parts = line.split()
        if len(parts) not in (1, 2):
            raise UserError(f"{path}:{n}: expected '<Class>/<file>.avi [label]', got {line!r}")
        rel = parts[0].replace("\\", "/")
        class_name = rel.split("/")[0] if "/" in rel else None
        if class_name not in label_of:
            raise UserError(f"{path}:{n}: class folder {class_name!r} of {rel} is not in classInd.txt")
        label = label_of[class_name]
        if len(parts) == 2 and parts[1] != str(label + 1):
            raise UserError(f"{path}:{n}: label {parts[1]} disagrees with classInd.txt "
                           f"({class_name} is {label + 1})")
        items.append(VideoItem(root / rel, label))
    if not items:
        raise UserError(f"{path} lists no videos")
    return items, classes


def _hmdb51_items(root: Path, sdir: Path, split: int, subset: str) -> tuple[list[VideoItem], list[str]]:
    suffix = f"_test_split{split}.txt"
    # Labels follow the sorted class names (as torchvision's HMDB51 numbers them), not the sorted
    # file names: "climb_stairs_test_split1.txt" sorts before "climb_test_split1.txt", "climb" < "climb_stairs".
    by_class = {p.name[: -len(suffix)]: p for p in sdir.iterdir() if p.name.endswith(suffix)}
    if not by_class:
        raise UserError(f"no '<class>{suffix}' files in {sdir}; is --split-dir testTrainMulti_7030_splits?")
    classes = sorted(by_class)
    files = [by_class[name] for name in classes]
    want = HMDB_TAGS[subset]
    items = []
    for label, path in enumerate(files):
        for n, line in _read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(f"{path}:{n}: expected '<name>.avi <tag 0|1|2>', got {line!r}")
            if int(parts[1]) == want:
                items.append(VideoItem(root / classes[label] / parts[0], label))
    if not items:
        raise UserError(f"the {subset} subset of HMDB51 split {split} in {sdir} is empty")
    return items, classes


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _kinetics_items(root: Path, subset: str) -> tuple[list[VideoItem], list[str]]:
    sub = root / subset
    if not sub.is_dir():
        raise UserError(f"{sub} does not exist; kinetics expects <data-root>/{subset}/<class>/*.mp4")
    class_root = root / "train" if (root / "train").is_dir() else sub
    classes = sorted(p.name for p in class_root.iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"no class folders in {class_root}")
    label_of = {name: i for i, name in enumerate(classes)}
    items = []
    for class_dir in sorted(p for p in sub.iterdir() if p.is_dir()):
        if class_dir.name not in label_of:
            raise UserError(f"class folder {class_dir} is not a class of {class_root}")
        items += [VideoItem(p, label_of[class_dir.name])
                  for p in sorted(class_dir.iterdir()) if p.is_file() and _is_video(p)]
    if not items:
        raise UserError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in the class folders of {sub}")
    return items, classes


def _folder_items(root: Path) -> list[VideoItem]:
    paths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        paths += [Path(dirpath) / f for f in filenames if _is_video(Path(f))]
    if not paths:
        raise UserError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {root}")
    return [VideoItem(p, -1) for p in sorted(paths)]


def _check_exist(items: list[VideoItem], dataset: str) -> None:
    missing = [it.path for it in items if not os.path.isfile(it.path)]  # False for names too long to exist
    if missing:
        raise UserError(f"{len(missing)} of {len(items)} {dataset} videos listed in the split files are "
                       f"missing, e.g. {missing[0]}; check --data-root")
