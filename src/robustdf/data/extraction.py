"""Resumable, incremental extraction of every video into one persistent output folder.

The folder (``data/frames``, a DVC ``persist: true`` output) holds per video::

    videos/<method>/<stem>.npy     the crops
    records/<method>/<stem>.json   {"key": ..., "array_md5": ..., "fields": ...}: the result and what it is valid for

A record's key hashes everything its result depends on: the source file's content (MD5), the
extraction parameters, the source of the decoding/detection code and the library versions, and,
for a fake that reuses its original's boxes, the original's key. A run keeps every video whose
record still has the expected key (and whose array still has the recorded MD5) and extracts the
rest, originals first, then the fakes, which take the boxes of their original's frames.
:func:`prune` then deletes every file a run from scratch would not write, so the folder is what a
fresh run gives, byte for byte, and DVC's hash of it stays true.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from robustdf.data import faces, frames, images
from robustdf.data.readers.video import Kind, Video
from robustdf.data.frames import FIELDS, ExtractJob, extract_video
from robustdf.data.images import extract_image
from robustdf.data.manifest import counts, face_share_by_method, write_rows
from robustdf.params import ExtractParams, FaceCropParams
from robustdf.runtime import DataError, StageRun, atomic_file, log

POLICY_ONLY = {"max_fallback_share", "low_face"}  # applied to finished results: never redo a video


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def file_md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def params_key(p: ExtractParams, kind: Kind = "video") -> str:
    """Hash of what every video's (or image's) result depends on besides its own file."""
    import decord
    import dlib
    import numpy
    import PIL

    return _digest({
        "frames_per_video": p.frames_per_video, "image_size": p.image_size,
        "face_crop": p.face_crop.model_dump(exclude=POLICY_ONLY),
        "code": [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()
                 for m in (frames, faces, *((images,) if kind == "image" else ()))],
        "versions": [decord.__version__, dlib.__version__, numpy.__version__, PIL.__version__],
    })


def rel_array(v: Video) -> str:
    return f"videos/{v.key}.npy"


def rel_record(v: Video) -> str:
    return f"records/{v.key}.json"


@dataclass(frozen=True)
class Task:
    job: ExtractJob
    key: str
    record: Path


def _run_task(task: Task) -> dict[str, Any]:
    """Extract one video and write its record (after its array), so a finished video survives an interruption."""
    fields = (extract_image if task.job.video.kind == "image" else extract_video)(task.job)
    array = task.job.out_root / task.job.rel_file
    rec = {"key": task.key, "array_md5": None if "error" in fields else file_md5(str(array)), "fields": fields}
    task.record.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(task.record) as tmp:
        tmp.write_text(json.dumps(rec, sort_keys=True) + "\n")
    return fields


def _load_record(item: tuple[Path, Path, str]) -> dict[str, Any] | None:
    """The fields of a finished video: its record has the expected key and its array the recorded MD5."""
    record, array, key = item
    try:
        rec = json.loads(record.read_text())
        if rec["key"] != key or (rec["array_md5"] is not None and file_md5(str(array)) != rec["array_md5"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec["fields"]


@contextlib.contextmanager
def _mapper(workers: int) -> Iterator[Callable[..., list]]:
    """An ordered ``map(fn, items)`` over ``workers`` processes (one pool for the whole run)."""
    if workers == 1:
        yield lambda fn, items, desc: [fn(i) for i in tqdm(items, desc=desc, unit="video")]
        return
    with get_context("spawn").Pool(workers) as pool:
        yield lambda fn, items, desc: list(tqdm(pool.imap(fn, items, chunksize=1), total=len(items), desc=desc,
                                                unit="video"))


@dataclass
class Extraction:
    results: list[dict[str, Any]]  # per video, in input order: manifest fields, or key/path/error
    files: set[str]  # paths under the output folder that belong to this extraction
    counts: dict[str, int]


def extract_all(videos: list[Video], p: ExtractParams, out: Path, workers: int) -> Extraction:
    """Extract what is missing or out of date under ``out``; keep what is finished."""
    reuse = p.face_crop.enabled and p.face_crop.reuse_original_boxes
    present = {v.key for v in videos}
    origin = {v.key: o for v in videos if reuse and (o := v.original) in present}
    with _mapper(workers) as run_map:
        md5 = dict(zip([v.key for v in videos],
                       run_map(file_md5, [v.path for v in videos], "hash sources"), strict=True))
        base = {kind: params_key(p, kind) for kind in sorted({v.kind for v in videos})}
        own = {v.key: _digest([base[v.kind], md5[v.key]]) for v in videos}
        key = {k: _digest([own[k], origin[k], own[origin[k]]]) if k in origin else own[k] for k in own}
        found = run_map(_load_record, [(out / rel_record(v), out / rel_array(v), key[v.key]) for v in videos],
                        "check finished")
        fields = {v.key: f for v, f in zip(videos, found, strict=True) if f is not None}
        resumed = len(fields)
        for fakes in (False, True):  # originals first: fakes reuse their boxes
            todo = [v for v in videos if v.key not in fields and (v.key in origin) == fakes]
            tasks = [Task(ExtractJob(v, out, rel_array(v), p.frames_per_video, p.image_size, p.face_crop,
                                     _reuse_of(fields, origin.get(v.key))), key[v.key], out / rel_record(v))
                     for v in todo]
            fields.update(zip((v.key for v in todo), run_map(_run_task, tasks, "extract_frames"), strict=True))
    results = [{"key": v.key, "path": v.path, "error": fields[v.key]["error"]} if "error" in fields[v.key]
               else {**v.row(), **{k: fields[v.key][k] for k in FIELDS}} for v in videos]
    files = {rel_record(v) for v in videos} | {rel_array(v) for v in videos if "error" not in fields[v.key]}
    fakes_in = [fields[k] for k in origin if "error" not in fields[k]]
    return Extraction(results, files, {
        "extracted": len(videos) - resumed, "resumed": resumed,
        "fakes_reusing_boxes": sum(bool(f["boxes_from"]) for f in fakes_in),
        "fakes_detected_again": sum(not f["boxes_from"] for f in fakes_in),
    })


def _reuse_of(fields: dict[str, dict[str, Any]], orig: str | None) -> dict[str, Any] | None:
    """What a fake's job needs of its original ``orig``: its fields, unless there is none or it failed."""
    if orig is None or "error" in fields[orig]:
        return None
    return {**fields[orig], "key": orig}


