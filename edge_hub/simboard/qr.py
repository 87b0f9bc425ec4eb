"""Read the PAYMENT_QR bitmap the way a board's display driver would, and check it decodes.

PAYMENT_QR carries ``qr_size`` (modules per side) and ``qr_bitmap``: ceil(size²/8) bytes,
row-major, MSB first, 1 = dark (docs/protocol.md, PAYMENT_QR). A board only has to blit it; the
simulator also *decodes* it, so a test or the bench knows the hub sent a symbol a phone can scan
and that it says the same as ``upi_uri``.

The decoder is for clean, computer-made symbols (no image processing, no error correction):
format information (BCH-checked), unmasking, the codeword zig-zag, block de-interleaving, a
Reed-Solomon check of every block (recomputing its EC codewords), then the numeric,
alphanumeric and byte segments. It borrows the standard's tables (block structure, alignment
positions, format BCH) from the ``qrcode`` package the hub renders with.
"""

from __future__ import annotations

from functools import lru_cache

from qrcode import LUT, base, util  # type: ignore[import-untyped]
from qrcode.main import QRCode  # type: ignore[import-untyped]

from edge_hub.simboard.model import QrSeen
from protocol import PaymentQr

MIN_VERSION, MAX_VERSION = 1, 40
ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

Grid = list[list[bool]]


class QrDecodeError(ValueError):
    """The bitmap is not a well-formed, intact QR symbol."""


def unpack_bitmap(size: int, bitmap: bytes) -> Grid:
    """Unpack a PAYMENT_QR bitmap into rows of modules (True = dark)."""
    if size <= 0:
        raise QrDecodeError(f"qr_size must be positive, got {size}")
    expected = (size * size + 7) // 8
    if len(bitmap) != expected:
        raise QrDecodeError(
            f"qr_bitmap has {len(bitmap)} bytes, {size}x{size} modules need {expected}"
        )
    bits = int.from_bytes(bitmap, "big")
    total = expected * 8
    return [
        [bool((bits >> (total - 1 - (r * size + c))) & 1) for c in range(size)]
        for r in range(size)
    ]


def decode(grid: Grid) -> str:
    """Decode a square module grid (optionally with a light quiet zone) to its text."""
    grid = _strip_quiet_zone(grid)
    size = len(grid)
    version, rem = divmod(size - 17, 4)
    if rem or not MIN_VERSION <= version <= MAX_VERSION:
        raise QrDecodeError(f"{size} modules per side is not a QR version (17 + 4v)")
    if any(len(row) != size for row in grid):
        raise QrDecodeError("QR grid is not square")
    _check_finders(grid)
    ec_level, mask = _read_format(grid)
    codewords = _read_codewords(grid, version, mask)
    data = _deinterleave_and_check(codewords, version, ec_level)
    return _parse_segments(data, version)


# --- layout -------------------------------------------------------------------------------------
def _strip_quiet_zone(grid: Grid) -> Grid:
    n = len(grid)
    border = 0
    while border < n // 2 and not any(grid[border]) and not any(r[border] for r in grid):
        border += 1
    if border == 0:
        return grid
    return [row[border : n - border] for row in grid[border : n - border]]


def _check_finders(grid: Grid) -> None:
    n = len(grid)
    for r0, c0 in ((0, 0), (n - 7, 0), (0, n - 7)):
        for r in range(7):
            for c in range(7):
                ring = r in (0, 6) or c in (0, 6)
                core = 2 <= r <= 4 and 2 <= c <= 4
                if grid[r0 + r][c0 + c] != (ring or core):
                    raise QrDecodeError(f"no finder pattern at ({r0}, {c0})")


@lru_cache(maxsize=8)
def _function_modules(version: int) -> tuple[tuple[bool, ...], ...]:
    """True where a module belongs to a function pattern (finders, timing, alignment, info)."""
    code = QRCode(version=version, border=0)
    code.modules_count = n = version * 4 + 17
    code.modules = [[None] * n for _ in range(n)]
    code.setup_position_probe_pattern(0, 0)
    code.setup_position_probe_pattern(n - 7, 0)
    code.setup_position_probe_pattern(0, n - 7)
    code.setup_position_adjust_pattern()
    code.setup_timing_pattern()
    code.setup_type_info(True, 0)
    if version >= 7:
        code.setup_type_number(True)
    return tuple(tuple(cell is not None for cell in row) for row in code.modules)


def _read_format(grid: Grid) -> tuple[int, int]:
    """(error-correction bits, mask pattern) from the format information, either copy."""
    n = len(grid)
    vertical = horizontal = 0
    for i in range(15):  # positions mirror qrcode.main.QRCode.setup_type_info
        if i < 6:
            v = grid[i][8]
        elif i < 8:
            v = grid[i + 1][8]
        else:
            v = grid[n - 15 + i][8]
        if i < 8:
            h = grid[8][n - i - 1]
        elif i < 9:
            h = grid[8][15 - i]
        else:
            h = grid[8][15 - i - 1]
        vertical |= int(v) << i
        horizontal |= int(h) << i
    best: tuple[int, int] | None = None
    best_distance = 4  # BCH(15,5) corrects up to 3 bit errors
    for data in range(32):
        word = util.BCH_type_info(data)
        distance = min(bin(word ^ vertical).count("1"), bin(word ^ horizontal).count("1"))
        if distance < best_distance:
            best, best_distance = (data >> 3, data & 7), distance
    if best is None:
        raise QrDecodeError("format information does not decode")
    return best


