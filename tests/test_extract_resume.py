"""Extraction over a whole tree: box reuse from originals, face share policy, resume, incremental, DVC."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REAL_CLIP, copy_project, dvc, init_git, tiny_params, write_params
from robustdf.data import extraction, faces
from robustdf.data.extraction import apply_face_policy, extract_all, split_results
from robustdf.data.readers.ffpp import discover
from robustdf.data.manifest import face_share_by_method
from robustdf.data.frames import read_frames
from robustdf.params import validate_group
from robustdf.data.synth import encode_h264, make_identities, pose_at

FACE_FRAMES = range(95, 191, 8)  # 12 frames of the real clip with a frontal face


@pytest.fixture(scope="module")
def face_tree(tmp_path_factory) -> Path:
    """An FF++ tree at 320x180 from the real clip: originals 000 (clip) and 001 (mirrored), fakes that
    re-render them frame for frame (tinted), and one Face2Face fake one frame shorter than its original."""
    import decord

    vr = decord.VideoReader(str(REAL_CLIP))
    clip = [np.asarray(Image.fromarray(f).resize((320, 180)))
            for f in vr.get_batch(list(FACE_FRAMES)).asnumpy()]
    mirrored = [np.ascontiguousarray(f[:, ::-1]) for f in clip]
    tint = np.array([1.0, 0.9, 0.8])

    def fake(fs):
        return [(f * tint).astype(np.uint8) for f in fs]

    root = tmp_path_factory.mktemp("faces") / "ffpp"
    videos = {"original_sequences/youtube/c23/videos/000.mp4": clip,
              "original_sequences/youtube/c23/videos/001.mp4": mirrored,
              "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": fake(clip),
              "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4": fake(mirrored),
              "manipulated_sequences/Face2Face/c23/videos/000_001.mp4": fake(clip)[:-1],
              "manipulated_sequences/Face2Face/c23/videos/001_000.mp4": fake(mirrored)}
    for rel, frames in videos.items():
        encode_h264(frames, root / rel, 25, 18, 4)
    return root


def _params(root: Path, **over):
    raw = tiny_params()["extract_frames"]
    raw.update({"ffpp_root": str(root), "frames_per_video": 4, "image_size": 32, "test_sets": {}, **over})
    return validate_group("extract_frames", raw)


def _run(root: Path, out: Path, workers: int = 1, **over):
    p = _params(root, **over)
    videos, _ = discover(root, "c23", p.methods, p.real_sources)
    return extract_all(videos, p, out, workers)


def _files(out: Path) -> dict[str, str]:
    return {f.relative_to(out).as_posix(): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*")) if f.is_file()}


FACE_ON = {"face_crop": {"enabled": True}, "methods": ["Deepfakes", "Face2Face"]}


def test_fakes_reuse_the_original_boxes_at_the_same_indices(face_tree, tmp_path):
    ex = _run(face_tree, tmp_path / "reuse", workers=2, **FACE_ON)
    rows = {r["key"]: r for r in ex.results}
    assert all("error" not in r for r in rows.values()), rows
    for orig, fake in (("original/000", "Deepfakes/000_001"), ("original/001", "Deepfakes/001_000"),
                       ("original/001", "Face2Face/001_000")):
        o, f = rows[orig], rows[fake]
        assert o["face_share"] >= 0.75 and o["boxes_from"] == ""
        assert f["boxes_from"] == orig
        assert (f["frame_indices"], f["boxes"], f["face_share"]) == (o["frame_indices"], o["boxes"], o["face_share"])
        # the stored fake crops are the fake's own frames cut at the original's boxes
        _, frames = read_frames(rows[fake]["path"], 4)
        expect = np.stack([faces.crop_resize(fr, tuple(b), 32) for fr, b in zip(frames, o["boxes"], strict=True)])
        assert np.array_equal(np.load(tmp_path / "reuse" / f["frames_file"]), expect)
    # the mirrored original really has other boxes (so equality above is not trivial)
    assert rows["original/000"]["boxes"] != rows["original/001"]["boxes"]
    short = rows["Face2Face/000_001"]  # one frame fewer than its original: detected on the fake
    assert short["boxes_from"] == "" and short["n_total_frames"] == 11
    assert ex.counts["fakes_reusing_boxes"] == 3 and ex.counts["fakes_detected_again"] == 1

    plain = _run(face_tree, tmp_path / "plain", **{**FACE_ON, "face_crop": {"enabled": True,
                                                                           "reuse_original_boxes": False}})
    assert plain.counts["fakes_reusing_boxes"] == 0 and plain.counts["fakes_detected_again"] == 0
    assert all(r["boxes_from"] == "" for r in plain.results)


def test_video_without_face_becomes_a_failure_row_or_is_flagged(tiny_sample, tmp_path):
    # without upsampling dlib finds no face in the 64x64 frames (faces of ~35 px, HOG's window is 80 px)
    p = dict(methods=["Deepfakes"], face_crop={"enabled": True, "upsample": 0, "max_fallback_share": 0.5})
    ex = _run(tiny_sample, tmp_path / "o", **p)
    assert all(r["face_share"] == 0.0 for r in ex.results)
    failed = apply_face_policy(ex.results, _params(tiny_sample, **p).face_crop)
    assert all("face_crop.max_fallback_share=0.5" in r["error"] and "detected in 0%" in r["error"] for r in failed)
    with pytest.raises(Exception, match="no usable video"):
        split_results(failed, 0.1, str(tiny_sample))
    flag = dict(methods=["Deepfakes"], face_crop={**p["face_crop"], "low_face": "flag"})
    flagged = apply_face_policy(ex.results, _params(tiny_sample, **flag).face_crop)
    assert all(r["low_face"] == 1 and "error" not in r for r in flagged)
    # a policy change does not redo any video
    assert _run(tiny_sample, tmp_path / "o", **flag).counts["extracted"] == 0


def test_interrupted_extraction_resumes_without_redoing_finished_videos(tiny_sample, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = extraction.extract_video
    calls = []

    def interrupted(job):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(job.video.key)
        return real(job)

    monkeypatch.setattr(extraction, "extract_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_sample, out)
    assert len(list((out / "records").rglob("*.json"))) == 5
    calls.clear()
    monkeypatch.setattr(extraction, "extract_video", lambda job: calls.append(job.video.key) or real(job))
    ex = _run(tiny_sample, out)
    assert ex.counts == {**ex.counts, "extracted": 35, "resumed": 5} and len(calls) == 35
    fresh = _run(tiny_sample, tmp_path / "fresh")
    assert ex.results == fresh.results
    extraction.prune(out, ex.files)
    extraction.prune(tmp_path / "fresh", fresh.files)
    assert _files(out) == _files(tmp_path / "fresh")  # resumed output = output of one uninterrupted run


def test_adding_a_method_extracts_only_it_and_a_global_change_redoes_all(tiny_sample, tmp_path):
    out = tmp_path / "out"
    first = _run(tiny_sample, out, methods=["Deepfakes"])
    assert first.counts["extracted"] == 16
    more = _run(tiny_sample, out, methods=["Deepfakes", "FaceSwap"])
    assert (more.counts["extracted"], more.counts["resumed"]) == (8, 16)
    assert _run(tiny_sample, out, methods=["Deepfakes", "FaceSwap"], image_size=16).counts["extracted"] == 24
    # removing the method again: its files are pruned and the folder equals a fresh run's
    back = _run(tiny_sample, out, methods=["Deepfakes"], image_size=16)
    assert back.counts["extracted"] == 0 and extraction.prune(out, back.files) == 16
    _run(tiny_sample, tmp_path / "ref", methods=["Deepfakes"], image_size=16)
    assert _files(out) == _files(tmp_path / "ref")


def test_dvc_status_and_lock_stay_true_with_persistent_frames(tmp_path):
    repo = copy_project(tmp_path / "repo")
    params = tiny_params()
    params["extract_frames"]["methods"] = ["Deepfakes", "Face2Face"]
    write_params(repo, params)
    init_git(repo)
    dvc("repro", "extract_frames", cwd=repo)
    params["extract_frames"]["methods"] = ["Deepfakes", "Face2Face", "FaceSwap"]
    write_params(repo, params)
    assert "extract_frames" in json.loads(dvc("status", "--json", "extract_frames", cwd=repo).stdout)
    dvc("repro", "extract_frames", cwd=repo)
    log = json.loads((repo / "data/frames.run_log.json").read_text())["counts"]
    assert (log["extracted"], log["resumed"]) == (8, 24)
    assert json.loads(dvc("status", "--json", "extract_frames", cwd=repo).stdout) == {}
    incremental = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["extract_frames"]["outs"]
    (repo / "data/frames/videos/original/000.npy").write_bytes(b"tampered")
    assert "extract_frames" in json.loads(dvc("status", "--json", "extract_frames", cwd=repo).stdout)
    dvc("repro", "-f", "extract_frames", cwd=repo)  # the record is valid but the array is not: redone
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["extract_frames"]["outs"] == incremental
    shutil.rmtree(repo / "data/frames")
    dvc("repro", "extract_frames", cwd=repo)  # from scratch
    assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["extract_frames"]["outs"] == incremental


SAMPLE_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]


def test_generated_faces_are_detected_and_fakes_take_their_originals_boxes(tiny_sample, tmp_path):
    # the default face_crop (dlib HOG, upsample auto: 2 steps at 64x64) on the tiny generated sample
    assert _params(tiny_sample).face_crop.enabled
    ex = _run(tiny_sample, tmp_path / "o", methods=SAMPLE_METHODS)
    rows = {r["key"]: r for r in ex.results}
    assert all("error" not in r for r in rows.values()), rows
    originals = [r for r in rows.values() if r["method"] == "original"]
    found = sum(r["n_frames"] - r["n_fallback"] for r in originals)
    assert found >= 0.9 * sum(r["n_frames"] for r in originals)
    assert min(face_share_by_method(ex.results).values()) >= 0.9
    ms = validate_group("make_sample", tiny_params()["make_sample"])
    idents = make_identities(np.random.default_rng(ms.seed), ms.n_identities, ms.size)
    for r in originals:  # every detected box holds the centre of the rendered face
        ident = idents[r["key"].split("/")[1]]
        for k, (x0, y0, x1, y1) in zip(r["frame_indices"], r["boxes"], strict=True):
            pose = pose_at(ident, k)
            assert k in r["fallback_frames"] or (x0 < pose.cx * ms.size < x1 and y0 < pose.cy * ms.size < y1)
    fakes = [r for r in rows.values() if r["method"] != "original"]
    assert len(fakes) == 32 and ex.counts["fakes_reusing_boxes"] == 32
    for f in fakes:  # a fake is cut at its target original's boxes, frame for frame
        o = rows[f"original/{f['key'].split('/')[1].split('_')[0]}"]
        assert f["boxes_from"] == o["key"] and f["n_total_frames"] == o["n_total_frames"]
        assert (f["frame_indices"], f["boxes"]) == (o["frame_indices"], o["boxes"])
