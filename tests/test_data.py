"""Data stages: FF++ layout, decord sampling, face crops, bad videos, split and balance."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REAL_CLIP
from robustdf.data import faces
from robustdf.data.balance import balance
from robustdf.data.dataset import OPEN_MAPS, FrameDataset
from robustdf.data.readers import Video
from robustdf.data.readers.ffpp import discover, parse_name
from robustdf.data.frames import ExtractJob, even_indices, extract_video, read_frames
from robustdf.params import FaceCropParams
from robustdf.runtime import DataError
from robustdf.data.splitting import apply_holdout, assign_splits, identity_leaks, load_official

METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection"]


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("comp", ["c23", "c40"])
def test_layout_parsing_every_method_dfd_and_stray_files(tmp_path, comp):
    root = tmp_path
    _touch(root / f"original_sequences/youtube/{comp}/videos/000.mp4")
    _touch(root / f"original_sequences/youtube/{comp}/videos/003.mp4")
    _touch(root / f"original_sequences/actors/{comp}/videos/01__exit_phone_room.mp4")
    for m in METHODS[:-1]:
        _touch(root / f"manipulated_sequences/{m}/{comp}/videos/000_003.mp4")
    _touch(root / f"manipulated_sequences/DeepFakeDetection/{comp}/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    _touch(root / f"manipulated_sequences/Deepfakes/{comp}/videos/README.txt")
    _touch(root / f"manipulated_sequences/Deepfakes/{comp}/videos/000_003.avi")
    _touch(root / f"original_sequences/youtube/{comp}/videos/.DS_Store")
    videos, unknown = discover(root, comp, METHODS, ["youtube", "actors"])
    keys = {v.key for v in videos}
    assert len(videos) == 9 and len(keys) == 9
    assert {"Deepfakes/000_003", "Face2Face/000_003", "original/000", "actors/01__exit_phone_room"} <= keys
    dfd = next(v for v in videos if v.method == "DeepFakeDetection")
    assert (dfd.target, dfd.source, dfd.label) == ("dfd:01", "dfd:02", 1)
    assert all(v.compression == comp for v in videos)
    assert sorted(Path(u).name for u in unknown) == [".DS_Store", "000_003.avi", "README.txt"]


def test_layout_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        discover(tmp_path / "nope", "c23", ["Deepfakes"], ["youtube"])
    _touch(tmp_path / "original_sequences/youtube/c23/videos/000.mp4")
    with pytest.raises(DataError, match="manipulated_sequences/Face2Face/c23/videos does not exist"):
        discover(tmp_path, "c23", ["Face2Face"], ["youtube"])
    (tmp_path / "manipulated_sequences/Face2Face/c23/videos").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no FF\\+\\+ videos"):
        discover(tmp_path, "c23", ["Face2Face"], ["youtube"])


def test_name_patterns():
    assert parse_name("071", "original") == ("yt:071", "")
    assert parse_name("071_054", "Face2Face") == ("yt:071", "yt:054")
    assert parse_name("71_54", "Face2Face") is None
    assert parse_name("12__talking_angry_couch", "actors") == ("dfd:12", "")


def test_generated_sample_has_ffpp_layout_and_real_h264(tiny_sample):
    videos, unknown = discover(tiny_sample, "c23", ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"],
                               ["youtube"])
    assert not unknown
    assert sum(v.label == 0 for v in videos) == 8 and sum(v.label == 1 for v in videos) == 32
    import av

    with av.open(str(tiny_sample / "manipulated_sequences/Deepfakes/c23/videos" / Path(videos[-1].path).name)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    splits = {s: json.loads((tiny_sample / "splits" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    ids = [i for pairs in splits.values() for pair in pairs for i in pair]
    assert len(ids) == len(set(ids)) == 8 and all(len(p) == 2 for s in splits.values() for p in s)


def test_decord_samples_evenly_in_one_call():
    assert even_indices(275, 4).tolist() == [34, 103, 171, 240]
    idx, frames = read_frames(str(REAL_CLIP), 8)
    assert frames.shape == (8, 360, 640, 3) and frames.dtype == np.uint8
    assert idx.tolist() == even_indices(275, 8).tolist()
    with pytest.raises(ValueError, match="fewer than frames_per_video"):
        read_frames(str(REAL_CLIP), 1000)


def _video(path: Path, key: str = "original/000") -> Video:
    return Video(key, key.split("/")[0], 0, "yt:000", "", "c23", str(path), path.stat().st_size)


def test_face_crops_on_real_clip(tmp_path):
    job = ExtractJob(_video(REAL_CLIP), tmp_path, "v.npy", 8, 96, FaceCropParams(enabled=True, fallback="nearest"))
    row = extract_video(job)
    assert "error" not in row, row
    assert row["n_frames"] == 8 and row["n_fallback"] <= 3  # faces found in most frames
    for x0, y0, x1, y1 in row["boxes"]:
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360 and x1 - x0 == y1 - y0
    assert np.load(tmp_path / "v.npy").shape == (8, 96, 96, 3)


def test_fallbacks_are_counted_when_no_face(tmp_path, tiny_sample):
    # without upsampling dlib's HOG detector finds no face of ~35 px in the 64x64 sample: every frame falls back
    video = tiny_sample / "original_sequences/youtube/c23/videos/000.mp4"
    for fallback, n_kept in (("center", 2), ("nearest", 2)):
        row = extract_video(ExtractJob(_video(video), tmp_path, f"{fallback}.npy", 2, 32,
                                       FaceCropParams(enabled=True, fallback=fallback, upsample=0)))
        assert row["n_fallback"] == 2 and row["n_frames"] == n_kept and len(row["fallback_frames"]) == 2
    row = extract_video(ExtractJob(_video(video), tmp_path, "drop.npy", 2, 32,
                                   FaceCropParams(enabled=True, fallback="drop", upsample=0)))
    assert "no face found" in row["error"]


def test_fill_missing_reuses_nearest_box():
    boxes = [None, (0, 0, 10, 10), None, None, (5, 5, 15, 15)]
    out, n = faces.fill_missing(boxes, "nearest", 100, 100)
    assert n == 3 and out == [(0, 0, 10, 10), (0, 0, 10, 10), (0, 0, 10, 10), (5, 5, 15, 15), (5, 5, 15, 15)]
    assert faces.square_box((600, 300, 700, 360), 1.3, 640, 360) == (510, 230, 640, 360)


@pytest.mark.parametrize("kind, reason", [
    ("zero", "empty file (0 bytes)"),
    ("truncated", "moov atom not found"),  # FFmpeg's own words, which decord prints only to stderr
    ("garbage", "Invalid data found when processing input"),
])
def test_bad_videos_give_failure_rows_with_the_decoder_message(tmp_path, kind, reason):
    bad = tmp_path / "000.mp4"
    data = REAL_CLIP.read_bytes()
    bad.write_bytes({"zero": b"", "truncated": data[: len(data) // 20], "garbage": b"\x00\x01junk" * 500}[kind])
    row = extract_video(ExtractJob(_video(bad), tmp_path, "x.npy", 8, 32, FaceCropParams()))
    assert reason in row["error"] and "0x" not in row["error"], row  # no FFmpeg pointer: same bytes every run
    assert not (tmp_path / "x.npy").exists()


def _rows():
    rows = []
    for t, s in [("000", "001"), ("002", "003"), ("004", "005"), ("006", "007")]:
        for a, b in ((t, s), (s, t)):
            rows.append({"key": f"original/{a}", "method": "original", "label": 0, "target": f"yt:{a}", "source": ""})
            for m in ("Deepfakes", "Face2Face"):
                rows.append({"key": f"{m}/{a}_{b}", "method": m, "label": 1, "target": f"yt:{a}", "source": f"yt:{b}"})
    return rows


def test_official_split_is_respected_exactly(tmp_path):
    official = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
    for k, v in official.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    rows, *_ = assign_splits(_rows(), load_official(tmp_path), {"train": 0.5, "val": 0.25, "test": 0.25}, 0)
    for r in rows:
        ident = r["target"][3:]
        expect = next(s for s, pairs in official.items() if any(ident in p for p in pairs))
        assert r["split"] == expect, r
    assert not identity_leaks(rows)


def test_every_video_records_its_identity_group_the_unit_evaluation_resamples(tmp_path):
    official = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
    for k, v in official.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    for split in (load_official(tmp_path), None):
        rows, *_ = assign_splits(_rows(), split, {"train": 0.5, "val": 0.25, "test": 0.25}, 0)
        group = {r["key"]: r["group"] for r in rows}
        # an original, its fakes and the fakes of its swap partner form one group; other pairs do not
        pair = ["original/006", "original/007", "Deepfakes/006_007", "Face2Face/007_006"]
        assert len({group[k] for k in pair}) == 1
        assert group["original/006"] != group["original/004"]
        assert len(set(group.values())) == 4


def test_grouped_split_has_no_identity_leak_and_holdout():
    rows, *_ = assign_splits(_rows(), None, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=3)
    assert not identity_leaks(rows)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    kept = apply_holdout(rows, ["Face2Face"])
    assert not [r for r in kept if r["method"] == "Face2Face" and r["split"] != "test"]
    assert [r for r in kept if r["method"] == "Face2Face" and r["split"] == "test"]


def test_balancing_counts_per_strategy():
    rows, *_ = assign_splits(_rows(), None, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=3)

    def count(rs, split):
        part = [r for r in rs if r["split"] == split]
        return sum(r["label"] == 0 for r in part), sum(r["label"] == 1 for r in part)

    under = balance(rows, "undersample", ["train", "val"], 0)
    over = balance(rows, "oversample", ["train", "val"], 0)
    none = balance(rows, "none", ["train", "val"], 0)
    for split in ("train", "val"):
        n_real, n_fake = count(rows, split)
        assert count(under, split) == (n_real, n_real)
        assert count(over, split) == (n_fake, n_fake)
        assert count(none, split) == (n_real, n_fake)
        methods = [r["method"] for r in under if r["split"] == split and r["label"] == 1]
        assert abs(methods.count("Deepfakes") - methods.count("Face2Face")) <= 1
    assert count(under, "test") == count(rows, "test")  # test untouched
    for out in (under, over):  # never moves a video across splits
        assert {r["key"]: r["split"] for r in out}.items() <= {r["key"]: r["split"] for r in rows}.items()
    assert under == balance(rows, "undersample", ["train", "val"], 0)


def _dfd_rows(n_actors: int = 12) -> list[dict]:
    """DFD-shaped rows: per actor two real scenes, and fakes of many (target, source) actor pairs."""
    rows = []
    for t in range(1, n_actors + 1):
        for scene in ("kitchen", "podium"):
            rows.append({"key": f"actors/{t:02d}__{scene}", "method": "actors", "label": 0, "target": f"dfd:{t:02d}",
                         "source": ""})
            for s in range(1, n_actors + 1):
                if s != t and (t + s) % 3:
                    rows.append({"key": f"DeepFakeDetection/{t:02d}_{s:02d}__{scene}__ABCDEFGH",
                                 "method": "DeepFakeDetection", "label": 1, "target": f"dfd:{t:02d}",
                                 "source": f"dfd:{s:02d}"})
    return rows


def test_dfd_actors_split_disjointly_with_dfd_in_test(tmp_path):
    official = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
    for k, v in official.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    rows = _rows() + _dfd_rows()
    kept, dropped, notes = assign_splits(rows, load_official(tmp_path), {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    assert not identity_leaks(kept)
    assert len(kept) + len(dropped) == len(rows) and dropped and any("dropped" in n for n in notes)
    assert all(r["method"] == "DeepFakeDetection" for r in dropped)
    by_split = {s: {r["key"] for r in kept if r["split"] == s} for s in ("train", "val", "test")}
    for split in ("train", "val", "test"):  # DFD reals and fakes reach every split, test included
        assert any(k.startswith("actors/") for k in by_split[split]), split
        assert any(k.startswith("DeepFakeDetection/") for k in by_split[split]), split
    for r in kept:  # FF++ pairs keep their official split
        if r["target"].startswith("yt:"):
            assert r["split"] == next(s for s, ps in official.items() if any(r["target"][3:] in p for p in ps))
    # every dropped fake really straddles: its two actors hold different splits
    actor_split = {r["target"]: r["split"] for r in kept if r["method"] == "actors"}
    assert all(actor_split[r["target"]] != actor_split[r["source"]] for r in dropped)
    again = assign_splits(rows, load_official(tmp_path), {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    assert again.rows == kept  # seeded


def test_frame_dataset_keeps_a_bounded_number_of_files_mapped(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3 * OPEN_MAPS):
        frames = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
        np.save(tmp_path / f"{i}.npy", frames)
        rows.append({"frames_file": f"{i}.npy", "n_frames": 2, "label": i % 2})
    ds = FrameDataset(rows, tmp_path)
    for index in range(len(ds)):
        i, k = ds.items[index]
        expected = np.load(tmp_path / f"{i}.npy")[k]
        assert np.array_equal(ds.uint8(index).permute(1, 2, 0).numpy(), expected)  # values survive re-opening
        assert len(ds._arrays) <= OPEN_MAPS
    assert np.array_equal(ds.uint8(0).permute(1, 2, 0).numpy(), np.load(tmp_path / "0.npy")[0])  # closed, reopened


def _epochs(rows, root, workers: int, epochs: int = 2) -> list[dict[int, np.ndarray]]:
    """Per epoch, the augmented image of every frame (one frame per video: the row index is the frame)."""
    from robustdf.params import AugmentParams
    from robustdf.train.loop import train_loader

    ds = FrameDataset(rows, root, AugmentParams(hflip=True, brightness=0.2, contrast=0.2, jpeg_prob=0.5), seed=3)
    loader, sampler = train_loader(ds, batch_size=4, num_workers=workers, seed=3)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append({int(i): img.numpy() for x, _, idx in loader for img, i in zip(x, idx, strict=True)})
    return out


def test_augmentation_changes_per_epoch_inside_persistent_workers_and_ignores_their_count(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        np.save(tmp_path / f"{i}.npy", rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8))
        rows.append({"frames_file": f"{i}.npy", "n_frames": 1, "label": i % 2})
    inline, workers = _epochs(rows, tmp_path, 0), _epochs(rows, tmp_path, 2)
    for a, b in zip(inline, workers, strict=True):  # same frames, same order, bit-identical augmentation
        assert list(a) == list(b) and all(np.array_equal(a[i], b[i]) for i in a)
    first, second = workers
    common = set(first) & set(second)
    assert len(common) >= 4
    assert all(not np.array_equal(first[i], second[i]) for i in common)  # a new draw each epoch, in the workers
