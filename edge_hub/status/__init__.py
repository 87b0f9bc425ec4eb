"""The technician status page served by the hub: a login wall, live board and order state,
and a few actions, all over a small JSON API (docs/status-page.md).

The hub implements `HubView` (view.py) and serves `create_status_app(view, settings)`.
"""

from .app import create_status_app
from .auth import hash_password, verify_password
from .settings import StatusSettings, TechUser
from .view import HubView

__all__ = [
    "HubView",
    "StatusSettings",
    "TechUser",
    "create_status_app",
    "hash_password",
    "verify_password",
]
