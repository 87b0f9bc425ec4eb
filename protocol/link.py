"""`Link`: one end of a board <-> hub serial link, sans-IO.

Composes framing (COBS + CRC), the header, messages, MAC and the transport. Bytes in through
`receive_data`, events out; messages in through `send`, bytes out through `data_to_send`. Timers
belong to the caller: `next_timeout()` says when, `handle_timeout(now)` does what is due.

Receive pipeline for each CRC-valid frame (order matters, see docs/protocol.md):
version -> direction/address filter -> epoch sanity (non-zero, not retired) -> stale-session
check -> MAC (tag, then counter) -> peer epoch update -> ACK field -> sequencing -> replay
state commit -> decode. The replay state (last counter) advances only for a frame whose MAC
verified and which was taken in sequence. Session changes (a new peer epoch, a give-up) go
through the one table in `protocol.session`.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Final

from protocol.enums import MsgType, Role
from protocol.errors import DecodeError, DecodeReason, LinkError
from protocol.events import (
    AuthFailed,
    InvalidMessage,
    LinkEvent,
    MessageReceived,
    PeerRestarted,
    SendFailed,
    UnknownMessage,
)
from protocol.framing import MAX_BODY, FrameDecoder, encode_frame, wire_length
from protocol.header import HEADER_SIZE, HEADER_STRUCT, MAX_ADDR, SUPPORTED_VERSIONS, Flags
from protocol.mac import (
    KEY_SIZE,
    TRAILER_SIZE,
    ReplayGuard,
    TxCounter,
    make_trailer,
    split_trailer,
    verify_tag,
)
from protocol.messages import MONEY_TYPES, UNSIGNED_TYPES, Message, decode_message
from protocol.session import Action, SessionEvent, SessionState, transition
from protocol.transport import Pending, RxSequencer, TransportConfig, TxWindow

log = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1
RETIRED_EPOCHS: Final = 16  # how many replaced peer epochs are remembered (and refused)
_RELIABLE: Final = int(Flags.RELIABLE)
_ACK: Final = int(Flags.ACK)
_MAC: Final = int(Flags.MAC)
_FROM_HUB: Final = int(Flags.FROM_HUB)


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A snapshot of one link's counters (`Link.stats` builds a new one on each access)."""

    frames_rx: int = 0  # CRC-valid frames received
    frames_tx: int = 0  # frames written (data, retransmissions and pure ACKs)
    crc_errors: int = 0
    cobs_errors: int = 0
    too_long: int = 0
    too_short: int = 0
    junk_bytes: int = 0  # bytes discarded by the framer, every reason
    retransmits: int = 0
    duplicates: int = 0  # reliable frames already delivered
    out_of_order: int = 0  # reliable frames ahead of the expected seq
    mac_failures: int = 0  # missing or wrong MAC (or MAC'd frame without a key for money)
    replays: int = 0  # valid MAC, counter not above the last verified
    send_failures: int = 0  # messages reported SendFailed
    stale_frames: int = 0  # frames for an old session of ours, or from a retired peer epoch
    filtered: int = 0  # frames for another address or from the wrong direction
    unknown: int = 0  # unknown message types or protocol versions
    invalid: int = 0  # payloads that did not decode
    peer_restarts: int = 0


def _random_epoch() -> int:
    while True:
        e = secrets.randbits(32)
        if e:
            return e


