"""The protocol layer's one error hierarchy.

`DecodeError` carries a machine-readable `DecodeReason`; `EncodeError` names the field that could
not be encoded; `LinkError` is raised by `Link` when it cannot accept a request (queue full, bad
argument). Nothing in the receive path raises: bad input becomes counters and typed events.
"""

from __future__ import annotations

from enum import StrEnum


class DecodeReason(StrEnum):
    """Why a payload, header or frame could not be decoded."""

    TRUNCATED = "truncated"  # the payload ended inside a field
    BAD_VALUE = "bad_value"  # an enum or bool field holds a value this version does not define
    BAD_UTF8 = "bad_utf8"  # a string field is not valid UTF-8 (or a currency not ASCII)
    BAD_LENGTH = "bad_length"  # a length or size field disagrees with the data that follows
    UNKNOWN_TYPE = "unknown_type"  # no message with this type code exists in this version
    SHORT_FRAME = "short_frame"  # a frame shorter than header + CRC
    BAD_MAC_TRAILER = "bad_mac_trailer"  # MAC flag set but the body is shorter than the trailer


class ProtocolError(Exception):
    """Base of every error raised by the `protocol` package."""


class DecodeError(ProtocolError):
    """Bytes that do not decode to what they claim to be."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ProtocolError, ValueError):
    """A message or header field that cannot be put on the wire (range, length, charset)."""


class LinkError(ProtocolError):
    """The link cannot do what was asked (send queue full, message too big, bad key, ...)."""
