"""Readers by dataset kind (``@register("celebdf")``), and :func:`discover`, which runs one by name."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustdf.data.readers.common import Found
from robustdf.runtime import DataError

Reader = Callable[..., Found]  # reader(root, **options) -> (records, unrecognised paths)
READERS: dict[str, Reader] = {}


def register(kind: str) -> Callable[[Reader], Reader]:
    """Decorator: make ``reader`` the one :func:`discover` runs for ``kind``."""
    def add(reader: Reader) -> Reader:
        if kind in READERS:
            raise ValueError(f"dataset kind {kind!r} is registered twice")
        READERS[kind] = reader
        return reader
    return add


def discover(kind: str, root: str | Path, **options: Any) -> Found:
    """Run the ``kind`` reader on ``root``: (records, unrecognised paths), record keys unique."""
    if kind not in READERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(sorted(READERS))}")
    reader = READERS[kind]
    try:
        inspect.signature(reader).bind(root, **options)
    except TypeError as err:
        raise TypeError(f"dataset kind {kind!r}: {err}; its reader is {reader.__name__}"
                        f"{inspect.signature(reader)}") from None
    videos, unknown = reader(root, **options)
    if not videos:
        raise DataError(f"{kind} dataset at {root} holds no recognised videos or images "
                        f"({len(unknown)} unrecognised paths)")
    repeated = sorted(k for k, n in Counter(v.key for v in videos).items() if n > 1)
    if repeated:
        raise DataError(f"{kind} dataset at {root}: record keys are not unique: {repeated[:5]}")
    return videos, unknown
