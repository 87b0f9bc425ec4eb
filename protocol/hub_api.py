"""The hub <-> gateway HTTP API: paths, enums and JSON shapes, defined once.

Both `edge_hub` and `cloud_gateway` import this module; neither imports the other. It is pure data
(no I/O). JSON bodies are plain dicts; the TypedDicts below name their keys and types, and the
gateway validates every request against them (unknown keys are rejected with a clear error).

Money is integer paise everywhere. Times the gateway checks are the gateway's clock (Unix seconds);
times a hub reports carry its own wall clock plus whether that clock was synced (`Stamp`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, NotRequired, TypedDict

API_VERSION: Final = 1

# --- paths -------------------------------------------------------------------------------------
AUTH_TOKEN: Final = "/auth/token"  # POST TokenRequest -> TokenResponse
ORDERS: Final = "/orders"  # POST CreateOrder -> Order (201 new, 200 same idempotency key)
ORDER: Final = "/orders/{order_id}"  # GET -> Order
ORDER_PAY: Final = "/orders/{order_id}/pay"  # POST {} -> Order (with payment)
ORDER_QR: Final = "/orders/{order_id}/qr"  # GET -> Payment
ORDER_DISPENSE: Final = "/orders/{order_id}/dispense"  # POST {} -> Order (vend started)
ORDER_CONFIRM: Final = "/orders/{order_id}/confirm"  # POST {} -> Receipt (fulfilled)
ORDER_FAIL: Final = "/orders/{order_id}/fail"  # POST VendFailure -> Order (refund follows)
ORDER_CANCEL: Final = "/orders/{order_id}/cancel"  # POST CancelRequest -> Order
HUB_BOARDS: Final = "/hub/boards"  # GET -> {"boards": [Board]}
HUB_BOARD: Final = "/hub/boards/{board_uid}"  # PUT BoardRegistration -> Board
HUB_EVENTS: Final = "/hub/events"  # POST EventBatch -> EventBatchResult
HUB_COMMANDS: Final = "/hub/commands"  # GET ?after=<seq>&wait=<s> -> CommandBatch (long-poll)
HUB_COMMANDS_ACK: Final = "/hub/commands/ack"  # POST CommandAck -> {"acked": int}
HUB_WS: Final = "/hub/ws"  # GET ?after=<seq> -> WebSocket (see WsServerMessage / WsClientMessage)
HUB_CATALOG: Final = "/hub/catalog"  # GET -> Catalog (this hub's site prices)
HEALTHZ: Final = "/healthz"
READYZ: Final = "/readyz"
METRICS: Final = "/metrics"
OPENAPI: Final = "/openapi.json"
WEBHOOK_RAZORPAY: Final = "/webhooks/razorpay"

MAX_EVENTS_PER_BATCH: Final = 500
LONG_POLL_MAX_WAIT_S: Final = 30


# --- enums -------------------------------------------------------------------------------------
class OrderState(StrEnum):
    CREATED = "created"
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    DISPENSING = "dispensing"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"  # vend failed or never started; a refund follows
    REFUND_PENDING = "refund_pending"
    REFUNDED = "refunded"
    FLAGGED = "flagged"  # paid, outcome unknown past the deadline: an operator decides


FINAL_ORDER_STATES: Final = frozenset(
    {
        OrderState.FULFILLED,
        OrderState.CANCELLED,
        OrderState.EXPIRED,
        OrderState.REFUNDED,
        OrderState.FLAGGED,
    }
)


class EventType(StrEnum):
    """What a hub reports through the outbox (POST /hub/events)."""

    BOARD_HELLO = "board_hello"  # data: BoardRegistration
    BOARD_STATUS = "board_status"  # data: free-form counters (telemetry)
    VEND_STARTED = "vend_started"  # order_id set; data: {}
    VEND_RESULT = "vend_result"  # order_id set; data: VendResultData
    ORDER_CANCELLED = "order_cancelled"  # order_id set; data: {"reason": CancelReasonName}
    TELEMETRY = "telemetry"  # data: free-form; may be dropped oldest-first by the hub
    LOG = "log"  # data: {"level": int, "message": str}


class VendOutcomeName(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"  # board says the vend failed; `dispensed` says how many left the machine
    NOT_VENDED = "not_vended"  # hub never approved (deadline passed, board gone): refund
    UNKNOWN = "unknown"  # the hub cannot know; the gateway flags it past its deadline


class CancelReasonName(StrEnum):
    CUSTOMER = "customer"
    EXPIRED = "expired"
    OPERATOR = "operator"
    BOARD_RESET = "board_reset"
    PAYMENT_FAILED = "payment_failed"
    HUB = "hub"


class CommandType(StrEnum):
    PAYMENT_CONFIRMED = "payment_confirmed"  # data: PaymentConfirmedData
    ORDER_CANCELLED = "order_cancelled"  # data: {"reason": CancelReasonName}
    CATALOG_CHANGED = "catalog_changed"  # data: {}
    CONFIG_CHANGED = "config_changed"  # data: free-form


class EventStatus(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already applied under this id: same effect as applied
    IGNORED = "ignored"  # valid but late or superseded (forward-only state); recorded
    REJECTED = "rejected"  # invalid; the hub must not resend it (it is logged and dropped)


# --- shapes ------------------------------------------------------------------------------------
class ErrorBody(TypedDict):
    code: str  # machine-readable, e.g. "validation_error", "invalid_state", "not_found"
    message: str
    status: int
    details: dict[str, object]  # validation: {"missing": [...], "invalid": {field: why}}
    request_id: str


class ErrorResponse(TypedDict):
    error: ErrorBody


class TokenRequest(TypedDict):
    hub_id: str
    secret: str


class TokenResponse(TypedDict):
    token: str  # JWT, HS256, aud "upi-vend-hub", claims sub=hub_id, site
    expires_in: int  # seconds
    server_time: int  # gateway Unix time: hubs use it to notice a wrong clock


class Stamp(TypedDict):
    wall: float  # hub wall-clock Unix time when it happened
    synced: bool  # whether the hub's clock was synced then
    boot_id: NotRequired[str]
    mono: NotRequired[float]  # hub monotonic time (same boot) for later correction


class CreateOrder(TypedDict):
    board_uid: str  # hex of the STM32 96-bit uid (24 hex chars)
    product: str  # catalog product code
    options: list[str]  # customization codes
    quantity: int
    idempotency_key: str  # chosen by the hub; a retry returns the same order
    pay: NotRequired[bool]  # true: also create the UPI QR in the same round trip
    # a "price"/"amount" key is rejected: prices are the gateway's alone


class Payment(TypedDict):
    qr_id: str
    upi_uri: str  # what the board's QR encodes
    amount: int  # paise
    currency: str  # "INR"
    close_by: int  # gateway Unix time
    expires_in_s: int  # close_by - now, at answer time


class Order(TypedDict):
    order_id: str
    board_uid: str
    hub_id: str
    state: str  # OrderState
    product: str
    options: list[str]
    quantity: int
    amount: int  # paise, computed by the gateway
    currency: str
    created_at: int
    payment: NotRequired[Payment | None]
    vend_deadline: NotRequired[int | None]  # gateway Unix time; set once paid


class Receipt(TypedDict):
    order_id: str
    amount: int
    currency: str
    paid_at: int
    dispensed_at: int
    fulfilled_at: int
    payment_id: str


class VendFailure(TypedDict):
    reason: str
    dispensed: int


class CancelRequest(TypedDict):
    reason: str  # CancelReasonName


class BoardRegistration(TypedDict):
    board_uid: str
    firmware: str
    protocol_version: int
    products: list[str]
    addr: NotRequired[int]
    port: NotRequired[str]


class Board(TypedDict):
    board_uid: str
    hub_id: str
    firmware: str
    protocol_version: int
    products: list[str]
    registered_at: int


class VendResultData(TypedDict):
    outcome: str  # VendOutcomeName
    dispensed: int
    reason: NotRequired[str]


class HubEvent(TypedDict):
    id: str  # the hub's unique event id: the idempotency key
    type: str  # EventType
    board_uid: str
    order_id: NotRequired[str | None]
    at: Stamp
    data: dict[str, object]


class EventBatch(TypedDict):
    events: list[HubEvent]  # at most MAX_EVENTS_PER_BATCH, in the hub's order


class EventResult(TypedDict):
    id: str
    status: str  # EventStatus
    error: NotRequired[str]


class EventBatchResult(TypedDict):
    results: list[EventResult]  # one per event, same order


class PaymentConfirmedData(TypedDict):
    amount: int
    currency: str
    payment_id: str
    vend_deadline_in_s: int  # computed when the command is (re)sent: rule 7


class Command(TypedDict):
    seq: int  # per hub, strictly increasing; the hub's cursor is the last seq it applied
    type: str  # CommandType
    order_id: NotRequired[str | None]
    board_uid: NotRequired[str | None]
    data: dict[str, object]
    created_at: int


class CommandBatch(TypedDict):
    commands: list[Command]
    cursor: int  # the highest seq in this batch, or the request's `after` when empty


class CommandAck(TypedDict):
    upto: int  # every command with seq <= upto is applied and committed by the hub


class WsServerMessage(TypedDict):
    type: Literal["command", "ping"]
    command: NotRequired[Command]


class WsClientMessage(TypedDict):
    type: Literal["ack"]
    upto: int


class CatalogOption(TypedDict):
    code: str
    name: str
    price: int  # paise added to the product price


class CatalogProduct(TypedDict):
    code: str
    name: str
    price: int  # paise
    options: list[CatalogOption]
    available: bool


class Catalog(TypedDict):
    site: str
    currency: str
    products: list[CatalogProduct]


__all__ = [
    "API_VERSION",
    "FINAL_ORDER_STATES",
    "Board",
    "BoardRegistration",
    "CancelReasonName",
    "CancelRequest",
    "Catalog",
    "CatalogOption",
    "CatalogProduct",
    "Command",
    "CommandAck",
    "CommandBatch",
    "CommandType",
    "CreateOrder",
    "ErrorBody",
    "ErrorResponse",
    "EventBatch",
    "EventBatchResult",
    "EventResult",
    "EventStatus",
    "EventType",
    "HubEvent",
    "Order",
    "OrderState",
    "Payment",
    "PaymentConfirmedData",
    "Receipt",
    "Stamp",
    "TokenRequest",
    "TokenResponse",
    "VendFailure",
    "VendOutcomeName",
    "VendResultData",
    "WsClientMessage",
    "WsServerMessage",
]
