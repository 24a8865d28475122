"""Start and stop the local serving stack (a loopback redis-server, the ranker) for the demo and benchmarks.

Everything here stops exactly the processes it started (by their pid, SIGTERM then SIGKILL), also when
the caller fails or is interrupted: use `LocalStack` as a context manager.

    with LocalStack(workdir) as stack:
        redis_url = stack.redis().url
        ...  # semrec publish --run RUN_DIR --redis {redis_url} --catalog demo
        ranker = stack.ranker(redis_url, catalog="demo")
        httpx.post(f"{ranker.url}/recommend", json={"history": [...]})
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from semrec.cli_builder import echo
from semrec.errors import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


class ManagedProcess:
    """A child process with its log file, started and waited for until `ready()` says so."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        timeout_s: float = 60.0,
        url: str = "",
    ) -> None:
        self.name = name
        self.url = url
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.process.poll() is not None:
                self.stop()
                raise UserError(f"{name} exited with status {self.process.returncode}: see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise UserError(f"{name} was not ready after {timeout_s:.0f} s: see {self.log_path}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_redis(directory: Path, port: int | None = None) -> ManagedProcess:
    """A throw-away redis-server on loopback (no persistence), in `directory`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise UserError("redis-server is not installed: run `make bootstrap` (it installs it with apt)")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(directory)]
    return ManagedProcess(
        "redis-server", command, directory / "redis.log", lambda: port_open(port), timeout_s=15,
        url=f"redis://127.0.0.1:{port}/0",
    )


def ranker_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "semrec.cli", "serve", "--host", host, "--port", str(port)]


def start_ranker(
    redis_url: str,
    catalog: str,
    log_path: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 120.0,
    command: Sequence[str] | None = None,
) -> ManagedProcess:
    """`semrec serve` on loopback with SEMREC_* settings, waited for until GET /readyz answers 200."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {"SEMREC_REDIS_URL": redis_url, "SEMREC_CATALOG": catalog, **(env or {})}
    return ManagedProcess(
        "ranker", command or ranker_command("127.0.0.1", port), log_path, lambda: http_ok(f"{url}/readyz"),
        env=settings, timeout_s=timeout_s, url=url,
    )


class LocalStack(ExitStack):
    """Processes started for one job; all of them are stopped (last started first) on exit."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = Path(workdir)

    def _own(self, process: ManagedProcess) -> ManagedProcess:
        echo(f"started {process.name} (pid {process.pid}) {process.url}  log: {process.log_path}")
        self.callback(self._stop, process)
        return process

    @staticmethod
    def _stop(process: ManagedProcess) -> None:
        process.stop()
        echo(f"stopped {process.name} (pid {process.pid})")

    def redis(self) -> ManagedProcess:
        return self._own(start_redis(self.workdir / "redis"))

    def ranker(self, redis_url: str, catalog: str, **kwargs) -> ManagedProcess:
        return self._own(start_ranker(redis_url, catalog, self.workdir / "ranker.log", **kwargs))
