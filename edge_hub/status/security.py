"""Who may see what: the login wall, CSRF and origin checks, and the security headers."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from .assets import PUBLIC_FILES, static_route_name
from .auth import Session, csrf_matches
from .errors import Handler, StatusError
from .keys import REQUEST_SESSION, SESSIONS, SETTINGS

# Route names reachable without a session: the login page, its static files, the login call.
PUBLIC_ROUTES = frozenset(
    {"login_page", "login_submit", "api_login", *(static_route_name(f) for f in PUBLIC_FILES)}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send Origin: null
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer (pages, API, errors, the event stream) gets these."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")


def current_session(request: web.Request) -> Session:
    session: Session = request[REQUEST_SESSION]
    return session


def _route_name(request: web.Request) -> str | None:
    return request.match_info.route.name


def _is_api(request: web.Request) -> bool:
    name = _route_name(request)
    return bool(name and name.startswith("api_")) or "/api/" in request.path


def check_origin(request: web.Request) -> None:
    """A state-changing request that names its origin must come from this page's own origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc != request.host:
        raise StatusError(403, "bad_origin", "request from another origin refused")


async def _csrf_token(request: web.Request) -> str | None:
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    return token


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    unsafe = request.method not in SAFE_METHODS
    if unsafe:
        check_origin(request)
    if _route_name(request) in PUBLIC_ROUTES:
        return await handler(request)
    settings = request.app[SETTINGS]
    session = request.app[SESSIONS].get(request.cookies.get(settings.cookie_name))
    if session is None:
        if _is_api(request) or unsafe:
            raise StatusError(401, "login_required", "log in first")
        raise web.HTTPSeeOther(request.app.router["login_page"].url_for())
    if unsafe and not csrf_matches(session, await _csrf_token(request)):
        raise StatusError(
            403, "csrf_failed", f"missing or wrong CSRF token (send the {CSRF_HEADER} header)"
        )
    request[REQUEST_SESSION] = session
    return await handler(request)


__all__ = [
    "CSP",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PUBLIC_ROUTES",
    "add_security_headers",
    "auth_middleware",
    "check_origin",
    "current_session",
]
