"""Every web.AppKey of the sandbox app, in one place."""

from __future__ import annotations

from aiohttp import web

from .config import SandboxConfig
from .runtime import Sandbox

CONFIG_KEY = web.AppKey("sandbox_config", SandboxConfig)
SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
