"""Child processes in their own process groups, stopped cleanly or killed, never left behind.

Every child is started with ``start_new_session=True``: it leads a process group of its own, so a
terminal's Ctrl-C reaches only the parent (which then stops the children in order), and a stop or
a kill reaches every process the child started. ``stop`` is SIGTERM to the group, a wait, then
SIGKILL to the group on timeout; ``kill`` is SIGKILL at once (a power cut, for chaos runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProcError(RuntimeError):
    """A child process could not be started or died while it was needed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One long-running child: ``argv`` with ``env``, stdout and stderr appended to ``log_path``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 log_path: Path, *, stop_timeout_s: float = 10.0) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ProcError(f"{self.name} was never started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def start(self) -> None:
        if self.running:
            raise ProcError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        log.debug("%s started, pid %d", self.name, self._proc.pid)

    async def stop(self) -> int | None:
        """SIGTERM to the group, wait up to ``stop_timeout_s``, then SIGKILL; the exit code."""
        p = self._proc
        if p is None:
            return None
        if p.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(p.wait(), self.stop_timeout_s)
            except TimeoutError:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killed", self.name, p.pid,
                            self.stop_timeout_s)
        # whatever is left in the group (the leader or anything it started) goes now
        self._signal_group(signal.SIGKILL)
        await p.wait()
        return p.returncode

    async def kill(self) -> None:
        """SIGKILL the whole group now and reap it: what a power cut does to the process."""
        p = self._proc
        if p is None:
            return
        self._signal_group(signal.SIGKILL)
        await p.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        p = self._proc
        if p is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)  # the child leads its own group (start_new_session)

    def tail(self, lines: int = 20) -> str:
        """The end of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def until(what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float,
                every_s: float = 0.05, *, errors: tuple[type[BaseException], ...] = (OSError,),
                alive: Proc | None = None) -> T:
    """Poll ``check`` until it returns something truthy; ``TimeoutError`` naming ``what`` after
    ``timeout_s``. ``errors`` raised by ``check`` count as "not yet". With ``alive``, a child
    that exits meanwhile is a ``ProcError`` with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(*errors):
            result = await check()
            if result:
                return result
        if alive is not None and not alive.running:
            raise ProcError(f"{alive.name} exited with {alive.returncode} while waiting for "
                            f"{what}:\n{alive.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(every_s)
