"""The store and the ranker on a real Redis Cluster: three redis-server masters in cluster mode on loopback
ports, joined with `redis-cli --cluster create`, started and stopped by the fixture itself."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import free_port
from pydantic import SecretStr
from semrec.bundle import Bundle
from semrec.settings import RedisSettings
from semrec.store import (
    current_version,
    keys,
    list_versions,
    load_bundle,
    publish_bundle,
    read_history,
    write_histories,
)
from semrec.store.bundles import PAUSE_AT_ENV, PAUSE_FILE_ENV
from serving_helpers import ready_version, tiny_bundle, wait_until

KEY = b"cluster-signing-key-".ljust(32, b"x")


class RedisCluster:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.processes: list[subprocess.Popen] = []
        self.ports: list[int] = []
        for i in range(masters):
            node_dir = directory / f"node{i}"
            node_dir.mkdir()
            port = free_port()
            # the bus port defaults to port + 10000, which can be above 65535 or taken: pick a free one
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                    "--cluster-port", str(free_port()),
                    "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
                    "--dir", str(node_dir)]  # fmt: skip
            self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            self._wait_for(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        result = subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0",
                                 "--cluster-yes"], capture_output=True, text=True, timeout=60)  # fmt: skip
        if result.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
        deadline = time.time() + 30
        while time.time() < deadline:
            infos = [subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True,
                                    text=True).stdout for p in self.ports]  # fmt: skip
            if all("cluster_state:ok" in info for info in infos):
                return
            time.sleep(0.2)
        self.stop()
        pytest.fail("the Redis Cluster did not reach cluster_state:ok")

    @staticmethod
    def _wait_for(port: int) -> None:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"redis-server (cluster node) on {port} did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def settings(self, **overrides) -> RedisSettings:
        return RedisSettings(redis_url=SecretStr(self.url), redis_cluster=True, **overrides)

    def keys_per_node(self) -> list[int]:
        return [int(subprocess.run(["redis-cli", "-p", str(p), "dbsize"], capture_output=True, text=True).stdout)
                for p in self.ports]  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RedisCluster]:
    if shutil.which("redis-cli") is None or shutil.which("redis-server") is None:
        pytest.skip("redis-cli / redis-server not installed (apt-get install redis-server redis-tools)")
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def client(cluster):
    client = cluster.settings().client()
    client.flushall()  # every node (RedisCluster broadcasts it)
    return client


def test_publish_switch_and_load_on_a_cluster(client):
    for seed in range(4):
        publish_bundle(client, "shop", tiny_bundle(300, seed=seed), chunk_bytes=4096, keep=2, signing_key=KEY)
    assert current_version(client, "shop") == "4" and list_versions(client, "shop") == ["3", "4"]
    loaded = load_bundle(client, "shop", signing_key=KEY)
    np.testing.assert_array_equal(loaded.bundle.item_vectors, tiny_bundle(300, seed=3).item_vectors)
    # every bundle key and the pointer are in the catalogue's slot: one node holds them all
    slot = client.keyslot(keys.current("shop"))
    assert {client.keyslot(k) for k in client.keys(keys.bundle_pattern("shop", "4"))} == {slot}
    assert client.keyslot(keys.versions("shop")) == slot


def test_histories_spread_over_the_cluster(client, cluster):
    n_users = 600
    written = write_histories(client, "shop", ((f"user-{u}", [f"i{u % 50}", "i1"]) for u in range(n_users)),
                              cap=10, ttl_s=600)  # fmt: skip
    assert written == n_users
    assert read_history(client, "shop", "user-7", 10) == ["i7", "i1"]
    per_node = cluster.keys_per_node()
    assert sum(per_node) == n_users and min(per_node) > n_users / 6, per_node  # spread, not one slot
    assert 0 < client.ttl(keys.user_history("shop", "user-7")) <= 600


def test_the_ranker_serves_and_reloads_from_a_cluster(client, cluster):
    from hardening_helpers import hardened_ranker
    from semrec_ranker.core.config import RankerSettings

    publish_bundle(client, "shop", tiny_bundle(300, seed=1), signing_key=KEY)
    settings = RankerSettings(redis_url=SecretStr(cluster.url), redis_cluster=True, catalog="shop",
                              poll_interval_s=0.3, bundle_signing_key=SecretStr(KEY.decode()))  # fmt: skip
    with hardened_ranker(settings) as base:
        assert wait_until(lambda: ready_version(base) == "1")
        assert httpx.get(f"{base}/readyz").json()["redis"] == "ok"
        events = httpx.post(f"{base}/events", json={"user_id": "u1", "items": ["i3", "i7"]})
        assert events.status_code == 200 and events.json()["history_length"] == 2
        by_user = httpx.post(f"{base}/recommend", json={"user_id": "u1", "k": 5}).json()
        assert by_user["history_used"] == 2 and by_user["fallback"] is False
        publish_bundle(client, "shop", tiny_bundle(320, seed=2), signing_key=KEY)
        assert wait_until(lambda: ready_version(base) == "2")


PUBLISH_SCRIPT = """
import sys
from pydantic import SecretStr
from semrec.bundle import Bundle
from semrec.settings import RedisSettings
from semrec.store import publish_bundle
client = RedisSettings(redis_url=SecretStr(sys.argv[2]), redis_cluster=True).client()
publish_bundle(client, "shop", Bundle.load(sys.argv[1]), chunk_bytes=10240)
"""


@pytest.mark.parametrize("step", ["writing", "verified", "switched"])
def test_sigkill_during_publish_on_a_cluster(client, cluster, tmp_path, step):
    publish_bundle(client, "shop", tiny_bundle(200, seed=1))
    new = tiny_bundle(200, seed=2)
    new.save(tmp_path / "run" / "bundle")
    marker = tmp_path / "paused"
    env = {**os.environ, PAUSE_AT_ENV: step, PAUSE_FILE_ENV: str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", PUBLISH_SCRIPT, str(tmp_path / "run"), cluster.url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert wait_until(marker.exists, timeout=60), proc.stdout.read().decode()[-2000:] if proc.poll() else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    loaded = load_bundle(client, "shop")
    expected = new if step == "switched" else tiny_bundle(200, seed=1)
    np.testing.assert_array_equal(loaded.bundle.item_vectors, expected.item_vectors)
    if step != "switched":
        leftovers = client.keys(keys.bundle_pattern("shop", "2"))
        assert leftovers and all(client.ttl(k) > 0 for k in leftovers)
    publish_bundle(client, "shop", Bundle.load(tmp_path / "run"))
    assert current_version(client, "shop") == "3"
