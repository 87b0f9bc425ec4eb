"""Hub sync: idempotent event batches, vend results driving orders, commands by long-poll and
WebSocket with per-hub seq, ack, resend from the cursor, and a gateway restart in between."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import WSMsgType

from cloud_gateway.keys import COMMANDS, DB

from .conftest import BOARD_A, BOARD_B, FakeClock, Gateway, GatewayFactory, Sandbox, paid_order


def ev(event_id: str, type: str, order_id: str | None = None, board: str = BOARD_A,
       **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": type, "board_uid": board, "order_id": order_id,
            "at": {"wall": time.time(), "synced": True}, "data": data}


async def post(gw: Gateway, events: list[dict[str, Any]], hub: str = "hub-a") -> list[Any]:
    _, body = await gw.call("POST", "/hub/events", hub, {"events": events}, expect=200)
    return [(r["id"], r["status"]) for r in body["results"]]


async def state(gw: Gateway, order_id: str, hub: str = "hub-a") -> str:
    _, order = await gw.call("GET", f"/orders/{order_id}", hub, expect=200)
    return str(order["state"])


async def test_vend_events_drive_the_order_and_are_idempotent(gw: Gateway,
                                                             sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    oid = order["order_id"]
    batch = [ev("e1", "vend_started", oid),
             ev("e2", "vend_result", oid, outcome="success", dispensed=1)]
    assert await post(gw, batch) == [("e1", "applied"), ("e2", "applied")]
    assert await state(gw, oid) == "fulfilled"
    # the whole batch again (a retry after a lost answer): same effect as once
    assert await post(gw, batch) == [("e1", "duplicate"), ("e2", "duplicate")]
    n = gw.app[DB].query("SELECT COUNT(*) FROM order_audit WHERE order_id = ?", (oid,))[0][0]
    assert n == 5
    # a late vend_started under a new id: recorded, ignored, state unchanged
    assert await post(gw, [ev("e3", "vend_started", oid)]) == [("e3", "ignored")]
    assert await state(gw, oid) == "fulfilled"


async def test_failed_and_not_vended_results_fail_the_order(gw: Gateway,
                                                           sandbox: Sandbox) -> None:
    a = await paid_order(gw, sandbox, key="fa")
    b = await paid_order(gw, sandbox, key="fb")
    c = await paid_order(gw, sandbox, key="fc")
    results = await post(gw, [
        ev("f1", "vend_result", a["order_id"], outcome="failed", dispensed=0, reason="jam"),
        ev("f2", "vend_result", b["order_id"], outcome="not_vended", dispensed=0),
        ev("f3", "vend_result", c["order_id"], outcome="unknown", dispensed=0)])
    assert [s for _, s in results] == ["applied", "applied", "applied"]
    assert await state(gw, a["order_id"]) == "failed"
    assert await state(gw, b["order_id"]) == "failed"
    assert await state(gw, c["order_id"]) == "paid"  # unknown: the reconciler flags it later


async def test_failed_result_with_every_unit_dispensed_fulfils_the_order(
        gw: Gateway, sandbox: Sandbox) -> None:
    """A board that resets after the last item dropped reports FAILED with dispensed ==
    quantity: goods left the machine, so the order is fulfilled (nothing to refund)."""
    whole = await paid_order(gw, sandbox, key="whole")
    part = await paid_order(gw, sandbox, key="part")
    results = await post(gw, [
        ev("w1", "vend_result", whole["order_id"], outcome="failed", dispensed=1, reason="reset"),
        ev("w2", "vend_result", part["order_id"], outcome="failed", dispensed=0, reason="jam")])
    assert [s for _, s in results] == ["applied", "applied"]
    assert await state(gw, whole["order_id"]) == "fulfilled"
    assert await state(gw, part["order_id"]) != "fulfilled"


async def test_bad_events_are_rejected_one_by_one(gw: Gateway, sandbox: Sandbox) -> None:
    mine = await paid_order(gw, sandbox, key="mine")
    theirs = await paid_order(gw, sandbox, key="theirs", hub="hub-b", board=BOARD_B)
    results = await post(gw, [
        ev("r1", "vend_started", theirs["order_id"], board=BOARD_B),  # hub-b's order
        ev("r2", "vend_result", mine["order_id"], outcome="maybe", dispensed=0),
        {"id": "r3", "type": "vend_started"},  # missing fields
        ev("r4", "teleport", mine["order_id"]),
        ev("r5", "vend_started", "ord_nope"),
        ev("r6", "vend_started", mine["order_id"])])  # valid: the batch is not all-or-nothing
    assert results == [("r1", "rejected"), ("r2", "rejected"), ("r3", "rejected"),
                       ("r4", "rejected"), ("r5", "rejected"), ("r6", "applied")]
    assert await state(gw, theirs["order_id"], "hub-b") == "paid"
    assert await state(gw, mine["order_id"]) == "dispensing"
    status, err = await gw.call("POST", "/hub/events", body={"events": [{}] * 501})
    assert status == 400 and "events" in err["error"]["details"]["invalid"]


async def test_board_hello_and_status_events(gw: Gateway) -> None:
    uid = "c3" * 12
    results = await post(gw, [
        ev("h1", "board_hello", board=uid, board_uid=uid, firmware="2.0", protocol_version=1,
           products=["water"]),
        ev("h2", "board_status", board=uid, state="idle", vends_ok=3),
        ev("h3", "telemetry", board=uid, temp_c=4)])
    assert [s for _, s in results] == ["applied"] * 3
    _, boards = await gw.call("GET", "/hub/boards", expect=200)
    assert uid in [b["board_uid"] for b in boards["boards"]]
    _, boards_b = await gw.call("GET", "/hub/boards", "hub-b", expect=200)
    assert uid not in [b["board_uid"] for b in boards_b["boards"]]
    # hub-b cannot take over hub-a's board
    assert await post(gw, [ev("h4", "board_hello", board=uid, board_uid=uid, firmware="x",
                               protocol_version=1, products=[])], hub="hub-b") == [
        ("h4", "rejected")]
    status, _ = await gw.call("PUT", f"/hub/boards/{uid}", "hub-b", {
        "board_uid": uid, "firmware": "x", "protocol_version": 1, "products": []})
    assert status == 403


async def test_long_poll_waits_for_a_command_and_ack_removes_it(gw: Gateway,
                                                                sandbox: Sandbox) -> None:
    _, empty = await gw.call("GET", "/hub/commands?after=0&wait=0", expect=200)
    assert empty == {"commands": [], "cursor": 0}
    poll = asyncio.ensure_future(gw.call("GET", "/hub/commands?after=0&wait=5", expect=200))
    await asyncio.sleep(0.05)
    assert not poll.done()
    order = await paid_order(gw, sandbox)
    _, batch = await asyncio.wait_for(poll, 3)
    assert [c["seq"] for c in batch["commands"]] == [1] and batch["cursor"] == 1
    assert batch["commands"][0]["order_id"] == order["order_id"]
    _, acked = await gw.call("POST", "/hub/commands/ack", body={"upto": 1}, expect=200)
    assert acked == {"acked": 1}
    _, after_ack = await gw.call("GET", "/hub/commands?after=0", expect=200)
    assert after_ack["commands"] == []
    status, err = await gw.call("POST", "/hub/commands/ack", body={"upto": 7})
    assert status == 400 and "upto" in err["error"]["details"]["invalid"]
    status, _ = await gw.call("GET", "/hub/commands?wait=999")
    assert status == 400


async def test_seq_is_per_hub_and_commands_are_private(gw: Gateway) -> None:
    queue = gw.app[COMMANDS]
    assert await queue.enqueue("hub-a", "config_changed", None, None, {"n": 1}) == 1
    assert await queue.enqueue("hub-b", "config_changed", None, None, {"n": 1}) == 1
    assert await queue.enqueue("hub-a", "config_changed", None, None, {"n": 2}) == 2
    _, a = await gw.call("GET", "/hub/commands?after=0", expect=200)
    _, b = await gw.call("GET", "/hub/commands?after=0", "hub-b", expect=200)
    assert [c["seq"] for c in a["commands"]] == [1, 2]
    assert [c["seq"] for c in b["commands"]] == [1]
    _, a_after = await gw.call("GET", "/hub/commands?after=1", expect=200)
    assert [c["data"]["n"] for c in a_after["commands"]] == [2]


async def test_vend_deadline_in_s_is_computed_when_sent(start_gateway: GatewayFactory,
                                                       sandbox: Sandbox) -> None:
    clock = FakeClock()
    gw = await start_gateway(clock=clock)
    await paid_order(gw, sandbox)
    _, first = await gw.call("GET", "/hub/commands?after=0", expect=200)
    clock.now += 100
    _, again = await gw.call("GET", "/hub/commands?after=0", expect=200)
    d1 = first["commands"][0]["data"]["vend_deadline_in_s"]
    d2 = again["commands"][0]["data"]["vend_deadline_in_s"]
    assert d1 == 120 and d2 == 20
    clock.now += 100
    _, late = await gw.call("GET", "/hub/commands?after=0", expect=200)
    assert late["commands"][0]["data"]["vend_deadline_in_s"] == 0


async def test_websocket_pushes_acks_and_resends_from_cursor(gw: Gateway) -> None:
    queue = gw.app[COMMANDS]
    for n in range(3):
        await queue.enqueue("hub-a", "config_changed", None, None, {"n": n})
    ws = await gw.client.ws_connect("/hub/ws?after=0", headers=gw.auth("hub-a"))
    got = [(await ws.receive_json(timeout=2))["command"]["seq"] for _ in range(3)]
    assert got == [1, 2, 3]
    await queue.enqueue("hub-a", "config_changed", None, None, {"n": 3})  # pushed live
    msg = await ws.receive_json(timeout=2)
    assert msg["type"] == "command" and msg["command"]["seq"] == 4
    await ws.send_json({"type": "ack", "upto": 2})
    ping = await ws.receive_json(timeout=2)  # idle: an app-level ping
    assert ping == {"type": "ping"}
    await ws.close()
    # reconnect from the hub's cursor (it applied 3): only 4 comes back; 1 and 2 are acked
    ws = await gw.client.ws_connect("/hub/ws?after=3", headers=gw.auth("hub-a"))
    msg = await ws.receive_json(timeout=2)
    assert msg["command"]["seq"] == 4
    await ws.close()
    ws = await gw.client.ws_connect("/hub/ws?after=0", headers=gw.auth("hub-a"))
    msg = await ws.receive_json(timeout=2)
    assert msg["command"]["seq"] == 3  # unacked, so resent to a hub that lost its cursor
    await ws.send_str("not json")
    while (await ws.receive(timeout=2)).type == WSMsgType.TEXT:  # seq 4 may come first
        pass
    assert ws.closed and ws.close_code == 1008
    assert gw.app[DB].query("SELECT COUNT(*) FROM commands WHERE acked = 0")[0][0] == 2


async def test_websocket_needs_a_token(gw: Gateway) -> None:
    resp = await gw.client.get("/hub/ws")
    assert resp.status == 401


async def test_restart_with_commands_pending_resends_from_cursor(
        start_gateway: GatewayFactory, sandbox: Sandbox) -> None:
    gw = await start_gateway()
    order = await paid_order(gw, sandbox)
    await gw.app[COMMANDS].enqueue("hub-a", "config_changed", None, None, {})
    await gw.client.close()  # the gateway stops with two commands unacked

    gw2 = await start_gateway(boards=False)
    ws = await gw2.client.ws_connect("/hub/ws?after=0", headers=gw2.auth("hub-a"))
    first = await ws.receive_json(timeout=2)
    second = await ws.receive_json(timeout=2)
    assert [first["command"]["seq"], second["command"]["seq"]] == [1, 2]
    assert first["command"]["type"] == "payment_confirmed"
    assert first["command"]["order_id"] == order["order_id"]
    await ws.send_json({"type": "ack", "upto": 2})
    await ws.close()
    await asyncio.sleep(0.05)
    _, batch = await gw2.call("GET", "/hub/commands?after=0", expect=200)
    assert batch["commands"] == []
    assert await gw2.app[COMMANDS].enqueue("hub-a", "config_changed", None, None, {}) == 3


async def test_old_event_ids_and_acked_commands_are_pruned(gw: Gateway) -> None:
    from cloud_gateway.hub_sync import HubSync

    assert await post(gw, [ev("old-1", "telemetry", t=1)]) == [("old-1", "applied")]
    for _ in range(2):
        await gw.app[COMMANDS].enqueue("hub-a", "config_changed", None, None, {})
    await gw.call("POST", "/hub/commands/ack", body={"upto": 1}, expect=200)
    future = int(time.time()) + 10
    assert await gw.app[DB].write(lambda tx: HubSync.prune_tx(tx, future)) == 2
    rows = gw.app[DB].query("SELECT seq, acked FROM commands")
    assert [(r["seq"], r["acked"]) for r in rows] == [(2, 0)]  # unacked stays, whatever its age
