"""The payment QR as inline SVG, rendered by `qrcode` from the same UPI payload the board got."""

from __future__ import annotations

from functools import lru_cache

import qrcode  # type: ignore[import-untyped]
from qrcode.image.svg import SvgPathImage  # type: ignore[import-untyped]

QR_BORDER = 2  # quiet zone, in modules


@lru_cache(maxsize=128)
def qr_svg(payload: str) -> str:
    """An `<svg>` holding one `<path>` of the dark modules; no script, no text from the payload."""
    if not payload:
        raise ValueError("QR payload must not be empty")
    image = qrcode.make(payload, image_factory=SvgPathImage, border=QR_BORDER)
    svg: str = image.to_string(encoding="unicode")
    return svg


__all__ = ["qr_svg"]
