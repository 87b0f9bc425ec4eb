"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
log in, watch a board go through a purchase live, take it out of service, lose the hub."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_hub.status import StatusSettings, create_status_app
from edge_hub.status.events import close_streams

from .conftest import PASSWORD
from .fake_hub import FakeHub, board_uid

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 5000
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
PURCHASE = [
    ("awaiting_payment", "payment_pending"),
    ("approved", "paid"),
    ("vending", "dispensing"),
    ("done", "fulfilled"),
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"browser test skipped: Debian chromium is not installed at {CHROMIUM} (make browser)",
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def live_updates(page: Any) -> int:
    return int(await page.get_attribute("body", "data-live-updates") or 0)


async def test_purchase_live_in_chromium(
    aiohttp_server: Any, hub: FakeHub, settings: StatusSettings, browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    uid, hostile = board_uid(1), board_uid(3)
    hub.update_board(board_uid(2), link_up=False, counters={"crc_errors": 17, "retransmits": 4})
    hub.update_board(hostile, firmware=XSS, port=XSS)
    hub.add_log("WARNING", "<b>frame</b> dropped: bad CRC", board_uid=board_uid(2))
    server = await aiohttp_server(create_status_app(hub, settings))
    base = f"http://127.0.0.1:{server.port}/"

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))

    # without a session the page is the login form; a wrong password says so
    await page.goto(base)
    assert page.url == base + "login"
    await page.fill("input[name=name]", "tech")
    await page.fill("input[name=password]", "wrong")
    await page.click("button[type=submit]")
    await expect(page.locator(".login-error")).to_have_text("wrong user name or password")
    problems.clear()  # the 401 of the refused login is logged by the browser
    await page.fill("input[name=name]", "tech")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base)

    card = page.locator(f'article[data-board-uid="{uid}"]')
    await expect(page.locator("article.board")).to_have_count(3)
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator(f'article[data-board-uid="{board_uid(2)}"] .link')).to_have_text(
        "link down"
    )
    await expect(page.locator("#summary")).to_contain_text("no link")
    loads_before = len(loads)
    await page.evaluate("window.__sameDocument = true")
    before = await live_updates(page)

    # a purchase, watched live: each step reaches the page through the event stream
    for vend_state, order_state in PURCHASE:
        hub.purchase_step(uid, "ord_live_1", vend_state, order_state)
        await expect(card.locator(".vend")).to_have_text(vend_state)
        if vend_state == "awaiting_payment":
            await expect(card.locator(".order-box .amount")).to_have_text("₹25.00")
            await expect(card.locator(".qr svg path")).to_have_count(1)
            box = await card.locator(".qr svg").bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100
            await page.screenshot(path=str(tmp_path / "awaiting_payment.png"))
    await expect(card.locator(".no-order")).to_be_visible()
    order_row = page.locator('#orders tr[data-order-id="ord_live_1"]')
    await expect(order_row).to_contain_text("fulfilled")
    await order_row.locator("summary").click()
    await expect(order_row.locator(".audit li")).to_have_count(len(PURCHASE))
    updates = await live_updates(page) - before
    assert updates >= 2 * len(PURCHASE)  # an order and a board change per step
    assert await page.locator("#live-count").text_content() == str(await live_updates(page))

    # take it out of service from the page, with a reason
    await card.locator(".svc-toggle").click()
    await card.locator(".reason-form input").fill("coin jam")
    await card.locator(".reason-form button[type=submit]").click()
    await expect(card.locator(".service")).to_have_text("out of service")
    await expect(card).to_contain_text("out of service: coin jam")
    assert ("set_in_service", (uid, False, "coin jam")) in hub.calls
    await expect(page.locator("#summary")).to_contain_text("out of service")

    # sync now
    await page.click("#sync-now")
    await expect(page.locator("#action-msg")).to_have_text("Sync done.")
    assert ("sync_now", ()) in hub.calls

    # field strings are shown as text, never run
    hostile_card = page.locator(f'article[data-board-uid="{hostile}"]')
    await expect(hostile_card).to_contain_text(XSS)
    await expect(page.locator("#logs")).to_contain_text("<b>frame</b> dropped")
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("#boards img, #boards script, #logs b").count() == 0

    await page.screenshot(path=str(tmp_path / "status.png"), full_page=True)

    assert problems == []  # no CSP violation, no script error, no failed request
    script_errors: list[str] = []
    page.on("pageerror", lambda e: script_errors.append(str(e)))

    # the link to the hub drops and new connections are refused: the page says so plainly,
    # then reconnects by itself once the hub answers again
    await page.route("**/api/events", lambda route: route.abort("connectionrefused"))
    await close_streams(server.app)
    await expect(page.locator("#conn-lost")).to_be_visible()
    await expect(page.locator("#live")).to_have_text("connection lost")
    await page.screenshot(path=str(tmp_path / "connection_lost.png"))
    await page.unroute("**/api/events")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#conn-lost")).to_be_hidden()
    hub.update_board(uid, firmware="vend-fw 1.3.0")  # and changes flow again
    await expect(card).to_contain_text("vend-fw 1.3.0")

    # rupees from integer paise, exactly; a non-integer amount is shown as it came, not rounded
    # the last: no amount at all shows an en dash
    amounts = await page.evaluate(
        """import("./static/dom.js").then((m) => [2500, 5, 1999, 123456789, -250, 12.5, null]
             .map((p) => m.fmtAmount(p, "INR")))"""
    )
    assert amounts == ["₹25.00", "₹0.05", "₹19.99", "₹12,34,567.89", "-₹2.50", "12.5", "\u2013"]

    # readable on a phone: nothing wider than the screen
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(card).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)

    assert await page.evaluate("window.__sameDocument") is True  # never reloaded
    assert len(loads) == loads_before
    assert script_errors == []
    await context.close()