def _read_codewords(grid: Grid, version: int, mask: int) -> bytes:
    """Read data modules in the standard zig-zag order (mirrors QRCode.map_data), unmasked."""
    n = len(grid)
    function = _function_modules(version)
    masked = util.mask_func(mask)
    bits: list[int] = []
    col = n - 1
    while col > 0:
        if col == 6:  # the vertical timing column is skipped
            col -= 1
        upward = ((n - 1 - col) // 2) % 2 == 0
        rows = range(n - 1, -1, -1) if upward else range(n)
        for row in rows:
            for c in (col, col - 1):
                if not function[row][c]:
                    bits.append(int(grid[row][c]) ^ int(bool(masked(row, c))))
        col -= 2
    out = bytearray()
    for i in range(0, len(bits) - 7, 8):
        byte = 0
        for b in bits[i : i + 8]:
            byte = (byte << 1) | b
        out.append(byte)
    return bytes(out)


def _deinterleave_and_check(codewords: bytes, version: int, ec_level: int) -> bytes:
    blocks = base.rs_blocks(version, ec_level)
    total = sum(b.total_count for b in blocks)
    if len(codewords) < total:
        raise QrDecodeError("symbol holds fewer codewords than its version needs")
    data_parts: list[list[int]] = [[] for _ in blocks]
    ec_parts: list[list[int]] = [[] for _ in blocks]
    pos = 0
    for i in range(max(b.data_count for b in blocks)):
        for k, b in enumerate(blocks):
            if i < b.data_count:
                data_parts[k].append(codewords[pos])
                pos += 1
    for i in range(max(b.total_count - b.data_count for b in blocks)):
        for k, b in enumerate(blocks):
            if i < b.total_count - b.data_count:
                ec_parts[k].append(codewords[pos])
                pos += 1
    for k, b in enumerate(blocks):
        if _rs_remainder(data_parts[k], b.total_count - b.data_count) != ec_parts[k]:
            raise QrDecodeError(f"Reed-Solomon check failed in block {k}")
    return bytes(x for part in data_parts for x in part)


def _rs_remainder(data: list[int], ec_count: int) -> list[int]:
    generator = base.Polynomial(LUT.rsPoly_LUT[ec_count], 0)
    remainder = base.Polynomial(data, len(generator) - 1) % generator
    offset = len(remainder) - ec_count
    return [remainder[i + offset] if i + offset >= 0 else 0 for i in range(ec_count)]


# --- segments -----------------------------------------------------------------------------------
class _Bits:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def take(self, n: int) -> int:
        if n > self._left:
            raise QrDecodeError("segment runs past the end of the data")
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)

    @property
    def left(self) -> int:
        return self._left


def _parse_segments(data: bytes, version: int) -> str:
    bits = _Bits(data)
    out = bytearray()
    while bits.left >= 4:
        mode = bits.take(4)
        if mode == 0:  # terminator
            break
        if mode == 0b0111:  # ECI designator: only UTF-8 (26) / ASCII-compatible are accepted
            eci = bits.take(8)
            if eci not in (3, 26, 27):
                raise QrDecodeError(f"unsupported ECI {eci}")
            continue
        if mode not in (util.MODE_NUMBER, util.MODE_ALPHA_NUM, util.MODE_8BIT_BYTE):
            raise QrDecodeError(f"unsupported segment mode {mode:#06b}")
        count = bits.take(util.length_in_bits(mode, version))
        if mode == util.MODE_8BIT_BYTE:
            out.extend(bits.take(8) for _ in range(count))
        elif mode == util.MODE_ALPHA_NUM:
            for _ in range(count // 2):
                pair = bits.take(11)
                if pair >= 45 * 45:
                    raise QrDecodeError("bad alphanumeric pair")
                out.extend((ALPHANUMERIC[pair // 45] + ALPHANUMERIC[pair % 45]).encode())
            if count % 2:
                out.extend(ALPHANUMERIC[_bounded(bits.take(6), 45)].encode())
        else:
            for _ in range(count // 3):
                out.extend(f"{_bounded(bits.take(10), 1000):03d}".encode())
            rest = count % 3
            if rest == 2:
                out.extend(f"{_bounded(bits.take(7), 100):02d}".encode())
            elif rest == 1:
                out.extend(f"{_bounded(bits.take(4), 10):d}".encode())
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QrDecodeError(f"QR text is not UTF-8: {exc}") from exc


def _bounded(value: int, limit: int) -> int:
    if value >= limit:
        raise QrDecodeError("bad numeric group")
    return value


def inspect_qr(msg: PaymentQr) -> QrSeen:
    """What the display makes of PAYMENT_QR: the bitmap's shape, and what it decodes to."""
    seen = QrSeen(order_ref=msg.order_ref, amount_paise=msg.amount_paise, currency=msg.currency,
                  expires_in_s=msg.expires_in_s, upi_uri=msg.upi_uri, size=msg.qr_size,
                  bitmap_ok=False, decoded=None)
    try:
        grid = unpack_bitmap(msg.qr_size, msg.qr_bitmap)
        seen.bitmap_ok = True
        seen.decoded = decode(grid)
    except QrDecodeError as exc:
        seen.problem = str(exc)
        return seen
    if seen.decoded != msg.upi_uri:
        seen.problem = f"QR says {seen.decoded!r} but upi_uri is {msg.upi_uri!r}"
    return seen