def prune(out: Path, keep: set[str]) -> int:
    """Delete every file under ``out`` not in ``keep`` (relative paths), then empty folders; returns how many."""
    removed = 0
    for path in sorted(out.rglob("*"), reverse=True):
        rel = path.relative_to(out).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif rel not in keep:
            path.unlink()
            removed += 1
    return removed


def apply_face_policy(results: list[dict[str, Any]], face: FaceCropParams) -> list[dict[str, Any]]:
    """Mark videos whose share of frames without a detected face exceeds ``face.max_fallback_share``:
    a failure row naming the share (``low_face: fail``) or ``low_face=1`` (``flag``)."""
    out = []
    for r in results:
        if "error" in r:
            out.append(r)
            continue
        low = r["face_share"] is not None and 1 - r["face_share"] > face.max_fallback_share
        if low and face.low_face == "fail":
            out.append({"key": r["key"], "path": r["path"], "error": (
                f"LowFaceShare: a face was detected in {r['face_share']:.0%} of the sampled frames; "
                f"fallback share {1 - r['face_share']:.2f} > face_crop.max_fallback_share={face.max_fallback_share}")})
        else:
            out.append({**r, "low_face": int(low)})
    return out


def split_results(results: list[dict[str, Any]], max_failure_share: float, root: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """(manifest rows, failure rows); fail only when nothing usable remains or too many failed."""
    rows = [r for r in results if "error" not in r]
    failures = [r for r in results if "error" in r]
    share = len(failures) / max(1, len(results))
    if not rows:
        raise DataError(f"no usable video under {root}: all {len(failures)} failed; first: {failures[:1]}")
    if share > max_failure_share:
        raise DataError(f"{len(failures)} of {len(results)} videos failed ({share:.0%}), more than "
                        f"extract_frames.max_failure_share={max_failure_share}; first: {failures[0]}")
    return rows, failures


LISTS = ["manifest.csv", "failures.csv", "unrecognised_files.txt"]


def extract_into(out: Path, videos: list[Video], unknown: list[str], p: ExtractParams, root: str, run: StageRun,
                 keep: set[str] = frozenset()) -> list[dict[str, Any]]:
    """The whole extraction of one dataset into ``out``: extract what is missing, log failures and face shares,
    write ``failures.csv`` and ``unrecognised_files.txt``, delete whatever a run from scratch would not write
    (besides ``keep`` and ``manifest.csv``); returns the manifest rows, which the caller writes last (its
    presence marks a complete output). ``manifest.csv`` is removed first: an interrupted run must not look
    complete."""
    for path in unknown:
        log.warning("[%s] unrecognised file, skipped: %s", run.name, path)
    out.mkdir(parents=True, exist_ok=True)
    for name in LISTS:
        (out / name).unlink(missing_ok=True)
    with run.timed("decode+crop"):
        ex = extract_all(videos, p, out, p.workers)
    for f in (r for r in ex.results if "error" in r):
        log.warning("[%s] failed %s: %s", run.name, f["path"], f["error"])
    shares = face_share_by_method(ex.results)
    for method, share in shares.items():
        low = 1 - share > p.face_crop.max_fallback_share
        log.log(logging.WARNING if low else logging.INFO, "[%s] %s: a face was detected in %.0f%% of sampled "
                "frames%s", run.name, method, 100 * share, " (LOW: crops are mostly fallbacks)" if low else "")
    rows, failures = split_results(apply_face_policy(ex.results, p.face_crop), p.max_failure_share, root)
    write_rows(out / "failures.csv", failures, ["key", "path", "error"])
    (out / "unrecognised_files.txt").write_text("".join(f"{u}\n" for u in unknown))
    stale = prune(out, ex.files | set(LISTS) | set(keep))
    run.count(videos=len(rows), failed=len(failures), unrecognised=len(unknown), **ex.counts, stale_removed=stale,
              frames=sum(r["n_frames"] for r in rows), fallbacks=sum(r["n_fallback"] for r in rows),
              low_face_flagged=sum(r["low_face"] for r in rows), face_share_by_method=shares,
              by_method=counts(rows, "method"))
    return rows
