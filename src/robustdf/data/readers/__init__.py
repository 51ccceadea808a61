"""Dataset readers by kind: each turns a dataset's own layout into :class:`Video` records.

``discover(kind, root, **options)`` returns (records, unrecognised paths); a reader registers
itself with ``@register(kind)``, so importing this package makes every kind below available.
"""

from robustdf.data.readers import celebdf, dfdc, dffd, ffpp, generic  # noqa: F401 (each registers its reader)
from robustdf.data.readers.registry import READERS, Reader, discover, register
from robustdf.data.readers.video import Video

__all__ = ["READERS", "Reader", "Video", "discover", "register"]
