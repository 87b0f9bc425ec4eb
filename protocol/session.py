"""The link's session state machine: one table, as drawn in docs/protocol.md section 9.

A link either knows no peer yet (`NO_PEER`, peer_epoch = 0) or knows the peer's epoch (`PEER`).
Two things change a session: an accepted frame from a new peer epoch, and this side giving up
on a frame (retry limit). `TRANSITIONS` says, for each (state, event), the next state and what
the link must do, in order; `Link` carries the actions out and nobody else moves the state.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class SessionState(Enum):
    NO_PEER = "no_peer"
    PEER = "peer"


class SessionEvent(Enum):
    NEW_PEER_EPOCH = "new_peer_epoch"  # an accepted frame carries an epoch != peer_epoch
    GIVE_UP = "give_up"  # the oldest frame in flight exhausted its retries


class Action(Enum):
    RETIRE_PEER = "retire_peer"  # remember the old peer epoch and refuse it from now on
    FAIL_PENDING = "fail_pending"  # SendFailed for every queued and in-flight message
    NEW_OWN_EPOCH = "new_own_epoch"  # draw a new own epoch; MAC counter back to 1
    ADOPT_PEER = "adopt_peer"  # peer_epoch = the frame's epoch; its replay state from 0
    RESET_RX = "reset_rx"  # the peer's stream towards us starts again at seq 1
    REPORT_RESTART = "report_restart"  # PeerRestarted(old, new) event


class SessionError(RuntimeError):
    """A (state, event) pair the table does not define."""


_S, _E, _A = SessionState, SessionEvent, Action
Table = dict[tuple[SessionState, SessionEvent], tuple[SessionState, tuple[Action, ...]]]
TRANSITIONS: Final[Table] = {
    # First contact restarts nothing: a sender that never heard us still holds all from seq 1.
    (_S.NO_PEER, _E.NEW_PEER_EPOCH): (_S.PEER, (_A.ADOPT_PEER, _A.RESET_RX)),
    (_S.PEER, _E.NEW_PEER_EPOCH): (
        _S.PEER,
        (_A.RETIRE_PEER, _A.FAIL_PENDING, _A.ADOPT_PEER, _A.RESET_RX, _A.REPORT_RESTART),
    ),
    (_S.NO_PEER, _E.GIVE_UP): (_S.NO_PEER, (_A.FAIL_PENDING, _A.NEW_OWN_EPOCH, _A.RESET_RX)),
    (_S.PEER, _E.GIVE_UP): (_S.PEER, (_A.FAIL_PENDING, _A.NEW_OWN_EPOCH, _A.RESET_RX)),
}
del _S, _E, _A


def transition(
    state: SessionState, event: SessionEvent
) -> tuple[SessionState, tuple[Action, ...]]:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise SessionError(f"session event {event.value} not allowed in {state.value}") from None
