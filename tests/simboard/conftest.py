"""Fixtures: a simulated board on a real pty, and the minimal hub side on its other end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_hub.simboard import Behaviour, SimBoard
from protocol import TEST_MASTER_KEY

from .minihub import MiniHub

UID = bytes.fromhex("534d0001000000000000002a")

Pair = tuple[SimBoard, MiniHub]


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on the loop."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done()
              and t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"


@pytest.fixture
async def make_pair(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Pair]]]:
    made: list[Pair] = []

    async def make(behaviour: Behaviour | None = None, *, hub_key: bytes = TEST_MASTER_KEY,
                   connect: bool = True, uid: bytes = UID, **hub: Any) -> Pair:
        board = SimBoard(uid, TEST_MASTER_KEY, link_path=tmp_path / f"board-{len(made)}",
                         behaviour=behaviour or Behaviour(hello_retry_s=0.2, seed=7))
        await board.start()
        minihub = MiniHub(board.port, hub_key, **hub)
        minihub.open()
        made.append((board, minihub))
        if connect:
            await board.wait_connected(3.0)
        return board, minihub

    yield make
    for board, minihub in made:
        await board.stop()
        minihub.close()
