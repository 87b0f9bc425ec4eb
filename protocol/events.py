"""What a `Link` reports. Every receive or timeout returns a list of these; nothing raises."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import DecodeReason
from protocol.messages import Message


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message delivered in order, exactly once per peer session."""

    message: Message
    authenticated: bool  # True when its MAC verified under the link key


@dataclass(frozen=True, slots=True)
class PeerRestarted:
    """The peer started a new session epoch (reboot, or it gave up on a frame). Everything this
    side had not yet had acknowledged was reported as SendFailed just before this event."""

    old_epoch: int
    new_epoch: int


@dataclass(frozen=True, slots=True)
class SendFailed:
    """A message was not acknowledged (retry limit, or the peer's session ended). It may or may
    not have reached the peer: treat the outcome as unknown, not as "not delivered"."""

    message: Message


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """A frame was dropped because its MAC was missing, wrong, or its counter replayed."""

    msg_type: int


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A frame with a message type or protocol version this implementation does not know."""

    msg_type: int
    version: int


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A well-framed, authentic, in-sequence frame whose payload does not decode (a peer bug)."""

    msg_type: int
    reason: DecodeReason
    detail: str


LinkEvent = (
    MessageReceived | PeerRestarted | SendFailed | AuthFailed | UnknownMessage | InvalidMessage
)
