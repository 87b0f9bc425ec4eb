"""What a simulated board knows: its vend state machine, its flash, its ledger, its purchases.

Pure data, no I/O. ``board.py`` drives these from link events.

The board's own state machine (docs/protocol.md, "board states"; the codes are
``protocol.BoardState``) lives in ``TRANSITIONS``, the one table that says how the board's state
may move. Nobody assigns ``state`` except ``BoardMachine.fire``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from protocol import BoardState, VendOutcome

DEFAULT_FW = "simboard-1.0"


class BoardStateError(RuntimeError):
    """An event that the board's state machine does not allow in its current state."""

    def __init__(self, state: BoardState, event: BoardEvent) -> None:
        super().__init__(f"board event {event.name} not allowed in state {state.name}")
        self.state = state
        self.event = event


class BoardEvent(enum.Enum):
    ORDER_SENT = enum.auto()  # customer chose; ORDER_REQUEST sent
    QR_SHOWN = enum.auto()  # PAYMENT_QR received and on the display
    REJECTED = enum.auto()  # ORDER_REJECTED received, or the request could not be delivered
    CANCELLED = enum.auto()  # customer pressed cancel, or the hub sent CANCEL
    EXPIRED = enum.auto()  # the QR's time ran out on the board's display
    APPROVED = enum.auto()  # a valid VEND_APPROVED for the order on display
    VEND_DONE = enum.auto()  # VEND_RESULT sent
    OUT_OF_SERVICE = enum.auto()  # HELLO_ACK said in_service = false
    IN_SERVICE = enum.auto()  # HELLO_ACK said in_service = true
    RESET = enum.auto()  # power-on / reboot


S, E = BoardState, BoardEvent
TRANSITIONS: dict[tuple[BoardState, BoardEvent], BoardState] = {
    (S.IDLE, E.ORDER_SENT): S.ORDERING,
    (S.IDLE, E.OUT_OF_SERVICE): S.OUT_OF_SERVICE,
    (S.IDLE, E.IN_SERVICE): S.IDLE,
    (S.ORDERING, E.QR_SHOWN): S.AWAITING_PAYMENT,
    (S.ORDERING, E.REJECTED): S.IDLE,
    (S.ORDERING, E.CANCELLED): S.IDLE,
    (S.AWAITING_PAYMENT, E.APPROVED): S.VENDING,
    (S.AWAITING_PAYMENT, E.CANCELLED): S.IDLE,
    (S.AWAITING_PAYMENT, E.EXPIRED): S.IDLE,
    (S.VENDING, E.VEND_DONE): S.IDLE,
    (S.OUT_OF_SERVICE, E.IN_SERVICE): S.IDLE,
    (S.OUT_OF_SERVICE, E.OUT_OF_SERVICE): S.OUT_OF_SERVICE,
}
# A reset is allowed from anywhere and always lands in IDLE.
TRANSITIONS.update({(state, E.RESET): S.IDLE for state in BoardState})
del S, E


@dataclass
class BoardMachine:
    state: BoardState = BoardState.IDLE

    def fire(self, event: BoardEvent) -> BoardState:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise BoardStateError(self.state, event) from None
        return self.state

    def allows(self, event: BoardEvent) -> bool:
        return (self.state, event) in TRANSITIONS


class RebootStage(enum.StrEnum):
    """Where in a vend a scripted reboot hits (docs/protocol.md, "reboot mid-vend")."""

    APPROVED = "approved"  # approval accepted and written to flash; VEND_STARTED not yet sent
    STARTED = "started"  # VEND_STARTED sent; nothing dispensed yet
    DISPENSING = "dispensing"  # after the first item, before the rest
    DISPENSED = "dispensed"  # everything out; VEND_RESULT not yet sent


# Board-side VEND_RESULT / STATUS reason codes (u16). docs/protocol.md leaves them to the
# firmware; the simulator uses these.
JAM_REASON = 5  # motor jam / drop sensor saw nothing (the MDB "vend failure" family)
RESET_REASON = 3  # the board was reset mid-vend
DEADLINE_REASON = 2  # the approval's deadline passed before the motor could start