class Link:
    """One end of the serial link. See docs/architecture.md section 1 for the contract."""

    def __init__(
        self,
        role: Role,
        addr: int = 0,
        baud: int = 115200,
        key: bytes | None = None,
        epoch: int | None = None,
        *,
        config: TransportConfig | None = None,
    ) -> None:
        if not isinstance(role, Role):
            raise LinkError(f"role must be a Role, got {role!r}")
        if not 0 <= addr <= MAX_ADDR:
            raise LinkError(f"addr must be 0..{MAX_ADDR}, got {addr}")
        if baud <= 0:
            raise LinkError(f"baud must be positive, got {baud}")
        if epoch is not None and not 0 < epoch <= 0xFFFFFFFF:
            raise LinkError("epoch must be a non-zero u32 (or None for a random one)")
        self.role = role
        self.addr = addr
        self.baud = baud
        self.config = config or TransportConfig()
        self._key: bytes | None = None
        self.set_key(key)
        self.epoch = epoch or _random_epoch()
        self.peer_epoch = 0
        self.session = SessionState.NO_PEER
        self._decoder = FrameDecoder()
        self._tx = TxWindow(baud, self.config)
        self._rx = RxSequencer()
        self._tx_counter = TxCounter()
        self._guard = ReplayGuard()
        self._retired: deque[int] = deque(maxlen=RETIRED_EPOCHS)
        self._out: list[bytes] = []
        self._ack_slot: int | None = None  # index in _out of a pure ACK not yet taken
        self._need_ack = False
        self._down = False  # gave up at least once and nothing was acknowledged since
        self._dir_flag = _FROM_HUB if role is Role.HUB else 0
        self._c: dict[str, int] = dict.fromkeys(LinkStats.__slots__, 0)

    # -- public API -----------------------------------------------------------------------------
    @property
    def key(self) -> bytes | None:
        return self._key

    def set_key(self, key: bytes | None) -> None:
        """Set (or clear) the board key. Once keyed, every frame but HELLO and ACK is MAC'd."""
        if key is not None and (not isinstance(key, bytes) or len(key) != KEY_SIZE):
            raise LinkError(f"link key must be {KEY_SIZE} bytes (see derive_board_key)")
        self._key = key

    @property
    def stats(self) -> LinkStats:
        d = self._decoder.stats
        c = dict(self._c)
        c.update(
            crc_errors=d.crc_errors,
            cobs_errors=d.cobs_errors,
            too_long=d.too_long,
            too_short=d.too_short,
            junk_bytes=d.junk_bytes,
        )
        return LinkStats(**c)

    @property
    def pending(self) -> int:
        """Messages queued or in flight (not yet acknowledged)."""
        return len(self._tx)

    def send(self, message: Message, now: float) -> None:
        """Queue a message for reliable delivery; raises LinkError when it cannot be sent."""
        if not isinstance(message, Message):
            raise LinkError(f"not a protocol message: {message!r}")
        mtype = message.TYPE
        if mtype in MONEY_TYPES and self._key is None:
            raise LinkError(f"{mtype.name} moves money or goods and needs a link key")
        if len(self._tx) >= self.config.queue_limit:
            raise LinkError(
                f"send queue full ({self.config.queue_limit} messages unacknowledged); "
                "the peer is not answering"
            )
        payload = message.encode()
        body_len = len(payload) + (TRAILER_SIZE if self._signs(mtype) else 0)
        if body_len > MAX_BODY:
            raise LinkError(f"{mtype.name} body of {body_len} bytes exceeds {MAX_BODY}")
        self._tx.queue.append(Pending(message, payload, wire_length(HEADER_SIZE + body_len)))
        self._pump(now)

    def data_to_send(self) -> bytes:
        """Bytes to write to the port now (b"" when there are none)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        self._ack_slot = None
        return out

    def next_timeout(self) -> float | None:
        """When `handle_timeout` must next be called (same clock as `now`), or None."""
        return self._tx.deadline

    def handle_timeout(self, now: float) -> list[LinkEvent]:
        """Retransmit what is due; after the retry limit, SendFailed for everything pending."""
        events: list[LinkEvent] = []
        tx = self._tx
        if not tx.expired(now):
            return events
        if tx.back_off(now):
            for p in tx.in_flight:
                self._transmit(p)
                self._c["retransmits"] += 1
            return events
        self._session_event(SessionEvent.GIVE_UP, 0, events)
        # Log a dead link once, not at every give-up while it stays dead.
        log.log(
            logging.DEBUG if self._down else logging.WARNING,
            "link addr=%d: peer not acknowledging after %d retries; new session epoch",
            self.addr,
            self.config.max_retries,
        )
        self._down = True
        self._pump(now)
        return events

    def receive_data(self, data: bytes, now: float) -> list[LinkEvent]:
        """Feed bytes read from the port; returns what happened. Never raises on bad input."""
        events: list[LinkEvent] = []
        for frame in self._decoder.feed(data):
            self._c["frames_rx"] += 1
            self._on_frame(frame, now, events)
        self._pump(now)
        if self._need_ack:
            self._send_pure_ack()
        return events

    # -- receive --------------------------------------------------------------------------------
    def _on_frame(self, frame: bytes, now: float, events: list[LinkEvent]) -> None:
        c = self._c
        version, mtype, flags, addr, epoch, peer_epoch, seq, ack = HEADER_STRUCT.unpack_from(frame)
        if version not in SUPPORTED_VERSIONS:
            c["unknown"] += 1
            events.append(UnknownMessage(mtype, version))
            return
        if (flags & _FROM_HUB) == self._dir_flag or addr != self.addr:
            c["filtered"] += 1  # our own echo, or a frame for another board on the bus
            return
        if epoch == 0 or epoch in self._retired:
            c["stale_frames"] += 1
            return
        pure_ack = mtype == MsgType.ACK
        if not pure_ack and peer_epoch not in (0, self.epoch):
            # Meant for a previous session of ours: tell the sender our epoch, accept nothing.
            c["stale_frames"] += 1
            self._need_ack = True
            return
        body = frame[HEADER_SIZE:]
        authenticated = False
        counter = 0
        if flags & _MAC and self._key is not None:
            parts = split_trailer(body)
            if parts is None or peer_epoch != self.epoch:
                self._auth_failed(mtype, events, "mac_failures")
                return
            body, counter, tag = parts
            if not verify_tag(self._key, frame[:HEADER_SIZE], body, counter, tag):
                self._auth_failed(mtype, events, "mac_failures")
                return
            last = self._guard.last if epoch == self.peer_epoch else 0
            if counter <= last:
                self._auth_failed(mtype, events, "replays")
                return
            authenticated = True
        elif flags & _MAC:
            parts = split_trailer(body)  # no key to check it with: strip, deliver unauthenticated
            if parts is None:
                self._auth_failed(mtype, events, "mac_failures")
                return
            body = parts[0]
        elif self._key is not None and mtype not in UNSIGNED_TYPES:
            self._auth_failed(mtype, events, "mac_failures")
            return
        if mtype in MONEY_TYPES and not authenticated:
            self._auth_failed(mtype, events, "mac_failures")
            return
        if epoch != self.peer_epoch:
            self._session_event(SessionEvent.NEW_PEER_EPOCH, epoch, events)
        if flags & _ACK and peer_epoch == self.epoch and self._tx.on_ack(ack, now) and self._down:
            self._down = False
            log.info("link addr=%d: peer acknowledging again", self.addr)
        if flags & _RELIABLE and not pure_ack:
            verdict = self._rx.accept(seq)
            self._need_ack = True
            if verdict:
                # Not taken: its counter is not committed either, so a frame reordered ahead
                # of it cannot make the in-sequence one look like a replay.
                c["duplicates" if verdict < 0 else "out_of_order"] += 1
                return
        if authenticated:
            self._guard.commit(counter)
        if not pure_ack:
            self._deliver(mtype, version, body, authenticated, events)

    def _deliver(
        self, mtype: int, version: int, body: bytes, authenticated: bool, events: list[LinkEvent]
    ) -> None:
        try:
            message = decode_message(mtype, body)
        except DecodeError as exc:
            if exc.reason is DecodeReason.UNKNOWN_TYPE:
                self._c["unknown"] += 1
                events.append(UnknownMessage(mtype, version))
            else:
                self._c["invalid"] += 1
                log.warning("link addr=%d: undecodable 0x%02x: %s", self.addr, mtype, exc)
                events.append(InvalidMessage(mtype, exc.reason, exc.detail))
            return
        events.append(MessageReceived(message, authenticated))

    def _auth_failed(self, mtype: int, events: list[LinkEvent], counter: str) -> None:
        self._c[counter] += 1
        events.append(AuthFailed(mtype))

    def _session_event(self, event: SessionEvent, epoch: int, events: list[LinkEvent]) -> None:
        """Run the session table (protocol.session) for `event`; `epoch` is the new peer's."""
        self.session, actions = transition(self.session, event)
        old_peer = self.peer_epoch
        for action in actions:
            if action is Action.RETIRE_PEER:
                self._retired.append(old_peer)
                self._c["peer_restarts"] += 1
            elif action is Action.FAIL_PENDING:
                self._fail_all(events)
            elif action is Action.NEW_OWN_EPOCH:
                old = self.epoch
                while self.epoch in (old, self.peer_epoch):
                    self.epoch = _random_epoch()
                self._tx_counter = TxCounter()
            elif action is Action.ADOPT_PEER:
                self.peer_epoch = epoch
                self._guard.reset()
            elif action is Action.RESET_RX:
                self._rx.reset()
            elif action is Action.REPORT_RESTART:
                log.info("link addr=%d: peer restarted (epoch %08x -> %08x)", self.addr,
                         old_peer, epoch)
                events.append(PeerRestarted(old_peer, epoch))

    def _fail_all(self, events: list[LinkEvent]) -> None:
        failed = self._tx.drain()
        self._c["send_failures"] += len(failed)
        events.extend(SendFailed(m) for m in failed)

    # -- transmit -------------------------------------------------------------------------------
    def _signs(self, mtype: MsgType) -> bool:
        return self._key is not None and mtype not in UNSIGNED_TYPES

    def _pump(self, now: float) -> None:
        tx = self._tx
        while tx.queue and tx.has_room():
            head = tx.queue[0]
            if self._signs(head.message.TYPE) and self.peer_epoch == 0:
                break  # a MAC'd frame must name the peer's epoch: wait for its first frame
            self._transmit(tx.take_next(now))

    def _header(self, mtype: int, flags: int, seq: int) -> bytes:
        if self.peer_epoch:
            flags |= _ACK
        return HEADER_STRUCT.pack(
            PROTOCOL_VERSION,
            mtype,
            flags | self._dir_flag,
            self.addr,
            self.epoch,
            self.peer_epoch,
            seq,
            self._rx.ack,
        )

    def _transmit(self, p: Pending) -> None:
        mtype = p.message.TYPE
        if self._signs(mtype):
            assert self._key is not None
            header = self._header(mtype, _RELIABLE | _MAC, p.seq)
            body = p.payload + make_trailer(
                self._key, header, p.payload, self._tx_counter.next()
            )
        else:
            header = self._header(mtype, _RELIABLE, p.seq)
            body = p.payload
        if self._ack_slot is not None and self.peer_epoch:
            # This frame carries a newer ACK: the pure ACK still waiting is redundant.
            self._out[self._ack_slot] = b""
            self._ack_slot = None
            self._c["frames_tx"] -= 1
        self._out.append(encode_frame(header + body))
        self._c["frames_tx"] += 1
        self._need_ack = False

    def _send_pure_ack(self) -> None:
        frame = encode_frame(self._header(MsgType.ACK, 0, 0))
        self._need_ack = False
        if self._ack_slot is not None:
            self._out[self._ack_slot] = frame  # coalesce: only the newest ACK matters
            return
        self._ack_slot = len(self._out)
        self._out.append(frame)
        self._c["frames_tx"] += 1
