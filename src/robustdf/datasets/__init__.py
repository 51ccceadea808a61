"""Dataset readers by kind: each turns a dataset's own layout into :class:`Video` records.

``discover(kind, root, **options)`` returns (records, unrecognised paths); a reader registers
itself with ``@register(kind)``, so importing this package makes every kind below available.
"""

from robustdf.datasets import celebdf, dfdc, dffd, generic  # noqa: F401 (each registers its reader)
from robustdf.datasets.registry import READERS, Reader, discover, register
from robustdf.datasets.video import Video
from robustdf import ffpp  # noqa: E402, F401, I001 (last: it imports this package's modules, and registers ffpp)

__all__ = ["READERS", "Reader", "Video", "discover", "register"]
