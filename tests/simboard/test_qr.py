"""The display's QR check: decodes what the hub rendered, catches what it should not show."""

from __future__ import annotations

import pytest
import qrcode
import qrcode.constants
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_hub.simboard import inspect_qr
from edge_hub.simboard.qr import QrDecodeError, decode, unpack_bitmap
from protocol import PaymentQr, pack_bitmap

URI = "upi://pay?pa=vend@testbank&pn=Vend&am=45.00&cu=INR&tr=order_0001"
LEVELS = [qrcode.constants.ERROR_CORRECT_L, qrcode.constants.ERROR_CORRECT_M,
          qrcode.constants.ERROR_CORRECT_Q, qrcode.constants.ERROR_CORRECT_H]


def matrix(text: str, level: int = qrcode.constants.ERROR_CORRECT_M, mask: int | None = None,
           border: int = 0) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=level, border=border, mask_pattern=mask)
    code.add_data(text)
    code.make(fit=True)
    return [[bool(m) for m in row] for row in code.get_matrix()]


def frame(grid: list[list[bool]], uri: str = URI) -> PaymentQr:
    return PaymentQr(request_id=1, order_ref="order_0001", amount_paise=4500, currency="INR",
                     expires_in_s=30, upi_uri=uri, qr_size=len(grid), qr_bitmap=pack_bitmap(grid))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mask", range(8))
def test_decodes_every_level_and_mask(level: int, mask: int) -> None:
    assert decode(matrix(URI, level, mask)) == URI


@pytest.mark.parametrize("text", ["0123456789012", "HELLO WORLD $%*+-./:", "x" * 400,
                                  "caf\u00e9 \u20b9 45"])
def test_decodes_numeric_alphanumeric_byte_and_large_versions(text: str) -> None:
    assert decode(matrix(text)) == text
    assert decode(matrix(text, border=4)) == text  # a quiet zone is tolerated


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_decodes_any_text(text: str) -> None:
    assert decode(matrix(text)) == text


def test_inspect_accepts_the_real_thing() -> None:
    seen = inspect_qr(frame(matrix(URI)))
    assert seen.valid and seen.bitmap_ok and seen.decoded == URI


def test_inspect_flags_a_qr_for_another_uri() -> None:
    seen = inspect_qr(frame(matrix(URI.replace("45.00", "4.50"))))
    assert not seen.valid and seen.decoded is not None and "4.50" in seen.problem


def test_inspect_flags_a_damaged_symbol() -> None:
    grid = matrix(URI)
    grid[20][20] = not grid[20][20]
    grid[21][22] = not grid[21][22]
    seen = inspect_qr(frame(grid))
    assert seen.bitmap_ok and seen.decoded is None and "Reed-Solomon" in seen.problem


def test_bitmap_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(QrDecodeError, match="need"):
        unpack_bitmap(29, bytes(100))
    with pytest.raises(QrDecodeError, match="not a QR version"):
        decode([[False] * 30 for _ in range(30)])
