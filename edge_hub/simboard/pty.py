"""A serial cable made of a pseudo-terminal.

The board keeps the *master* side; the hub opens the *slave* path (``/dev/pts/N``) exactly as it
opens ``/dev/ttyUSB0``. An optional stable symlink (``<dir>/board-3 -> /dev/pts/N``) plays the
part of udev's ``/dev/serial/by-path/...`` name: it is (re)pointed atomically at every plug-in
and removed at unplug, so a hub configured with a glob finds the board again after a replug.

Only non-blocking I/O on the event loop: ``loop.add_reader`` for input, ``os.write`` with a
user-space queue and ``loop.add_writer`` for output. Like a real UART, nothing waits for a slow
listener forever: past ``max_pending`` queued bytes the oldest output is dropped and counted
(``overruns``), which is what a board's TX FIFO does when nobody reads the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

READ_CHUNK = 65536
DEFAULT_MAX_PENDING = 1 << 20  # 1 MiB of output queued before the oldest is dropped


class PtyError(Exception):
    """The pseudo-terminal could not be created, or the line is unplugged."""


class PtyLine:
    """One end of a simulated serial line.

    ``on_data`` is called on the event loop with every chunk read from the line; ``on_hangup``
    (optional) when the master side fails (it does not on a healthy pty: we keep the slave open
    ourselves so the hub closing and reopening its end is not a hangup for the board).
    """

    def __init__(
        self,
        on_data: Callable[[bytes], None],
        *,
        link_path: Path | str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_hangup: Callable[[], None] | None = None,
    ) -> None:
        self._on_data = on_data
        self._on_hangup = on_hangup
        self.link_path = Path(link_path) if link_path is not None else None
        self.max_pending = max_pending
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._writer_armed = False
        self.bytes_written = 0
        self.bytes_read = 0
        self.overruns = 0  # bytes dropped because nobody drained the line

    # --- plumbing -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._master is not None

    @property
    def slave_path(self) -> str:
        """The path the hub opens (``/dev/pts/N``)."""
        if self._slave_path is None:
            raise PtyError("line is unplugged")
        return self._slave_path

    @property
    def port(self) -> str:
        """The path a hub should be configured with: the stable symlink if any, else the pty."""
        return str(self.link_path) if self.link_path is not None else self.slave_path

    def open(self) -> str:
        """Create the pty (raw mode, non-blocking master), point the symlink at it, start reading.

        Returns the slave path. Must be called from a running event loop.
        """
        if self._master is not None:
            raise PtyError("line is already open")
        self._loop = asyncio.get_running_loop()
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise PtyError(f"cannot create a pseudo-terminal: {exc}") from exc
        # Raw mode on the slave (the termios of a pty live on the slave side): no echo, no line
        # discipline, no CR/LF translation, 8 data bits. The hub sets its own mode on open too.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self.link_path is not None:
            _point_symlink(self.link_path, self._slave_path)
        self._loop.add_reader(master, self._readable)
        logger.debug("pty open: %s (link %s)", self._slave_path, self.link_path)
        return self._slave_path

    def close(self) -> None:
        """Pull the cable: stop I/O, drop queued output, close both fds, remove the symlink."""
        if self._master is None:
            return
        loop = self._loop
        assert loop is not None
        loop.remove_reader(self._master)
        if self._writer_armed:
            loop.remove_writer(self._master)
            self._writer_armed = False
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(self.link_path) == self._slave_path:
                    self.link_path.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        logger.debug("pty closed: %s", self._slave_path)
        self._master = self._slave = None
        self._slave_path = None
        self._pending.clear()
        self._pending_bytes = 0

    # --- data -----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue bytes for the line; written as soon as the pty accepts them."""
        if not data or self._master is None:
            return
        if not self._pending:
            try:
                n = os.write(self._master, data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self._hangup(exc)
                return
            self.bytes_written += n
            if n == len(data):
                return
            data = data[n:]
        self._pending.append(memoryview(data))
        self._pending_bytes += len(data)
        while self._pending_bytes > self.max_pending and self._pending:
            dropped = self._pending.popleft()
            self._pending_bytes -= len(dropped)
            self.overruns += len(dropped)
        if not self._writer_armed and self._pending:
            assert self._loop is not None
            self._loop.add_writer(self._master, self._writable)
            self._writer_armed = True

    @property
    def pending(self) -> int:
        """Bytes queued in user space, not yet accepted by the pty."""
        return self._pending_bytes

    def _writable(self) -> None:
        assert self._master is not None and self._loop is not None
        while self._pending:
            chunk = self._pending[0]
            try:
                n = os.write(self._master, chunk)
            except BlockingIOError:
                return
            except OSError as exc:
                self._hangup(exc)
                return
            self.bytes_written += n
            self._pending_bytes -= n
            if n < len(chunk):
                self._pending[0] = chunk[n:]
                return
            self._pending.popleft()
        self._loop.remove_writer(self._master)
        self._writer_armed = False

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # every slave fd closed: cannot happen while we hold one
                self._hangup(exc)
                return
            raise
        if data:
            self.bytes_read += len(data)
            self._on_data(data)

    def _hangup(self, exc: OSError) -> None:
        logger.warning("pty %s failed: %s", self._slave_path, exc)
        self.close()
        if self._on_hangup is not None:
            self._on_hangup()


def _point_symlink(link: Path, target: str) -> None:
    """Atomically make ``link`` point at ``target`` (like udev replacing a by-path link)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
