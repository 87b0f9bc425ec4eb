"""Serial ports: one supervised task per configured entry, one connection per opened device.

A ``PortWatcher`` expands its path or glob (again on every retry) and keeps one ``PortTask`` per
matching device. A ``PortTask`` opens the device with pyserial-asyncio-fast (never blocking the
loop), drives ``protocol.Link`` (receive_data / data_to_send / next_timeout / handle_timeout) and
hands its events to the hub. A missing or unplugged device is closed, retried with backoff, and
logged once when it drops and once when it returns.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import time
from collections.abc import Callable
from typing import Protocol

import serial  # type: ignore[import-untyped]
import serial_asyncio_fast

from edge_hub.backoff import Backoff
from edge_hub.config import PortSettings
from edge_hub.supervisor import sleep_beating
from protocol import Link, LinkError, Role
from protocol.events import LinkEvent
from protocol.messages import Message

log = logging.getLogger(__name__)

READ_SIZE = 4096
IDLE_WAKE_S = 1.0


class LinkHandler(Protocol):
    """What a connection reports to (the hub)."""

    async def on_events(self, conn: BoardConnection, events: list[LinkEvent]) -> None: ...

    def on_closed(self, conn: BoardConnection) -> None: ...


class BoardConnection:
    """One open serial device and its protocol link."""

    def __init__(self, port: str, settings: PortSettings, writer: asyncio.StreamWriter,
                 handler: LinkHandler) -> None:
        self.port = port
        self.addr = settings.addr
        self.link = Link(role=Role.HUB, addr=settings.addr, baud=settings.baud, key=None)
        self._writer = writer
        self.handler = handler
        self.uid: str | None = None
        self.opened_at = time.time()
        self.last_rx: float | None = None
        self.frames_tx = 0

    def send(self, message: Message) -> bool:
        """Queue a message on the link and write it out now. False if the link refused it."""
        try:
            self.link.send(message, time.monotonic())
        except LinkError as e:
            log.error("port %s (board %s): cannot send %s: %s", self.port, self.uid or "?",
                      type(message).__name__, e)
            return False
        self.frames_tx += 1
        self.flush()
        return True

    def flush(self) -> None:
        data = self.link.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def serve(self, reader: asyncio.StreamReader, beat: Callable[[], None]) -> None:
        """Pump bytes until the device goes away (EOF or an error)."""
        while True:
            now = time.monotonic()
            when = self.link.next_timeout()
            wait = IDLE_WAKE_S if when is None else min(IDLE_WAKE_S, max(0.0, when - now))
            data = b""
            try:
                async with asyncio.timeout(wait):
                    data = await reader.read(READ_SIZE)
                if not data:
                    raise ConnectionError("device closed (EOF)")
            except TimeoutError:
                pass
            now = time.monotonic()
            events: list[LinkEvent] = []
            if data:
                self.last_rx = time.time()
                events.extend(self.link.receive_data(data, now))
            when = self.link.next_timeout()
            if when is not None and when <= now:
                events.extend(self.link.handle_timeout(now))
            if events:
                # Effects are committed before the link's ACKs and answers are written out.
                await self.handler.on_events(self, events)
            self.flush()
            beat()

    def close(self) -> None:
        # abort, not close: close() first drains (tcdrain) in a worker thread, which blocks for
        # ever on an unplugged adapter or an unread pty. Unsent frames are resent by the link.
        transport = self._writer.transport
        if not transport.is_closing():  # a second close breaks serial_asyncio_fast (0.16)
            transport.abort()


def expand(pattern: str) -> list[str]:
    if glob.has_magic(pattern):
        return sorted(glob.glob(pattern))
    return [pattern]


class PortTask:
    """Keeps one device open, reopening it with backoff; logs each drop and return once."""

    def __init__(self, path: str, settings: PortSettings, handler: LinkHandler, *,
                 retry_initial_s: float, retry_max_s: float, beat: Callable[[], None]) -> None:
        self.path = path
        self.settings = settings
        self.handler = handler
        self.backoff = Backoff(retry_initial_s, retry_max_s)
        self.beat = beat
        self.up: bool | None = None
        self.reconnects = 0
        self.conn: BoardConnection | None = None

    def _down(self, why: str) -> None:
        if self.up is not False:
            log.warning("serial port %s unavailable: %s; retrying with backoff", self.path, why)
        self.up = False

    async def run(self) -> None:
        while True:
            self.beat()
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.path, baudrate=self.settings.baud)
            except (serial.SerialException, OSError, ValueError) as e:
                self._down(str(e))
                await sleep_beating(self.backoff.next_delay(), self.beat)
                continue
            if self.up is False:
                self.reconnects += 1
                log.warning("serial port %s is back", self.path)
            else:
                log.info("serial port %s open at %d baud", self.path, self.settings.baud)
            self.up = True
            self.backoff.reset()
            conn = BoardConnection(self.path, self.settings, writer, self.handler)
            self.conn = conn
            try:
                await conn.serve(reader, self.beat)
            except (serial.SerialException, OSError, ConnectionError) as e:
                self._down(str(e) or type(e).__name__)
            finally:
                self.conn = None
                conn.close()
                self.handler.on_closed(conn)
            await sleep_beating(self.backoff.next_delay(), self.beat)


class PortWatcher:
    """One [[boards]] entry: re-expands its glob and runs a PortTask per matching device."""

    def __init__(self, settings: PortSettings, handler: LinkHandler, *, retry_initial_s: float,
                 retry_max_s: float, beat: Callable[[], None]) -> None:
        self.settings = settings
        self.handler = handler
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.beat = beat
        self.tasks: dict[str, tuple[PortTask, asyncio.Task[None]]] = {}
        self._warned_empty = False

    async def run(self) -> None:
        backoff = Backoff(self.retry_initial_s, self.retry_max_s)
        try:
            while True:
                self.beat()
                paths = expand(self.settings.port)
                if not paths and not self._warned_empty:
                    log.warning("no serial port matches %s yet; watching for it",
                                self.settings.port)
                self._warned_empty = not paths
                for path in paths:
                    entry = self.tasks.get(path)
                    if entry is not None and entry[1].done():
                        exc = entry[1].exception()
                        log.error("port task %s ended (%r); restarting it", path, exc)
                        entry = None
                    if entry is None:
                        pt = PortTask(path, self.settings, self.handler,
                                      retry_initial_s=self.retry_initial_s,
                                      retry_max_s=self.retry_max_s, beat=self.beat)
                        self.tasks[path] = (pt, asyncio.create_task(pt.run(), name=f"port:{path}"))
                await sleep_beating(backoff.next_delay() if not paths else self.retry_max_s,
                                    self.beat)
        finally:
            running = [t for _, t in self.tasks.values()]
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)
