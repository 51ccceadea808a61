"""The record every dataset reader returns: one video (or image) with its label and identities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["video", "image"]
# the manifest columns: ``original`` and ``kind`` are discovery's (a fake's reuse is recorded as ``boxes_from``)
ROW_FIELDS = ("key", "method", "label", "target", "source", "compression", "path", "size_bytes")


@dataclass(frozen=True)
class Video:
    key: str  # unique in the corpus: "<method>/<stem>" (FF++) or "<dataset>:<relative path, no suffix>"
    method: str  # a real source or a manipulation method
    label: int  # 1 = fake (the positive class), 0 = real
    target: str  # namespaced identity of the target (the real person in the video)
    source: str  # namespaced identity of the source face ("" for reals and where unknown)
    compression: str  # FF++'s "raw"/"c23"/"c40"; "" for sets without such variants
    path: str
    size_bytes: int
    original: str = ""  # key of the original a fake re-renders frame by frame (its boxes fit); "" if none known
    kind: Kind = "video"  # "image": a single picture, not a video

    def row(self) -> dict[str, object]:
        """The record's manifest columns."""
        return {f: getattr(self, f) for f in ROW_FIELDS}