class KeyMode(enum.StrEnum):
    CORRECT = "correct"  # provisioned with this site's board key
    NONE = "none"  # never provisioned: sends nothing MAC'd, so the hub trusts nothing from it
    WRONG = "wrong"  # provisioned for another site: every MAC fails at the hub


@dataclass(frozen=True)
class Behaviour:
    """Board-wide settings (per-vend mechanics are a ``VendPlan``)."""

    key_mode: KeyMode = KeyMode.CORRECT
    junk_rate: float = 0.0  # junk bytes per byte on the line (both directions)
    flip_rate: float = 0.0  # bit flips per byte on the line (both directions)
    seed: int | None = None  # for the noise and the request ids
    fw_version: str = DEFAULT_FW
    baud: int = 115200
    hello_retry_s: float = 1.0  # HELLO again this long after it went unanswered
    order_timeout_s: float = 5.0  # give up on an order with no QR and no rejection
    heartbeat_s: float | None = None  # None: what HELLO_ACK says


class PlanError(ValueError):
    """A vend plan that cannot be carried out (e.g. negative counts)."""


@dataclass(frozen=True)
class VendPlan:
    """How the machine's mechanics behave for one approved vend.

    ``dispense``: items that actually drop (None = every approved item); fewer is a jam, and the
    board reports FAILED with ``reason`` and the true count. ``reboot_at``: reset the board at
    that step instead of finishing. ``item_time_s``: motor time per item.
    """

    dispense: int | None = None
    reason: int = 0
    reboot_at: RebootStage | None = None
    item_time_s: float = 0.0

    def __post_init__(self) -> None:
        if self.dispense is not None and self.dispense < 0:
            raise PlanError(f"dispense must be >= 0, got {self.dispense}")
        if self.item_time_s < 0:
            raise PlanError(f"item_time_s must be >= 0, got {self.item_time_s}")
        if not 0 <= self.reason <= 0xFFFF:
            raise PlanError(f"reason must fit in u16, got {self.reason}")

    @classmethod
    def ok(cls, item_time_s: float = 0.0) -> VendPlan:
        return cls(item_time_s=item_time_s)

    @classmethod
    def jam(cls, dispensed: int = 0, reason: int = JAM_REASON) -> VendPlan:
        return cls(dispense=dispensed, reason=reason)

    @classmethod
    def reboot(cls, stage: RebootStage) -> VendPlan:
        return cls(reboot_at=stage)


class PurchaseState(enum.StrEnum):
    REQUESTED = "requested"  # ORDER_REQUEST sent, nothing back yet
    SHOWING_QR = "showing_qr"
    APPROVED = "approved"
    VENDING = "vending"
    VENDED = "vended"  # VEND_RESULT SUCCESS sent
    FAILED = "failed"  # VEND_RESULT FAILED sent (jam or partial)
    NOT_STARTED = "not_started"  # approval too late; VEND_RESULT NOT_STARTED sent
    INTERRUPTED = "interrupted"  # the board rebooted mid-vend; flash tells the rest
    REJECTED = "rejected"  # ORDER_REJECTED
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNDELIVERED = "undelivered"  # ORDER_REQUEST never acknowledged (link down)


FINAL_PURCHASE_STATES = frozenset(
    {
        PurchaseState.VENDED,
        PurchaseState.FAILED,
        PurchaseState.NOT_STARTED,
        PurchaseState.INTERRUPTED,
        PurchaseState.REJECTED,
        PurchaseState.CANCELLED,
        PurchaseState.EXPIRED,
        PurchaseState.UNDELIVERED,
    }
)


@dataclass
class QrSeen:
    """The PAYMENT_QR as the board's display got it."""

    order_ref: str
    amount_paise: int
    currency: str
    expires_in_s: int
    upi_uri: str
    size: int
    bitmap_ok: bool  # bitmap length is exactly ceil(size*size/8) and unpacks to size*size modules
    decoded: str | None  # text decoded from the modules, None if it does not decode
    problem: str | None = None  # why the QR is not usable, if it is not

    @property
    def valid(self) -> bool:
        return self.problem is None


