"""Simulated STM32 vending board on a pseudo-terminal (placeholder docstring)."""

from edge_hub.simboard.board import (
    DEFAULT_PRODUCTS,
    TEST_MASTER_KEY,
    Behaviour,
    BoardError,
    KeyMode,
    SimBoard,
    inspect_qr,
)
from edge_hub.simboard.model import (
    BoardCounters,
    DispenseRecord,
    FlashState,
    Purchase,
    PurchaseState,
    QrSeen,
    RebootStage,
    VendPlan,
)

__all__ = [
    "DEFAULT_PRODUCTS",
    "TEST_MASTER_KEY",
    "Behaviour",
    "BoardCounters",
    "BoardError",
    "DispenseRecord",
    "FlashState",
    "KeyMode",
    "Purchase",
    "PurchaseState",
    "QrSeen",
    "RebootStage",
    "SimBoard",
    "VendPlan",
    "inspect_qr",
]
