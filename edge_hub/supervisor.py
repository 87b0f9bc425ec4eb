"""Supervised long-lived tasks: a crash is logged and the task restarted, never silently dead.

Each task reports progress with ``beat()``; the systemd watchdog is pinged only while every task
is alive and has beaten within the stall limit (see ``healthy``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from edge_hub.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TaskState:
    name: str
    factory: Callable[[], Awaitable[None]]
    last_beat: float = field(default_factory=time.monotonic)
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, *, restart_initial_s: float = 0.2, restart_max_s: float = 10.0) -> None:
        self._tasks: dict[str, TaskState] = {}
        self._initial = restart_initial_s
        self._max = restart_max_s
        self._stopping = False

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        st = TaskState(name, factory)
        self._tasks[name] = st
        st.task = asyncio.create_task(self._run(st), name=f"supervised:{name}")

    def beat(self, name: str) -> None:
        st = self._tasks.get(name)
        if st is not None:
            st.last_beat = time.monotonic()

    async def _run(self, st: TaskState) -> None:
        backoff = Backoff(self._initial, self._max)
        while not self._stopping:
            started = time.monotonic()
            try:
                await st.factory()
                if self._stopping:
                    return
                st.last_error = "returned"
                log.error("task %s returned unexpectedly; restarting it", st.name)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                st.last_error = f"{type(e).__name__}: {e}"
                log.exception("task %s crashed; restarting it", st.name)
            st.restarts += 1
            if time.monotonic() - started > 60:
                backoff.reset()
            st.last_beat = time.monotonic()
            await asyncio.sleep(backoff.next_delay())

    def healthy(self, stall_s: float) -> tuple[bool, str]:
        now = time.monotonic()
        for st in self._tasks.values():
            if st.task is None or st.task.done():
                return False, f"task {st.name} is not running"
            if now - st.last_beat > stall_s:
                return False, f"task {st.name} made no progress for {now - st.last_beat:.0f} s"
        return True, "ok"

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {n: {"restarts": s.restarts, "last_error": s.last_error}
                for n, s in self._tasks.items()}

    async def stop(self) -> None:
        self._stopping = True
        tasks = [st.task for st in self._tasks.values() if st.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


BEAT_EVERY_S = 1.0


async def sleep_beating(delay: float, beat: Callable[[], None]) -> None:
    """Sleep, reporting progress every second: an idle or backing-off task is not a stuck one."""
    end = time.monotonic() + delay
    while True:
        beat()
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(BEAT_EVERY_S, left))


async def await_beating(aw: Awaitable[T], beat: Callable[[], None]) -> T:
    """Await a (time-limited) call such as a long-poll, reporting progress while it waits."""
    task = asyncio.ensure_future(aw)
    try:
        while True:
            beat()
            done, _ = await asyncio.wait({task}, timeout=BEAT_EVERY_S)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
