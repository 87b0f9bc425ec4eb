"""Rendering the UPI URI as the module bitmap a board draws (PAYMENT_QR's qr_size/qr_bitmap)."""

from __future__ import annotations

import qrcode  # type: ignore[import-untyped]
import qrcode.constants  # type: ignore[import-untyped]

from protocol.qrbits import pack_bitmap


def render_qr(uri: str) -> tuple[int, bytes]:
    """(modules per side, packed bitmap) for ``uri``, without a quiet zone (the board adds it)."""
    qr = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(uri)
    qr.make(fit=True)
    matrix: list[list[bool]] = [[bool(m) for m in row] for row in qr.get_matrix()]
    return len(matrix), pack_bitmap(matrix)
