"""An offline Razorpay: the REST subset the gateway uses, signed webhooks, and fault knobs."""

from .app import create_sandbox_app
from .config import SETTINGS_HELP, SandboxConfig
from .errors import SandboxError
from .faults import FAULTS_HELP, Faults
from .keys import CONFIG_KEY, SANDBOX_KEY
from .runtime import Sandbox
from .webhooks import WebhookOverrides, serialise, sign

__all__ = [
    "CONFIG_KEY",
    "FAULTS_HELP",
    "SANDBOX_KEY",
    "SETTINGS_HELP",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "WebhookOverrides",
    "create_sandbox_app",
    "serialise",
    "sign",
]
