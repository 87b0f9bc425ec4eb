"""The script language, and scripts played against the minimal hub."""

from __future__ import annotations

import pytest

from edge_hub.simboard import PurchaseState, RebootStage, VendPlan
from edge_hub.simboard.runner import play
from edge_hub.simboard.script import (
    SCENARIOS,
    Buy,
    Ending,
    Logs,
    Noise,
    ScriptError,
    Sleep,
    Unplug,
    parse,
    scenario,
)
from protocol import Cancel, CancelReason, Log, VendResult


def test_parse_a_full_script() -> None:
    steps = parse("buy:cappuccino+extra_shot+oat*2,wait_paid,vend_partial:1,sleep:0.5,"
                  "buy:espresso,cancel:2,buy:latte,expire,junk:0.01,flip:0.002,unplug:1,"
                  "logs:5,buy:water,reboot_at:dispensing")
    assert steps[0] == Buy("cappuccino", ("extra_shot", "oat"), 2, Ending.PAY, 0.0,
                           VendPlan.jam(1))
    assert steps[1] == Sleep(0.5)
    assert steps[2] == Buy("espresso", ending=Ending.CANCEL, cancel_after_s=2.0)
    assert steps[3] == Buy("latte", ending=Ending.EXPIRE)
    assert steps[4:8] == [Noise(junk_rate=0.01), Noise(flip_rate=0.002), Unplug(1.0), Logs(5)]
    assert steps[8] == Buy("water", plan=VendPlan.reboot(RebootStage.DISPENSING))
    assert steps[8].expected == {PurchaseState.INTERRUPTED}
    assert steps[0].expected == {PurchaseState.FAILED}


@pytest.mark.parametrize(("text", "where", "why"), [
    ("", 1, "empty"),
    ("wait_paid", 1, "must follow a buy"),
    ("buy:", 1, "needs a product"),
    ("buy:x*0", 1, "outside"),
    ("buy:x+,vend_ok", 1, "empty product or option"),
    ("buy:x,cancel,vend_ok", 3, "must follow buy"),
    ("buy:x*2,vend_partial:2", 2, "less than the quantity"),
    ("buy:x,reboot_at:never", 2, "reboot_at needs one of"),
    ("buy:x,junk:1.5", 2, "rate must be"),
    ("buy:x,sleep:soon", 2, "expected seconds"),
    ("buy:x,dance", 2, "unknown step"),
])
def test_bad_scripts_say_where_and_why(text: str, where: int, why: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse(text)
    assert info.value.index + 1 == where
    assert why in str(info.value)


def test_every_named_scenario_parses() -> None:
    for name in SCENARIOS:
        assert scenario(name)
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("nope")


async def test_play_a_tour(make_pair) -> None:
    board, hub = await make_pair(auto_approve_s=0.05, expires_in_s=1)
    played = await play(board, parse(
        "buy:cappuccino+extra_shot,wait_paid,vend_ok,buy:water*2,wait_paid,vend_partial:1,"
        "buy:espresso,cancel:0.01,logs:3"))
    assert [p.purchase.state for p in played] == [
        PurchaseState.VENDED, PurchaseState.FAILED, PurchaseState.CANCELLED]
    assert all(p.as_expected for p in played)
    await hub.until(lambda: len(hub.messages(VendResult)) == 2 and len(hub.messages(Log)) == 3)
    assert [r.dispensed for r in hub.messages(VendResult)] == [1, 1]
    assert hub.messages(Cancel)[0].reason == CancelReason.CUSTOMER


async def test_play_expire_without_a_payer(make_pair) -> None:
    board, _hub = await make_pair(expires_in_s=1)
    (played,) = await play(board, parse("buy:espresso,expire"))
    assert played.purchase.state is PurchaseState.EXPIRED and played.as_expected
