"""Helpers every reader shares: required paths, folder scans, listed files, CSV rows, labels, keys."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from robustdf.data.readers.video import Kind, Video
from robustdf.runtime import DataError

Found = tuple[list[Video], list[str]]  # (records, unrecognised paths)
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg"})
BINARY = {"0": 0, "1": 1}  # label 1 = fake


def require(path: Path, what: str, folder: bool = True) -> Path:
    """``path`` if it is an existing folder (a file with ``folder=False``); else DataError naming it."""
    if not (path.is_dir() if folder else path.is_file()):
        raise DataError(f"{what} {path} does not exist")
    return path


def entries(folder: Path, recursive: bool = False) -> list[Path]:
    """The sorted entries of ``folder`` (files and subfolders), or with ``recursive`` every file below it."""
    if recursive:
        return sorted(p for p in folder.rglob("*") if p.is_file())
    return sorted(folder.iterdir())


def scan(folder: Path, parse: Callable[[Path], Video | None]) -> Found:
    """The files of ``folder`` that ``parse`` recognises as records; every other entry is unrecognised."""
    videos, unknown = [], []
    for path in entries(folder):
        video = parse(path) if path.is_file() else None
        if video is None:
            unknown.append(str(path))
        else:
            videos.append(video)
    return videos, unknown


def unlisted(folder: Path, listed: set[Path], recursive: bool = False) -> list[str]:
    """The entries of ``folder`` that a listing does not name (unrecognised: never read)."""
    return [str(p) for p in entries(folder, recursive) if p not in listed]


def listed_file(folder: Path, rel: str, where: str) -> Path:
    """The file a listing names, relative to ``folder``; DataError at ``where`` if it is missing or outside."""
    path = Path(os.path.normpath(folder / rel))
    if not path.is_relative_to(folder):
        raise DataError(f"{where}: listed path {rel!r} is outside {folder}")
    if not path.is_file():
        raise DataError(f"{where}: listed file {path} does not exist")
    return path


def csv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """The rows of a CSV whose header holds ``columns``, each with ``<file>:<line>`` for messages."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}:1: header lacks column(s) {missing}: expected {list(columns)}, "
                            f"got {reader.fieldnames}")
        return [(f"{path}:{reader.line_num}", row) for row in reader]


def cell(row: dict[str, str | None], column: str, where: str) -> str:
    """The stripped value of ``column``; DataError at ``where`` naming the column if it is empty."""
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{where}: column {column!r} is empty")
    return value


def label_of(value: str, where: str, field: str, labels: dict[str, int]) -> int:
    """Our label (1 = fake) for a dataset's label ``value``; DataError at ``where`` naming ``field`` if unknown."""
    if value not in labels:
        raise DataError(f"{where}: column {field!r}: label {value!r} is not one of {sorted(labels)}")
    return labels[value]


def kind_of(path: Path) -> Kind | None:
    """"video" or "image" by the file's suffix; None for anything else."""
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_EXTS else "image" if suffix in IMAGE_EXTS else None


def key_of(namespace: str, root: Path, path: Path) -> str:
    """``<namespace>:<path under root without suffix>``, e.g. ``celebdf:Celeb-synthesis/id0_id1_0000``."""
    return f"{namespace}:{path.relative_to(root).with_suffix('').as_posix()}"


def record(path: Path, key: str, method: str, label: int, target: str, source: str = "", original: str = "",
           kind: Kind = "video") -> Video:
    """A record of a set without FF++'s compression variants."""
    return Video(key, method, label, target, source, "", str(path), path.stat().st_size, original, kind)
