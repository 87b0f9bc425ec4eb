"""The C reference board (protocol/c): build it with the machine's cc, run it on a pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hub.conftest import MASTER_KEY, Site, make_site

C_DIR = Path(__file__).resolve().parents[2] / "protocol" / "c"
BUILD_TIMEOUT_S = 180
_KV = re.compile(r"(\w+)=(\S*)")


@dataclass(frozen=True)
class CBuild:
    """Where `make -C protocol/c BUILD=...` put the programs (inside the test's tmp dir)."""

    build: Path

    @property
    def board(self) -> Path:
        return self.build / "upv-board"

    def make(self, *targets: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", "-s", "-C", str(C_DIR), f"BUILD={self.build}",
             *targets], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)


@pytest.fixture(scope="session")
def cbuild(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CBuild]:
    if shutil.which("cc") is None and shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler (cc) on this machine: the C reference is not built")
    if shutil.which("make") is None:
        pytest.skip("no make on this machine: the C reference is not built")
    b = CBuild(tmp_path_factory.mktemp("cbuild") / "build")
    done = b.make("all")
    assert done.returncode == 0, f"C build failed:\n{done.stdout}\n{done.stderr}"
    yield b


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0.01)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks leaked: {leaked}"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with make_site(tmp_path) as s:
        yield s


@dataclass
class CBoard:
    """The C board process: commands on stdin, one event a line on stdout."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    exit_code: int | None = None

    async def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, prefix: str, timeout_s: float = 10.0, **want: str) -> dict[str, str]:
        """Read lines until one starts with `prefix` (and has the `want` key=values)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"C board exited waiting for {prefix!r}: {self.lines}")
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if not line.startswith(prefix + " ") and line != prefix:
                    continue
                kv = dict(_KV.findall(line))
                if all(kv.get(k) == v for k, v in want.items()):
                    return kv

    async def stop(self) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.send("quit")
            try:
                async with asyncio.timeout(3):
                    rest = await self.proc.stdout.read() if self.proc.stdout else b""
                    await self.proc.wait()
                self.lines.extend(rest.decode(errors="replace").splitlines())
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)


@contextlib.asynccontextmanager
async def c_board(cbuild: CBuild, link: Path, uid: bytes, *,
                  products: str = "espresso,latte,water") -> AsyncIterator[CBoard]:
    proc = await asyncio.create_subprocess_exec(
        str(cbuild.board), "--pty", str(link), "--uid", uid.hex(),
        "--master-key", MASTER_KEY.hex(), "--products", products, "--vend-ms", "100",
        "--hello-retry-ms", "300",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    board = CBoard(proc)
    try:
        yield board
    finally:
        board.exit_code = await board.stop()
