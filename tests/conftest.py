"""Shared fixtures: tiny datasets built in code, a real redis-server on a free loopback port."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# Tests never touch the network or download weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def dataset_path(name: str) -> Path:
    path = SHARED_DATASETS / name
    if not (path / "interactions.csv.gz").exists():
        pytest.skip(f"real dataset {name} not present at {path} (../shared/datasets beside the repo)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server process on loopback, in its own temp dir."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it bootstraps it)")
        self.password = password
        # the port is picked free and bound a moment later by redis-server; another process can take it in
        # between, so a server that exits at start-up is retried on a new port
        for _attempt in range(3):
            self.port = free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(directory)]  # fmt: skip
            if password:
                args += ["--requirepass", password]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 60
            while time.time() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        pytest.fail("redis-server did not start")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_synthetic_shared():
    """The session-wide original of `tiny_synthetic`: read-only (module fixtures deep-copy it)."""
    from semrec_worker.data import DataConfig, load_dataset

    return load_dataset(DataConfig(data="synthetic:users=300,items=200,avg_len=10,seed=1"))


@pytest.fixture
def tiny_synthetic(tiny_synthetic_shared):
    """A small synthetic dataset (seconds to train on): built once, each test gets its own deep copy, so a
    test that edits an item or a sequence cannot change what later tests train on."""
    return copy.deepcopy(tiny_synthetic_shared)


SMALL = "synthetic:users=60,items=30,avg_len=6,seed=3"  # a catalogue small enough for the tiny LM's methods


@pytest.fixture(scope="session")
def small_shared():
    """The session-wide original of `small`: read-only (module fixtures deep-copy it)."""
    from semrec_worker.data import DataConfig, load_dataset

    return load_dataset(DataConfig(data=SMALL))


@pytest.fixture
def small(small_shared):
    """Each test gets its own copy of the small catalogue: edits cannot leak into later tests."""
    return copy.deepcopy(small_shared)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
