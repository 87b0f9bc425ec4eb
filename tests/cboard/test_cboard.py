"""The C reference of the board side (protocol/c): its unit tests over every vector, and a full
purchase by the C board through the real hub, gateway and Razorpay sandbox on a pseudo-terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cboard.conftest import C_DIR, CBuild, c_board
from tests.hub.conftest import Site, eventually

VECTORS = C_DIR.parents[1] / "docs" / "protocol_vectors.json"
SUMMARY = re.compile(r"c-reference vectors=(\d+) passed=(\d+) failed=(\d+)")
REFUND_STATES = ("failed", "refund_pending", "refunded")


def _vector_items() -> int:
    v = json.loads(VECTORS.read_text(encoding="utf-8"))
    return (1 + len(v["crc"]["samples"]) + len(v["cobs"]) + 1 + len(v["conversation"])
            + len(v["negative"]))


def test_c_unit_tests_check_every_vector(cbuild: CBuild) -> None:
    run = cbuild.make("test")
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, run.stdout + run.stderr
    m = SUMMARY.fullmatch(lines[-1])
    assert m, f"last line is not the summary: {lines[-3:]}"
    vectors, passed, failed = (int(g) for g in m.groups())
    assert failed == 0
    assert vectors == _vector_items()  # every item of docs/protocol_vectors.json
    assert passed > vectors  # the vector cases plus the junk/bit-flip/replay/transport cases


async def _gateway_state(site: Site, order_id: str) -> str:
    return str((await site.order(order_id))["state"])


async def test_c_board_full_purchase_and_a_jam(cbuild: CBuild, site: Site, tmp_path: Path) -> None:
    await site.start_hub()
    async with c_board(cbuild, tmp_path / "tty-01", bytes([0xC0, 0x01]) + bytes(10)) as board:
        hello = await board.expect("connected", 10)
        assert hello == {"version": "1", "in_service": "1", "heartbeat_s": hello["heartbeat_s"]}
        await board.expect("status_sent")

        # espresso 2000 + extra-shot 1500 paise: the price comes from the gateway's catalog.
        await board.send("buy espresso extra-shot 1")
        qr = await board.expect("qr", 10)
        assert qr["amount_paise"] == "3500" and qr["currency"] == "INR"
        assert qr["uri"].startswith("upi://pay?") and int(qr["qr_size"]) > 0
        order = await site.order(qr["order_ref"])
        assert order["amount"] == 3500 and order["state"] == "payment_pending"
        await site.pay(order)
        await board.expect("vend_started", 10, order_ref=qr["order_ref"])
        done = await board.expect("vend_result", 10, order_ref=qr["order_ref"])
        assert done["outcome"] == "SUCCESS" and done["dispensed"] == "1"
        await eventually(lambda: _is(site, qr["order_ref"], ("fulfilled",)), 10, "fulfilled")

        # The motor jams: nothing leaves the machine, the hub reports it, the gateway refunds.
        await board.send("plan jam")
        await board.send("buy latte - 1")
        qr2 = await board.expect("qr", 10)
        assert qr2["amount_paise"] == "3500" and qr2["order_ref"] != qr["order_ref"]
        await site.pay(await site.order(qr2["order_ref"]))
        bad = await board.expect("vend_result", 10, order_ref=qr2["order_ref"])
        assert bad["outcome"] == "FAILED" and bad["dispensed"] == "0" and bad["reason"] == "5"
        await eventually(lambda: _is(site, qr2["order_ref"], REFUND_STATES), 10, "refund")

        assert site.hub is not None
        rows = {r["order_id"]: r for r in await site.hub.view.orders()}
        assert [a["to"] for a in rows[qr["order_ref"]]["audit"]] == [
            "ordering", "awaiting_payment", "approved", "vending", "done"]
        boards = site.hub.view.boards()
        assert boards[0]["firmware"] == "c-ref-1.0"
        assert boards[0]["counters"]["mac_failures"] == 0
        assert boards[0]["counters"]["crc_errors"] == 0
    assert board.exit_code == 0 and board.lines[-1] == "bye", board.lines[-5:]
    assert not (tmp_path / "tty-01").exists()  # the board removed its pty symlink


async def _is(site: Site, order_id: str, states: tuple[str, ...]) -> bool:
    return await _gateway_state(site, order_id) in states


async def test_c_board_reset_mid_vend_is_asked_and_refunded(cbuild: CBuild, site: Site,
                                                            tmp_path: Path) -> None:
    """Power cut while the motors run: the C board boots with a new epoch, the hub asks it
    (STATUS_REQUEST), its MAC'd STATUS says FAILED (reset mid-vend, 0 dispensed), the gateway
    refunds. The vend is never resumed (docs/protocol.md 11.4)."""
    await site.start_hub()
    async with c_board(cbuild, tmp_path / "tty-02", bytes([0xC0, 0x02]) + bytes(10)) as board:
        await board.expect("connected", 10, in_service="1")
        await board.send("plan hang")
        await board.send("buy water - 1")
        qr = await board.expect("qr", 10)
        assert qr["amount_paise"] == "1000"
        await site.pay(await site.order(qr["order_ref"]))
        await board.expect("vend_started", 10, order_ref=qr["order_ref"])
        await board.send("reboot")
        await board.expect("connected", 10, in_service="1")
        await board.expect("status_request", 10)
        status = await board.expect("status_sent", 10, last_order=qr["order_ref"])
        assert status["last_outcome"] == "FAILED"
        await eventually(lambda: _is(site, qr["order_ref"], REFUND_STATES), 10, "refund")
        assert site.hub is not None
        row = (await site.hub.view.orders())[0]
        assert row["order_id"] == qr["order_ref"] and row["state"] == "failed"
        assert not any(line.startswith("vend_result") for line in board.lines)
