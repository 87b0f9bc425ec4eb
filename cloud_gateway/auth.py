"""Hub credentials and JWTs.

Other modules call:
* `add_hub_tx` / `list_hubs` / `revoke_hub_tx` (the CLI's `hubs add|list|revoke`);
* `Authenticator.issue(hub_id, secret)` -> `protocol.hub_api.TokenResponse` (POST /auth/token);
* `Authenticator.authenticate(header)` -> `HubIdentity` for every hub call (the auth middleware).

Hub secrets are stored as scrypt hashes and shown once, at `hubs add`. Tokens are HS256 JWTs
with sub (hub id), site, aud, iat and exp; decoding accepts only HS256 (so `alg: none` and any
other algorithm fail), requires every claim, and allows `token_leeway_s` of clock skew. A
revoked hub is refused on its next request: revocation is checked in the database each time,
not only when a token is issued. Messages never include the secret or the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from protocol.hub_api import TokenResponse

from .db import Database, Tx
from .errors import Conflict, NotFound, Unauthorized, ValidationError

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ALGORITHM = "HS256"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
VERIFIED_CACHE = 4096


@dataclass(frozen=True)
class HubIdentity:
    hub_id: str
    site: str


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt_hex), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def add_hub_tx(tx: Tx, hub_id: str, site: str, secret_hash: str) -> None:
    """Add a hub; `secret_hash` from `hash_secret` (computed outside the write unit: it is slow)."""
    if not HUB_ID_RE.match(hub_id):
        raise ValidationError(invalid={"hub_id": f"must match {HUB_ID_RE.pattern}"})
    if not site.strip():
        raise ValidationError(invalid={"site": "must not be empty"})
    if tx.one("SELECT 1 FROM hubs WHERE hub_id = ?", (hub_id,)):
        raise Conflict(f"hub {hub_id!r} already exists (a revoked hub id is never reused)")
    tx.execute("INSERT INTO hubs (hub_id, site, secret_hash, created_at) VALUES (?, ?, ?, ?)",
               (hub_id, site, secret_hash, int(tx.now)))


def revoke_hub_tx(tx: Tx, hub_id: str) -> None:
    cur = tx.execute("UPDATE hubs SET revoked_at = ? WHERE hub_id = ? AND revoked_at IS NULL",
                     (int(tx.now), hub_id))
    if cur.rowcount == 0:
        if tx.one("SELECT 1 FROM hubs WHERE hub_id = ?", (hub_id,)) is None:
            raise NotFound(f"unknown hub {hub_id!r}")


def list_hubs(db: Database) -> list[dict[str, object]]:
    rows = db.query("SELECT h.hub_id, h.site, h.created_at, h.revoked_at, "
                    "(SELECT COUNT(*) FROM boards b WHERE b.hub_id = h.hub_id) AS boards "
                    "FROM hubs h ORDER BY h.hub_id")
    return [dict(r) for r in rows]


class Authenticator:
    def __init__(self, db: Database, key: str, audience: str, ttl_s: int, leeway_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._key = key
        self._audience = audience
        self._ttl_s = ttl_s
        self._leeway_s = leeway_s
        self._clock = clock
        self._seen: dict[str, dict[str, Any]] = {}

    async def issue(self, hub_id: str, secret: str) -> TokenResponse:
        row = self._db.query_one("SELECT site, secret_hash, revoked_at FROM hubs "
                                 "WHERE hub_id = ?", (hub_id,))
        # hash even for unknown hubs so timing does not reveal which hub ids exist
        stored = row["secret_hash"] if row else hash_secret("x", b"\0" * 16)
        ok = await asyncio.to_thread(check_secret, secret, stored)
        if row is None or not ok:
            raise Unauthorized("unknown hub or wrong secret")
        if row["revoked_at"] is not None:
            raise Unauthorized("hub is revoked")
        now = int(self._clock())
        claims = {"sub": hub_id, "site": row["site"], "aud": self._audience, "iat": now,
                  "exp": now + self._ttl_s}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return {"token": token, "expires_in": self._ttl_s, "server_time": now}

    def _verified(self, token: str) -> dict[str, Any]:
        """Signature, algorithm, audience and required claims; remembered per token string
        (a signature verified once stays verified; time and revocation are checked per call)."""
        claims = self._seen.get(token)
        if claims is not None:
            return claims
        try:
            # exp/iat are checked by the caller against the gateway's clock (PyJWT uses time.time)
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=self._audience,
                options={"require": ["sub", "aud", "exp", "iat"], "verify_exp": False,
                         "verify_iat": False})
        except jwt.InvalidAudienceError:
            raise Unauthorized("token has the wrong audience") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized(f"token algorithm not allowed (only {ALGORITHM})") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token ({type(exc).__name__})") from None
        if len(self._seen) >= VERIFIED_CACHE:
            self._seen.clear()  # bounded: at worst every live token is verified once more
        self._seen[token] = claims
        return claims

    def authenticate(self, header: str | None) -> HubIdentity:
        if not header:
            raise Unauthorized("missing Authorization: Bearer <token>")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        claims = self._verified(token.strip())
        exp, iat, now = claims.get("exp"), claims.get("iat"), self._clock()
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise Unauthorized("invalid token (exp/iat)")
        if now > exp + self._leeway_s:
            raise Unauthorized("token expired")
        if iat > now + self._leeway_s:
            raise Unauthorized("token issued in the future (check the hub's clock)")
        hub_id = claims.get("sub")
        if not isinstance(hub_id, str):
            raise Unauthorized("invalid token (sub)")
        row = self._db.query_one("SELECT site, revoked_at FROM hubs WHERE hub_id = ?", (hub_id,))
        if row is None:
            raise Unauthorized("unknown hub")
        if row["revoked_at"] is not None:
            raise Unauthorized("hub is revoked")
        return HubIdentity(hub_id, row["site"])


__all__ = ["Authenticator", "HubIdentity", "add_hub_tx", "check_secret", "hash_secret",
           "list_hubs", "revoke_hub_tx"]
