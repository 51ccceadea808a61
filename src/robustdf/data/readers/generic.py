"""Any dataset described by a CSV: ``path,label,identity,method`` (label 1 = fake, 0 = real).

Paths are relative to the CSV's folder and may name videos or images; identities and keys are
namespaced by ``name``. Files under the CSV's folder that no row names are unrecognised.
"""

from __future__ import annotations

from pathlib import Path

from robustdf.data.readers.common import (BINARY, Found, cell, csv_rows, key_of, kind_of, label_of, listed_file, record,
                                          require, unlisted)
from robustdf.data.readers.registry import register
from robustdf.data.readers.video import Video
from robustdf.runtime import DataError

COLUMNS = ("path", "label", "identity", "method")


def _row(folder: Path, name: str, where: str, row: dict[str, str]) -> Video:
    path = listed_file(folder, cell(row, "path", where), f"{where}: column 'path'")
    kind = kind_of(path)
    if kind is None:
        raise DataError(f"{where}: column 'path': {path} is neither a video nor an image (by its suffix)")
    return record(path, key_of(name, folder, path), cell(row, "method", where),
                  label_of(cell(row, "label", where), where, "label", BINARY), f"{name}:{cell(row, 'identity', where)}",
                  kind=kind)


@register("csv")
def discover(root: str | Path, name: str = "csv") -> Found:
    """The files a dataset CSV (``root``) lists: (records, unrecognised paths under its folder)."""
    table = require(Path(root), "dataset CSV", folder=False)
    videos = [_row(table.parent, name, where, row) for where, row in csv_rows(table, COLUMNS)]
    return videos, unlisted(table.parent, {Path(v.path) for v in videos} | {table}, recursive=True)
