"""Orders: the state machine (`state`) and the service that owns it (`service`)."""

from .service import OrderHook, OrderService
from .state import TRANSITIONS, check_transition

__all__ = ["TRANSITIONS", "OrderHook", "OrderService", "check_transition"]
