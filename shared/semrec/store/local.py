"""A throwaway redis-server on a free loopback port, for benchmarks and demos (tests use conftest's)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from semrec.errors import UserError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_redis(maxmemory: str | None = None) -> Iterator[str]:
    """Start redis-server (no persistence) and yield its URL; stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise UserError("redis-server not found on PATH (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="semrec-redis-") as directory:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", directory]  # fmt: skip
        if maxmemory:
            args += ["--maxmemory", maxmemory]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.time() > deadline or process.poll() is not None:
                        raise UserError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


class RedisProcess:
    """A redis-server on a fixed loopback port that can be killed, paused and restarted (fault benchmarks).
    With `appendonly` its data survives a SIGKILL (AOF, fsync always); without, a restart loses it."""

    def __init__(self, directory: str, appendonly: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UserError("redis-server not found on PATH (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.directory,
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise UserError("redis-server did not start") from None
                time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        import signal

        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            import signal

            self.signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
