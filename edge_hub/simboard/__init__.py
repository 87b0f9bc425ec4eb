"""A simulated STM32 vending board on a real pseudo-terminal: what a correct board does.

Built only on ``protocol`` (the board side of ``protocol.Link``), so the hub under test cannot
tell it from a board on a USB-serial cable. A firmware engineer can read ``board.py`` as the
reference behaviour, with pointers to docs/protocol.md.

Python API (tests, bench/site.py, the demo, chaos runs)::

    from edge_hub.simboard import SimBoard, Behaviour, KeyMode, VendPlan, RebootStage

    board = SimBoard(uid12, master_key, link_path=tmp / "board-1",   # stable symlink, optional
                     products=("espresso", "cappuccino"), behaviour=Behaviour(...))
    port = await board.start()          # pty created, HELLO sent; give `port` to the hub
    await board.wait_connected()        # HELLO_ACK received
    p = await board.buy("cappuccino", ["extra_shot"], 1)        # request + wait until closed
    p = await board.request("water", quantity=3, plan=VendPlan.jam(1))  # returns at the QR
    await board.cancel(p)               # customer cancel (CANCEL CUSTOMER)
    await board.wait_closed(p)
    p.state, p.qr.valid, p.dispensed, p.t_order_sent, p.t_qr, p.t_approved, p.t_result_sent
    board.ledger[order_ref].dispensed   # goods that physically left, per order (ground truth)
    board.flash                         # what survives a reset: last order, outcome, counts
    board.counters, board.link.stats, board.noise_counters
    await board.reboot()                # reset: new epoch, RAM lost, flash kept, HELLO again
    await board.unplug(); await board.replug()   # pty closed / new pty behind the same symlink
    board.set_noise(junk_rate=1e-3, flip_rate=1e-3)  # line noise, both directions
    await board.send_logs(1000)         # telemetry load (LOG frames as fast as the link takes)
    board.inject(msg); board.forge(msg) # chaos: any message signed as-is / unsigned by hand
    await board.stop()

Timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on the machine).
A purchase's mechanics come from its ``VendPlan``: ``VendPlan.ok()``, ``VendPlan.jam(n)``
(n items drop, then FAILED), ``VendPlan.reboot(RebootStage.STARTED)`` (reset mid-vend).
Board-wide behaviour comes from ``Behaviour``: ``key_mode`` (correct, none, wrong), line noise,
firmware version, timeouts.

Scripts (``script.parse``, ``runner.play``; ``--script`` / ``--scenario`` on the command line)
string purchases together: ``buy:cappuccino+extra_shot,wait_paid,vend_ok,buy:water*2,cancel:1``.

Command line: ``edge-hub sim-board --count 16 --dir /tmp/boards --scenario happy`` (see
``cli.py``), also ``python -m edge_hub.simboard``.

Modules: ``firmware`` (what a correct board does; start reading here), ``board`` (SimBoard:
its buttons), ``model`` (state table, flash, ledger, purchase records), ``qr`` (PAYMENT_QR
bitmap decoder), ``wire`` (pty + noise + Link), ``pty``, ``noise``, ``script``, ``runner``,
``cli``.
"""

from edge_hub.simboard.board import DEFAULT_PRODUCTS, TEST_MASTER_KEY, BoardError, SimBoard
from edge_hub.simboard.model import (
    Behaviour,
    BoardCounters,
    DispenseRecord,
    FlashState,
    KeyMode,
    Purchase,
    PurchaseState,
    QrSeen,
    RebootStage,
    VendPlan,
)
from edge_hub.simboard.qr import inspect_qr

__all__ = [
    "DEFAULT_PRODUCTS",
    "TEST_MASTER_KEY",
    "Behaviour",
    "BoardCounters",
    "BoardError",
    "DispenseRecord",
    "FlashState",
    "KeyMode",
    "Purchase",
    "PurchaseState",
    "QrSeen",
    "RebootStage",
    "SimBoard",
    "VendPlan",
    "inspect_qr",
]
