"""Hub authentication: tokens, refusals (401), revocation at once, rate limits (429)."""

from __future__ import annotations

import base64
import json
import time

import jwt

from cloud_gateway.auth import revoke_hub_tx
from cloud_gateway.keys import DB, SETTINGS

from .conftest import SECRET_A, FakeClock, Gateway, GatewayFactory


def _key(gw: Gateway) -> str:
    return gw.app[SETTINGS].token_key.reveal()


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "hub-a", "site": "mall-1", "aud": "upi-vend-hub",
                                 "iat": now, "exp": now + 600}
    claims.update(over)
    return claims


async def _status_with(gw: Gateway, token: str) -> tuple[int, dict[str, object]]:
    resp = await gw.client.get("/hub/boards", headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def test_token_has_the_documented_claims(gw: Gateway) -> None:
    resp = await gw.client.post("/auth/token", json={"hub_id": "hub-a", "secret": SECRET_A})
    body = await resp.json()
    assert resp.status == 200 and body["expires_in"] == 900
    assert abs(body["server_time"] - time.time()) < 5
    claims = jwt.decode(body["token"], _key(gw), algorithms=["HS256"], audience="upi-vend-hub")
    assert claims["sub"] == "hub-a" and claims["site"] == "mall-1"
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    status, _ = await _status_with(gw, body["token"])
    assert status == 200


async def test_wrong_secret_or_unknown_hub_is_401(gw: Gateway) -> None:
    for body in ({"hub_id": "hub-a", "secret": "wrong"}, {"hub_id": "nobody", "secret": "x"}):
        resp = await gw.client.post("/auth/token", json=body)
        err = await resp.json()
        assert resp.status == 401 and err["error"]["code"] == "unauthorized"
        assert "wrong" not in err["error"]["message"].split("secret")[-1]  # never echoed


async def test_bad_tokens_are_401(gw: Gateway) -> None:
    key = _key(gw)
    unsigned = (base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
                .rstrip(b"=").decode() + "." +
                base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=").decode()
                + ".")
    cases = {
        "alg none": unsigned,
        "HS512": jwt.encode(_claims(), key, algorithm="HS512"),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 3600), key, algorithm="HS256"),
        "wrong aud": jwt.encode(_claims(aud="someone-else"), key, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, key,
                             algorithm="HS256"),
        "other key": jwt.encode(_claims(), "another-key-" + "x" * 64, algorithm="HS256"),
        "garbage": "not.a.token",
        "unknown hub": jwt.encode(_claims(sub="ghost"), key, algorithm="HS256"),
    }
    for name, token in cases.items():
        status, err = await _status_with(gw, token)
        assert status == 401, name
        assert err["error"]["code"] == "unauthorized", name  # type: ignore[index]
    resp = await gw.client.get("/hub/boards")
    assert resp.status == 401 and "WWW-Authenticate" in resp.headers
    resp = await gw.client.get("/hub/boards", headers={"Authorization": "Basic abc"})
    assert resp.status == 401


async def test_leeway_accepts_a_hub_with_a_wrong_clock(gw: Gateway) -> None:
    key = _key(gw)
    # issued "in the future" and just expired, both within the 300 s leeway
    token = jwt.encode(_claims(iat=int(time.time()) + 200, exp=int(time.time()) - 200), key,
                       algorithm="HS256")
    status, _ = await _status_with(gw, token)
    assert status == 200
    late = jwt.encode(_claims(exp=int(time.time()) - 400), key, algorithm="HS256")
    status, _ = await _status_with(gw, late)
    assert status == 401


async def test_expiry_follows_the_gateway_clock(start_gateway: GatewayFactory) -> None:
    clock = FakeClock()
    gw = await start_gateway(clock=clock, boards=False)
    clock.now += 900 + 299  # ttl + just inside the leeway
    status, _ = await _status_with(gw, gw.tokens["hub-a"])
    assert status == 200
    clock.now += 2
    status, err = await _status_with(gw, gw.tokens["hub-a"])
    assert status == 401 and "expired" in err["error"]["message"]  # type: ignore[index]


async def test_revoked_hub_is_refused_at_once(gw: Gateway) -> None:
    status, _ = await _status_with(gw, gw.tokens["hub-a"])
    assert status == 200
    await gw.app[DB].write(lambda tx: revoke_hub_tx(tx, "hub-a"))
    status, err = await _status_with(gw, gw.tokens["hub-a"])  # same, unexpired token
    assert status == 401 and "revoked" in err["error"]["message"]  # type: ignore[index]
    resp = await gw.client.post("/auth/token", json={"hub_id": "hub-a", "secret": SECRET_A})
    assert resp.status == 401
    status, _ = await _status_with(gw, gw.tokens["hub-b"])
    assert status == 200


async def test_per_hub_rate_limit_is_429_with_retry_after(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(rate_limit_per_s=0.5, rate_limit_burst=5, boards=False)
    statuses = []
    for _ in range(8):
        resp = await gw.client.get("/hub/boards", headers=gw.auth("hub-a"))
        statuses.append(resp.status)
        if resp.status == 429:
            body = await resp.json()
            assert int(resp.headers["Retry-After"]) >= 1
            assert body["error"]["code"] == "rate_limited"
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
    resp = await gw.client.get("/hub/boards", headers=gw.auth("hub-b"))  # its own bucket
    assert resp.status == 200


async def test_token_endpoint_is_rate_limited(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(auth_rate_limit_per_s=0.1, seeded=False, boards=False)
    statuses = []
    for _ in range(12):
        resp = await gw.client.post("/auth/token", json={"hub_id": "x", "secret": "y"})
        statuses.append(resp.status)
    assert statuses.count(429) == 2 and statuses[:10] == [401] * 10
