"""DFDC: folders of mp4 files, each labelled by its ``metadata.json`` or ``labels.csv``.

::

    <root>/metadata.json  or  <root>/dfdc_train_part_*/metadata.json
        {"x.mp4": {"label": "FAKE", "original": "y.mp4", ...}, "y.mp4": {"label": "REAL", ...}}
    <root>/labels.csv  (the public test set)
        filename,label      label 1 = fake

A fake whose original is in the set names the original's key (its boxes fit: DFDC fakes are
frame-aligned re-renderings). DFDC has no identity ids: a fake and its original share the group
``dfdc:<original stem>``; a video without a known original is its own group.
"""

from __future__ import annotations

import json
from pathlib import Path

from robustdf.data.readers.common import (BINARY, Found, cell, csv_rows, key_of, label_of, listed_file, record, require,
                                          unlisted)
from robustdf.data.readers.registry import register
from robustdf.runtime import DataError

LABEL_FILES = ("metadata.json", "labels.csv")
META_LABELS = {"FAKE": 1, "REAL": 0}
Entry = tuple[Path, int, str]  # (video file, label, original's file name or "")


def _metadata(folder: Path) -> list[Entry]:
    meta = folder / "metadata.json"
    try:
        data = json.loads(meta.read_text())
    except ValueError as err:
        raise DataError(f"{meta}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"{meta}: expected an object of file name -> {{label, original}}")
    out = []
    for name, info in data.items():
        where = f"{meta}: entry {name!r}"
        if not isinstance(info, dict):
            raise DataError(f"{where}: expected an object with a 'label'")
        label = label_of(str(info.get("label")), where, "label", META_LABELS)
        out.append((listed_file(folder, name, where), label, (info.get("original") or "") if label else ""))
    return out


def _labels_csv(folder: Path) -> list[Entry]:
    return [(listed_file(folder, cell(row, "filename", where), f"{where}: column 'filename'"),
             label_of(cell(row, "label", where), where, "label", BINARY), "")
            for where, row in csv_rows(folder / "labels.csv", ("filename", "label"))]


def _label_folders(root: Path) -> list[Path]:
    """``root`` if it holds a label file, else its subfolders that do (the train parts)."""
    def labelled(folder: Path) -> bool:
        return any((folder / f).is_file() for f in LABEL_FILES)

    if labelled(root):
        return [root]
    folders = [f for f in sorted(root.iterdir()) if f.is_dir() and labelled(f)]
    if not folders:
        raise DataError(f"DFDC label file ({' or '.join(LABEL_FILES)}) does not exist in {root} "
                        f"or any folder directly under it")
    return folders


@register("dfdc")
def discover(root: str | Path) -> Found:
    """The labelled DFDC videos under ``root``: (videos, unrecognised paths)."""
    root = require(Path(root), "DFDC root")
    folders = _label_folders(root)
    entries = [e for f in folders
               for e in ((_metadata(f) if (f / "metadata.json").is_file() else [])
                         + (_labels_csv(f) if (f / "labels.csv").is_file() else []))]
    keys: dict[str, str] = {}  # file name -> key
    for path, _, _ in entries:
        key = key_of("dfdc", root, path)
        if keys.setdefault(path.name, key) != key:
            raise DataError(f"DFDC file name {path.name} is in two folders: {keys[path.name]}, {path}")
    videos = [record(path, keys[path.name], "dfdc-fake" if label else "dfdc-real", label,
                     f"dfdc:{Path(original or path.name).stem}", original=keys.get(original, ""))
              for path, label, original in entries]
    listed = {Path(v.path) for v in videos} | {f / n for f in folders for n in LABEL_FILES}
    unknown = [u for f in folders for u in unlisted(f, listed)]
    return videos, unknown + ([] if folders == [root] else unlisted(root, set(folders)))