@dataclass
class Purchase:
    """One customer interaction, with monotonic timestamps (``time.monotonic``, system-wide)."""

    request_id: int
    product: str
    options: tuple[str, ...]
    quantity: int
    plan: VendPlan
    state: PurchaseState = PurchaseState.REQUESTED
    order_ref: str | None = None
    qr: QrSeen | None = None
    reject_reason: int | None = None
    reject_message: str | None = None
    cancel_reason: int | None = None
    approved_quantity: int | None = None
    dispensed: int = 0
    outcome: VendOutcome = VendOutcome.NONE
    t_order_sent: float | None = None
    t_qr: float | None = None  # the whole PAYMENT_QR frame decoded
    t_approved: float | None = None  # VEND_APPROVED accepted
    t_vend_started: float | None = None
    t_result_sent: float | None = None
    t_closed: float | None = None

    @property
    def done(self) -> bool:
        return self.state in FINAL_PURCHASE_STATES

    @property
    def qr_latency_s(self) -> float | None:
        if self.t_qr is None or self.t_order_sent is None:
            return None
        return self.t_qr - self.t_order_sent


@dataclass
class FlashState:
    """What survives a reboot, as a real board keeps it in flash (docs/protocol.md, STATUS)."""

    last_order: str = ""
    last_outcome: VendOutcome = VendOutcome.NONE
    last_dispensed: int = 0
    last_reason: int = 0
    vends_ok: int = 0
    vends_failed: int = 0
    used_auths: set[bytes] = field(default_factory=set)  # one-time approvals already consumed

    # Each method is one flash write, in the order a vend makes them.
    def accept(self, order_ref: str, auth: bytes) -> None:
        """A valid approval is consumed: nothing has moved yet."""
        self.used_auths.add(auth)
        self.last_order, self.last_outcome = order_ref, VendOutcome.NOT_STARTED
        self.last_dispensed = self.last_reason = 0

    def start(self, order_ref: str) -> None:
        """Motors about to run (VEND_STARTED)."""
        self.last_order, self.last_outcome = order_ref, VendOutcome.IN_PROGRESS

    def dispensed(self, count: int) -> None:
        """The drop sensor counted another item."""
        self.last_dispensed = count

    def finish(self, outcome: VendOutcome, reason: int) -> None:
        self.last_outcome, self.last_reason = outcome, reason
        if outcome is VendOutcome.SUCCESS:
            self.vends_ok += 1
        elif outcome is VendOutcome.FAILED:
            self.vends_failed += 1

    def recover_after_reset(self) -> None:
        """At boot: a vend that was running when power went is a failed vend with what the
        drop sensor counted. Nothing else changes; a vend never started stays NOT_STARTED."""
        if self.last_outcome is VendOutcome.IN_PROGRESS:
            self.finish(VendOutcome.FAILED, RESET_REASON)


@dataclass(frozen=True)
class DispenseRecord:
    """Goods that physically left the machine: the ground truth tests check against."""

    order_ref: str
    product: str
    approved: int
    dispensed: int
    at: float  # time.monotonic()


@dataclass
class BoardCounters:
    boots: int = 0
    hellos_sent: int = 0
    hello_acks: int = 0
    statuses_sent: int = 0
    status_requests: int = 0
    orders_sent: int = 0
    qrs_received: int = 0
    qrs_invalid: int = 0
    rejections: int = 0
    approvals_accepted: int = 0
    approvals_refused: int = 0
    unauthenticated_dropped: int = 0  # frames that move money/goods but came without a valid MAC
    auth_failures: int = 0  # AuthFailed events from the link
    cancels_sent: int = 0
    cancels_received: int = 0
    expiries: int = 0
    vends_ok: int = 0
    vends_failed: int = 0
    logs_sent: int = 0
    send_failures: int = 0
    hub_restarts: int = 0
    unplugs: int = 0
    unknown_messages: int = 0
