"""Split-file parsing: UCF101, HMDB51, Kinetics folders and plain video folders."""

from pathlib import Path

import pytest

from ssl_video.data.splits import VideoItem, load_items
from vos.infra.errors import UserError

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
UCF_FILES = {
    "ApplyEyeMakeup": ["v_ApplyEyeMakeup_g01_c01.avi", "v_ApplyEyeMakeup_g08_c01.avi"],
    "HandstandPushups": ["v_HandStandPushups_g01_c01.avi", "v_HandStandPushups_g09_c02.avi"],
    "YoYo": ["v_YoYo_g02_c01.avi", "v_YoYo_g10_c03.avi"],
}


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_ucf(root: Path, split_subdir: str = "ucfTrainTestlist") -> Path:
    for cls, files in UCF_FILES.items():
        for f in files:
            touch(root / cls / f)
    sdir = root / split_subdir
    sdir.mkdir(parents=True)
    # The official lists have Windows line ends.
    (sdir / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
    train = "".join(f"{c}/{files[1]} {i + 1}\r\n" for i, (c, files) in enumerate(UCF_FILES.items()))
    test = "".join(f"{c}/{files[0]}\r\n" for c, files in UCF_FILES.items())
    (sdir / "trainlist01.txt").write_bytes(train.encode())
    (sdir / "testlist01.txt").write_bytes(test.encode() + b"\r\n")  # trailing blank line
    (sdir / "trainlist02.txt").write_bytes(f"YoYo/{UCF_FILES['YoYo'][0]} 3\n".encode())
    (sdir / "testlist02.txt").write_bytes(f"YoYo/{UCF_FILES['YoYo'][1]}\n".encode())
    return sdir


def test_ucf101_train_and_test_lists(tmp_path):
    sdir = make_ucf(tmp_path)
    train, classes = load_items("ucf101", tmp_path, sdir, split=1, subset="train")
    assert classes == UCF_CLASSES
    assert train == [VideoItem(tmp_path / c / files[1], i) for i, (c, files) in enumerate(UCF_FILES.items())]
    test, classes_t = load_items("ucf101", tmp_path, sdir, split=1, subset="test")
    assert classes_t == UCF_CLASSES
    # test lists carry no label: it comes from the folder name through classInd (0-based)
    assert [(it.path.name, it.label) for it in test] == [
        ("v_ApplyEyeMakeup_g01_c01.avi", 0), ("v_HandStandPushups_g01_c01.avi", 1), ("v_YoYo_g02_c01.avi", 2)]
    train2, _ = load_items("ucf101", tmp_path, sdir, split=2, subset="train")
    assert train2 == [VideoItem(tmp_path / "YoYo" / UCF_FILES["YoYo"][0], 2)]


@pytest.mark.parametrize("subdir", ["splits", "ucfTrainTestlist"])
def test_ucf101_split_dir_is_found_under_the_data_root(tmp_path, subdir):
    make_ucf(tmp_path, subdir)
    items, _ = load_items("ucf101", tmp_path, None, split=1, subset="test")
    assert len(items) == 3


def test_ucf101_errors(tmp_path):
    sdir = make_ucf(tmp_path)
    with pytest.raises(UserError, match="splits 1, 2 and 3"):
        load_items("ucf101", tmp_path, sdir, split=4)
    with pytest.raises(UserError, match="trainlist03.txt not found"):
        load_items("ucf101", tmp_path, sdir, split=3)
    with pytest.raises(UserError, match="--split-dir"):
        load_items("ucf101", tmp_path, tmp_path / "nope")
    with pytest.raises(UserError, match="unknown subset"):
        load_items("ucf101", tmp_path, sdir, subset="val")
    with pytest.raises(UserError, match="unknown dataset"):
        load_items("ucf", tmp_path, sdir)
    with pytest.raises(UserError, match="not a directory"):
        load_items("ucf101", tmp_path / "missing", sdir)

    (tmp_path / "YoYo" / UCF_FILES["YoYo"][1]).unlink()
    with pytest.raises(UserError, match=r"1 of 3 ucf101 videos .* missing, e\.g\. .*v_YoYo_g10_c03\.avi"):
        load_items("ucf101", tmp_path, sdir, subset="train")

    (sdir / "trainlist01.txt").write_text("YoYo/v_YoYo_g02_c01.avi 1\n")
    with pytest.raises(UserError, match=r"trainlist01.txt:1: label 1 disagrees .*YoYo is 3"):
        load_items("ucf101", tmp_path, sdir, subset="train")
    (sdir / "testlist01.txt").write_text("YoYo/v_YoYo_g02_c01.avi\nSkiing/v_Skiing_g01_c01.avi\n")
    with pytest.raises(UserError, match=r"testlist01.txt:2: class folder 'Skiing'"):
        load_items("ucf101", tmp_path, sdir, subset="test")
    (sdir / "classInd.txt").write_text("1 ApplyEyeMakeup\n3 YoYo\n")
    with pytest.raises(UserError, match="without gaps"):
        load_items("ucf101", tmp_path, sdir, subset="test")


def test_ucf101_missing_split_files(tmp_path):
    touch(tmp_path / "YoYo" / "v_YoYo_g01_c01.avi")
    with pytest.raises(UserError, match="no ucf101 split files found .* pass --split-dir"):
        load_items("ucf101", tmp_path)
    (tmp_path / "lists").mkdir()
    with pytest.raises(UserError, match="classInd.txt not found"):
        load_items("ucf101", tmp_path, tmp_path / "lists")


def make_hmdb(root: Path) -> Path:
    sdir = root / "testTrainMulti_7030_splits"
    sdir.mkdir(parents=True)
    lines = {"wave": ["a.avi 1", "b.avi 2", "c.avi 0"], "brush_hair": ["d.avi 2", "e.avi 1", "f.avi 1"]}
    for cls, rows in lines.items():
        for row in rows:
            touch(root / cls / row.split()[0])
        for split in (1, 2, 3):
            (sdir / f"{cls}_test_split{split}.txt").write_bytes(("\r\n".join(rows) + " \r\n").encode())
    return sdir


def test_hmdb51_tags(tmp_path):
    make_hmdb(tmp_path)
    train, classes = load_items("hmdb51", tmp_path, None, split=2, subset="train")
    assert classes == ["brush_hair", "wave"]  # sorted class names
    assert [(it.path.relative_to(tmp_path).as_posix(), it.label) for it in train] == [
        ("brush_hair/e.avi", 0), ("brush_hair/f.avi", 0), ("wave/a.avi", 1)]
    test, _ = load_items("hmdb51", tmp_path, None, split=2, subset="test")
    assert [(it.path.name, it.label) for it in test] == [("d.avi", 0), ("b.avi", 1)]  # tag 0 (c.avi) unused


def test_hmdb51_labels_follow_sorted_class_names_with_shared_prefixes(tmp_path):
    # The official split files sort as climb_stairs_test_split1.txt < climb_test_split1.txt ('_' < 't'),
    # but the classes are numbered by sorted name (torchvision's order): climb < climb_stairs.
    sdir = tmp_path / "splits"
    sdir.mkdir()
    names = ["climb_stairs", "climb", "kick_ball", "kick", "sword_exercise", "sword"]
    for cls in names:
        touch(tmp_path / cls / f"{cls}_1.avi")
        (sdir / f"{cls}_test_split1.txt").write_text(f"{cls}_1.avi 1\n")
    assert sorted(p.name for p in sdir.iterdir())[:2] == ["climb_stairs_test_split1.txt", "climb_test_split1.txt"]
    items, classes = load_items("hmdb51", tmp_path, sdir, split=1, subset="train")
    assert classes == ["climb", "climb_stairs", "kick", "kick_ball", "sword", "sword_exercise"]
    assert {it.path.parent.name: it.label for it in items} == {
        "climb": 0, "climb_stairs": 1, "kick": 2, "kick_ball": 3, "sword": 4, "sword_exercise": 5}


def test_hmdb51_errors(tmp_path):
    sdir = make_hmdb(tmp_path)
    (sdir / "wave_test_split1.txt").write_text("a.avi 1\nb.avi 3\n")
    with pytest.raises(UserError, match=r"wave_test_split1.txt:2: expected '<name>.avi <tag 0\|1\|2>'"):
        load_items("hmdb51", tmp_path, sdir, split=1)
    (tmp_path / "brush_hair" / "e.avi").unlink()
    with pytest.raises(UserError, match="missing, e.g. .*e.avi"):
        load_items("hmdb51", tmp_path, sdir, split=2)
    with pytest.raises(UserError, match="no '<class>_test_split1.txt' files"):
        load_items("hmdb51", tmp_path, tmp_path / "wave", split=1)


def test_kinetics_folders(tmp_path):
    for rel in ["train/ski/1.mp4", "train/ski/2.mkv", "train/abseil/3.mp4", "train/abseil/notes.txt",
                "val/abseil/4.mp4", "val/ski/5.mp4"]:
        touch(tmp_path / rel)
    train, classes = load_items("kinetics", tmp_path, subset="train")
    assert classes == ["abseil", "ski"]
    assert [(it.path.relative_to(tmp_path).as_posix(), it.label) for it in train] == [
        ("train/abseil/3.mp4", 0), ("train/ski/1.mp4", 1), ("train/ski/2.mkv", 1)]
    val, classes_v = load_items("kinetics", tmp_path, subset="val")
    assert classes_v == classes and [it.label for it in val] == [0, 1]
    touch(tmp_path / "val" / "zumba" / "6.mp4")
    with pytest.raises(UserError, match="zumba is not a class of"):
        load_items("kinetics", tmp_path, subset="val")
    with pytest.raises(UserError, match="test does not exist"):
        load_items("kinetics", tmp_path, subset="test")


def test_folder_of_videos_is_recursive_sorted_and_unlabelled(tmp_path):
    for rel in ["b/2.mp4", "a/x/1.AVI", "a/0.webm", "a/readme.md", ".hidden/9.mp4", "c.mp4"]:
        touch(tmp_path / rel)
    items, classes = load_items("folder", tmp_path, split=7, subset="anything")
    assert classes == []
    assert [it.path.relative_to(tmp_path).as_posix() for it in items] == ["a/0.webm", "a/x/1.AVI", "b/2.mp4", "c.mp4"]
    assert {it.label for it in items} == {-1}
    touch(tmp_path / "empty" / "notes.txt")
    with pytest.raises(UserError, match="no videos"):
        load_items("folder", tmp_path / "empty")
