"""Log in and out: the login page (the only page served without a session) and its calls."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from string import Template
from typing import Any

from aiohttp import web

from .assets import asset_text
from .auth import Session, dummy_hash, verify_password
from .errors import StatusError
from .keys import LIMITER, SESSIONS, SETTINGS, VERIFY_SLOTS
from .security import current_session

logger = logging.getLogger(__name__)

MAX_NAME = 64
MAX_PASSWORD = 1024
_LOGIN_PAGE = Template(asset_text("login.html"))


def _render_login(message: str = "", status: int = 200) -> web.Response:
    note = f'<p class="login-error" role="alert">{html.escape(message)}</p>' if message else ""
    return web.Response(
        status=status, text=_LOGIN_PAGE.substitute(message=note), content_type="text/html"
    )


def _set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        settings.cookie_name,
        session.sid,
        max_age=settings.session_ttl_s,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.cookie_secure,
    )


def _credentials(data: Any) -> tuple[str, str]:
    if not isinstance(data, dict):
        raise StatusError(400, "validation_error", "send an object with name and password")
    missing = [k for k in ("name", "password") if not data.get(k)]
    if missing:
        raise StatusError(
            400, "validation_error", "name and password are required", {"missing": missing}
        )
    name, password = data["name"], data["password"]
    invalid: dict[str, str] = {}
    if not isinstance(name, str) or len(name) > MAX_NAME:
        invalid["name"] = f"a string of at most {MAX_NAME} characters"
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        invalid["password"] = f"a string of at most {MAX_PASSWORD} characters"
    if invalid:
        raise StatusError(
            400, "validation_error", "invalid credentials format", {"invalid": invalid}
        )
    return name, password


async def attempt_login(request: web.Request, name: str, password: str) -> Session:
    """Check a name and password under the rate limit; a new session on success."""
    limiter = request.app[LIMITER]
    keys = (f"addr:{request.remote}", f"user:{name.casefold()}")
    wait = limiter.retry_after(*keys)
    if wait:
        raise StatusError(
            429,
            "rate_limited",
            f"too many failed logins; try again in {wait} s",
            {"retry_after_s": wait},
            {"Retry-After": str(wait)},
        )
    user = request.app[SETTINGS].user(name)
    stored = user.password_hash if user is not None else dummy_hash()
    async with request.app[VERIFY_SLOTS]:
        ok = await asyncio.to_thread(verify_password, password, stored)
    if user is None or not ok:
        limiter.failed(*keys)
        logger.warning("status page: failed login as %r from %s", name, request.remote)
        raise StatusError(401, "bad_credentials", "wrong user name or password")
    limiter.succeeded(*keys)
    session = request.app[SESSIONS].create(user.name)
    logger.info("status page: %s logged in from %s", user.name, request.remote)
    return session


async def login_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.app[SESSIONS].get(request.cookies.get(settings.cookie_name)) is not None:
        raise web.HTTPSeeOther(request.app.router["index"].url_for())
    return _render_login()


async def login_submit(request: web.Request) -> web.StreamResponse:
    """The HTML form: a redirect to the page on success, the login page with the reason if not."""
    form = await request.post()
    try:
        name, password = _credentials(
            {k: form.get(k) if isinstance(form.get(k), str) else None for k in ("name", "password")}
        )
        session = await attempt_login(request, name, password)
    except StatusError as exc:
        response = _render_login(exc.message, exc.status)
        response.headers.update(exc.headers)
        return response
    response = web.Response(
        status=303, headers={"Location": str(request.app.router["index"].url_for())}
    )
    _set_cookie(request, response, session)
    return response


def session_body(request: web.Request, session: Session) -> dict[str, Any]:
    return {
        "user": session.user,
        "csrf_token": session.csrf_token,
        "expires_in_s": int(request.app[SESSIONS].remaining_s(session)),
    }


async def api_login(request: web.Request) -> web.StreamResponse:
    """JSON login for scripts: {"name", "password"} -> the session cookie and the CSRF token."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StatusError(400, "invalid_json", "the body is not valid JSON") from None
    name, password = _credentials(data)
    session = await attempt_login(request, name, password)
    response = web.json_response(session_body(request, session))
    _set_cookie(request, response, session)
    return response


async def api_session(request: web.Request) -> web.StreamResponse:
    return web.json_response(session_body(request, current_session(request)))


async def api_logout(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    request.app[SESSIONS].delete(session.sid)
    logger.info("status page: %s logged out", session.user)
    response = web.json_response({"ok": True})
    response.del_cookie(request.app[SETTINGS].cookie_name, path="/")
    return response


__all__ = ["api_login", "api_logout", "api_session", "attempt_login", "login_page", "login_submit"]
