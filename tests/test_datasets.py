"""Dataset readers: each layout on a tiny tree of real H.264 videos / PNG and JPEG images."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustdf.data.readers import READERS, Video, discover, register
from robustdf.data.frames import open_video
from robustdf.runtime import DataError
from robustdf.data.synth import encode_h264


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3-frame 32x32 H.264 mp4, copied wherever a layout needs a video."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    rng = np.random.default_rng(0)
    encode_h264([rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)], path, 25, 23, 3)
    return path


def _put(root: Path, clip: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".png", ".jpg")):
            Image.new("RGB", (8, 8), (40, 80, 120)).save(root / rel)
        elif rel.endswith(".mp4"):
            shutil.copy(clip, root / rel)
        else:
            (root / rel).write_text("not data\n")


def _by_key(videos: list[Video]) -> dict[str, Video]:
    by_key = {v.key: v for v in videos}
    assert len(by_key) == len(videos)
    return by_key


def test_registry_names_the_kind_and_the_known_ones(tmp_path, monkeypatch):
    assert {"ffpp", "celebdf", "dfdc", "dffd", "csv"} <= set(READERS)
    with pytest.raises(ValueError, match="unknown dataset kind 'wilddf'; known kinds: celebdf, csv, dfdc, dffd"):
        discover("wilddf", tmp_path)
    with pytest.raises(TypeError, match="dataset kind 'dffd'.*split"):
        discover("dffd", tmp_path, spilt="test")
    monkeypatch.setitem(READERS, "twice", lambda root: ([Video("k", "m", 0, "t", "", "", "p", 1)] * 2, []))
    with pytest.raises(DataError, match="keys are not unique: \\['k'\\]"):
        discover("twice", tmp_path)
    with pytest.raises(ValueError, match="registered twice"):
        register("ffpp")(lambda root: ([], []))


def test_ffpp_reader_names_each_fakes_original_and_keeps_the_manifest_columns(tmp_path, clip):
    _put(tmp_path, clip, "original_sequences/youtube/c23/videos/000.mp4",
         "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
         "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
         "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    videos, unknown = discover("ffpp", tmp_path, compression="c23", methods=["Deepfakes", "DeepFakeDetection"],
                               real_sources=["youtube", "actors"])
    original = {k: v.original for k, v in _by_key(videos).items()}
    assert original == {"original/000": "", "actors/01__exit_phone_room": "", "Deepfakes/000_003": "original/000",
                        "DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK": "actors/01__exit_phone_room"}
    assert not unknown and {v.kind for v in videos} == {"video"}
    assert list(videos[0].row()) == ["key", "method", "label", "target", "source", "compression", "path",
                                     "size_bytes"]  # the manifest of an FF++ run is unchanged
    assert len(open_video(videos[0].path)) == 3  # the trees below hold real, decodable H.264


CDF_LIST = ["1 Celeb-real/id0_0000.mp4", "1 YouTube-real/00003.mp4", "0 Celeb-synthesis/id0_id1_0000.mp4",
            "", "0 Celeb-synthesis/id1_id0_0002.mp4"]


def _celebdf(root: Path, clip: Path, lines: list[str] = CDF_LIST) -> Path:
    _put(root, clip, "Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "YouTube-real/00003.mp4",
         "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0002.mp4", "Celeb-synthesis/id1_id0_0009.mp4",
         "Celeb-synthesis/Thumbs.db")
    (root / "List_of_testing_videos.txt").write_text("".join(f"{ln}\n" for ln in lines))
    return root


def test_celebdf_returns_exactly_the_test_list_with_labels_inverted(tmp_path, clip):
    videos, unknown = discover("celebdf", _celebdf(tmp_path, clip))
    got = {k: (v.label, v.method, v.target, v.source, v.original) for k, v in _by_key(videos).items()}
    assert got == {
        "celebdf:Celeb-real/id0_0000": (0, "Celeb-real", "cdf:0", "", ""),
        "celebdf:YouTube-real/00003": (0, "YouTube-real", "cdf-yt:00003", "", ""),
        "celebdf:Celeb-synthesis/id0_id1_0000": (1, "Celeb-synthesis", "cdf:0", "cdf:1", ""),  # listed 0 = fake
        "celebdf:Celeb-synthesis/id1_id0_0002": (1, "Celeb-synthesis", "cdf:1", "cdf:0", ""),
    }
    assert sorted(Path(u).name for u in unknown) == ["Thumbs.db", "id1_0000.mp4", "id1_id0_0009.mp4"]


@pytest.mark.parametrize("break_it, message", [
    (lambda r: shutil.rmtree(r / "YouTube-real"), "Celeb-DF folder .*/YouTube-real does not exist"),
    (lambda r: (r / "List_of_testing_videos.txt").unlink(), "Celeb-DF test list .*List_of_testing_videos.txt "
                                                            "does not exist"),
    (lambda r: (r / "Celeb-synthesis/id1_id0_0002.mp4").unlink(),
     "List_of_testing_videos.txt:5: listed file .*Celeb-synthesis/id1_id0_0002.mp4 does not exist"),
    (lambda r: (r / "List_of_testing_videos.txt").write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n"),
     "List_of_testing_videos.txt:1: label 1 \\(REAL\\) contradicts folder Celeb-synthesis/"),
    (lambda r: (r / "List_of_testing_videos.txt").write_text("real Celeb-real/id0_0000.mp4\n"),
     "List_of_testing_videos.txt:1: column 'label': label 'real'"),
    (lambda r: (r / "List_of_testing_videos.txt").write_text("0 Celeb-synthesis/Thumbs.db\n"),
     "List_of_testing_videos.txt:1: Celeb-synthesis/Thumbs.db is not a Celeb-DF name"),
])
def test_celebdf_layout_errors_name_the_file(tmp_path, clip, break_it, message):
    break_it(_celebdf(tmp_path, clip))
    with pytest.raises(DataError, match=message):
        discover("celebdf", tmp_path)
    with pytest.raises(DataError, match=re.escape(f"Celeb-DF root {tmp_path / 'nope'} does not exist")):
        discover("celebdf", tmp_path / "nope")


def _dfdc_parts(root: Path, clip: Path) -> Path:
    meta = {
        "dfdc_train_part_0": {"aaa.mp4": {"label": "FAKE", "original": "bbb.mp4", "split": "train"},
                              "bbb.mp4": {"label": "REAL", "original": None, "split": "train"},
                              "ccc.mp4": {"label": "FAKE", "original": "zzz.mp4", "split": "train"}},
        "dfdc_train_part_1": {"ddd.mp4": {"label": "REAL", "original": None},
                              "eee.mp4": {"label": "FAKE", "original": "ddd.mp4"}},
    }
    for part, entries in meta.items():
        _put(root, clip, *(f"{part}/{name}" for name in entries))
        (root / part / "metadata.json").write_text(json.dumps(entries))
    _put(root, clip, "dfdc_train_part_0/stray.mp4", "README.txt", "unpacked/fff.mp4")
    return root


def test_dfdc_parts_expose_the_original_of_each_fake_and_group_by_it(tmp_path, clip):
    videos, unknown = discover("dfdc", _dfdc_parts(tmp_path, clip))
    got = {k: (v.label, v.method, v.target, v.original) for k, v in _by_key(videos).items()}
    assert got == {
        "dfdc:dfdc_train_part_0/aaa": (1, "dfdc-fake", "dfdc:bbb", "dfdc:dfdc_train_part_0/bbb"),
        "dfdc:dfdc_train_part_0/bbb": (0, "dfdc-real", "dfdc:bbb", ""),
        "dfdc:dfdc_train_part_0/ccc": (1, "dfdc-fake", "dfdc:zzz", ""),  # its original is not in the set
        "dfdc:dfdc_train_part_1/ddd": (0, "dfdc-real", "dfdc:ddd", ""),
        "dfdc:dfdc_train_part_1/eee": (1, "dfdc-fake", "dfdc:ddd", "dfdc:dfdc_train_part_1/ddd"),
    }
    assert sorted(Path(u).relative_to(tmp_path).as_posix() for u in unknown) == [
        "README.txt", "dfdc_train_part_0/stray.mp4", "unpacked"]


def test_dfdc_public_test_labels_csv(tmp_path, clip):
    _put(tmp_path, clip, "x.mp4", "y.mp4", "z.mp4")
    (tmp_path / "labels.csv").write_text("filename,label\nx.mp4,1\ny.mp4,0\n")
    videos, unknown = discover("dfdc", tmp_path)
    assert {(v.key, v.label, v.target, v.original) for v in videos} == {("dfdc:x", 1, "dfdc:x", ""),
                                                                       ("dfdc:y", 0, "dfdc:y", "")}
    assert [Path(u).name for u in unknown] == ["z.mp4"]
    (tmp_path / "labels.csv").write_text("filename,label\nx.mp4,1\ny.mp4,FAKE\n")
    with pytest.raises(DataError, match="labels.csv:3: column 'label': label 'FAKE' is not one of \\['0', '1'\\]"):
        discover("dfdc", tmp_path)


@pytest.mark.parametrize("break_it, message", [
    (lambda r: [(r / p / "metadata.json").unlink() for p in ("dfdc_train_part_0", "dfdc_train_part_1")],
     "DFDC label file \\(metadata.json or labels.csv\\) does not exist in"),
    (lambda r: (r / "dfdc_train_part_1/eee.mp4").unlink(),
     "part_1/metadata.json: entry 'eee.mp4': listed file .*part_1/eee.mp4 does not exist"),
    (lambda r: (r / "dfdc_train_part_1/metadata.json").write_text('{"ddd.mp4": {"label": "real"}}'),
     "part_1/metadata.json: entry 'ddd.mp4': column 'label': label 'real'"),
    (lambda r: shutil.copy(r / "dfdc_train_part_0/metadata.json", r / "dfdc_train_part_1/metadata.json"),
     "part_1/metadata.json: entry 'aaa.mp4': listed file .*part_1/aaa.mp4 does not exist"),
    (lambda r: (shutil.copy(r / "dfdc_train_part_0/bbb.mp4", r / "dfdc_train_part_1/bbb.mp4"),
                (r / "dfdc_train_part_1/metadata.json").write_text('{"bbb.mp4": {"label": "REAL"}}')),
     "DFDC file name bbb.mp4 is in two folders: dfdc:dfdc_train_part_0/bbb, .*part_1/bbb.mp4"),
])
def test_dfdc_layout_errors_name_the_file(tmp_path, clip, break_it, message):
    break_it(_dfdc_parts(tmp_path, clip))
    with pytest.raises(DataError, match=message):
        discover("dfdc", tmp_path)
    with pytest.raises(DataError, match=re.escape(f"DFDC root {tmp_path / 'nope'} does not exist")):
        discover("dfdc", tmp_path / "nope")


def _dffd(root: Path, clip: Path) -> Path:
    _put(root, clip, "ffhq/test/00000.png", "ffhq/test/notes.txt", "ffhq/train/00009.png", "celeba/test/000001.jpg",
         "stylegan_ffhq/test/00000.png", "stylegan_ffhq/test/00001.jpg", "Deepfakes/test/000_003_0.png",
         "midjourney/test/0.png")
    return root


def test_dffd_reads_one_split_of_the_known_sources_as_images(tmp_path, clip):
    images, unknown = discover("dffd", _dffd(tmp_path, clip), split="test")
    got = {k: (v.label, v.method, v.target, v.kind) for k, v in _by_key(images).items()}
    assert got == {
        "dffd:Deepfakes/test/000_003_0": (1, "Deepfakes", "dffd:Deepfakes/test/000_003_0", "image"),
        "dffd:celeba/test/000001": (0, "celeba", "dffd:celeba/test/000001", "image"),
        "dffd:ffhq/test/00000": (0, "ffhq", "dffd:ffhq/test/00000", "image"),
        "dffd:stylegan_ffhq/test/00000": (1, "stylegan_ffhq", "dffd:stylegan_ffhq/test/00000", "image"),
        "dffd:stylegan_ffhq/test/00001": (1, "stylegan_ffhq", "dffd:stylegan_ffhq/test/00001", "image"),
    }
    assert sorted(Path(u).relative_to(tmp_path).as_posix() for u in unknown) == ["ffhq/test/notes.txt", "midjourney"]
    assert Image.open(images[0].path).size == (8, 8)
    (tmp_path / "faceapp").mkdir()
    with pytest.raises(DataError, match=re.escape(f"DFFD test folder {tmp_path / 'faceapp' / 'test'} does not exist")):
        discover("dffd", tmp_path, split="test")
    with pytest.raises(ValueError, match="DFFD split 'val' is not one of"):
        discover("dffd", tmp_path, split="val")
    with pytest.raises(DataError, match=re.escape(f"DFFD root {tmp_path / 'nope'} does not exist")):
        discover("dffd", tmp_path / "nope", split="test")


def _table(root: Path, clip: Path, rows: str) -> Path:
    _put(root, clip, "a.mp4", "sub/b.png", "sub/c.mp4")
    (root / "data.csv").write_text(rows)
    return root / "data.csv"


def test_csv_reader_lists_videos_and_images_and_leaves_the_rest_unread(tmp_path, clip):
    table = _table(tmp_path, clip, "path,label,identity,method\na.mp4,0,p1,real\nsub/b.png,1,p1,gan\n")
    videos, unknown = discover("csv", table, name="mine")
    got = {k: (v.label, v.method, v.target, v.kind) for k, v in _by_key(videos).items()}
    assert got == {"mine:a": (0, "real", "mine:p1", "video"), "mine:sub/b": (1, "gan", "mine:p1", "image")}
    assert [Path(u).relative_to(tmp_path).as_posix() for u in unknown] == ["sub/c.mp4"]


@pytest.mark.parametrize("rows, message", [
    ("path,label,method\na.mp4,0,real\n", "data.csv:1: header lacks column\\(s\\) \\['identity'\\]"),
    ("path,label,identity,method\na.mp4,0,p1,real\nsub/b.png,yes,p1,gan\n",
     "data.csv:3: column 'label': label 'yes' is not one of \\['0', '1'\\]"),
    ("path,label,identity,method\nmissing.mp4,1,p1,gan\n",
     "data.csv:2: column 'path': listed file .*missing.mp4 does not exist"),
    ("path,label,identity,method\n../a.mp4,1,p1,gan\n", "data.csv:2: column 'path': listed path '../a.mp4' is outside"),
    ("path,label,identity,method\na.mp4,1,,gan\n", "data.csv:2: column 'identity' is empty"),
    ("path,label,identity,method\ndata.csv,1,p1,gan\n", "data.csv:2: column 'path': .* is neither a video nor"),
])
def test_csv_errors_name_the_file_line_and_column(tmp_path, clip, rows, message):
    table = _table(tmp_path, clip, rows)
    with pytest.raises(DataError, match=message):
        discover("csv", table)
    with pytest.raises(DataError, match=re.escape(f"dataset CSV {tmp_path / 'nope.csv'} does not exist")):
        discover("csv", tmp_path / "nope.csv")
