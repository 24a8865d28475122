"""SIGKILL `semrec publish` (a real subprocess) at each step: readers keep a complete version; a re-run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import (
    ConcurrentPublishError,
    current_version,
    keys,
    list_versions,
    load_bundle,
    publish_bundle,
)
from semrec.store.bundles import PAUSE_AT_ENV, PAUSE_FILE_ENV
from serving_helpers import tiny_bundle

PUBLISH_SCRIPT = """
import sys
from semrec.bundle import Bundle
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import publish_bundle
publish_bundle(redis_settings(sys.argv[2]).client(), "shop", Bundle.load(sys.argv[1]), chunk_bytes=10240)
"""


def _publish_cmd(run_dir, url):
    """The store's publish in a light process (the CLI itself is exercised by the re-run below)."""
    return [sys.executable, "-c", PUBLISH_SCRIPT, str(run_dir), url]


def _cli_publish_cmd(run_dir, url):
    return [sys.executable, "-m", "semrec.cli", "publish", "--run", str(run_dir), "--redis", url,
            "--catalog", "shop", "--chunk-mib", "0.01"]  # fmt: skip


def _start_paused(cmd, step, marker):
    env = {**os.environ, PAUSE_AT_ENV: step, PAUSE_FILE_ENV: str(marker)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not marker.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"publish did not reach {step}: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("step", ["writing", "written", "verified", "switched"])
def test_sigkill_during_publish_leaves_a_complete_version(redis_server, tmp_path, step):
    client = redis_settings(redis_server.url).client()
    old = tiny_bundle(200, seed=1)
    publish_bundle(client, "shop", old)
    new = tiny_bundle(200, seed=2)
    new.save(tmp_path / "run" / "bundle")

    proc = _start_paused(_publish_cmd(tmp_path / "run", redis_server.url), step, tmp_path / "paused")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    loaded = load_bundle(client, "shop")  # checksum-verified: a complete version, never a mix
    expected = new if step == "switched" else old
    np.testing.assert_array_equal(loaded.bundle.item_vectors, expected.item_vectors)
    if step != "switched":
        assert loaded.version == "1"
        leftovers = [k for k in client.keys(keys.bundle_pattern("shop", "2"))]
        assert leftovers and all(client.ttl(k) > 0 for k in leftovers)  # abandoned keys expire by themselves

    if step == "writing":  # re-run through the real CLI once; the others re-run in-process
        rerun = subprocess.run(_cli_publish_cmd(tmp_path / "run", redis_server.url), capture_output=True,
                               text=True, timeout=120)  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    else:
        publish_bundle(client, "shop", Bundle.load(tmp_path / "run"))
    final = load_bundle(client, "shop")
    assert final.version == "3"
    np.testing.assert_array_equal(final.bundle.item_vectors, new.item_vectors)


def test_concurrent_publish_loses_the_compare_and_set(redis_server, tmp_path):
    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", tiny_bundle(100, seed=1))
    tiny_bundle(100, seed=2).save(tmp_path / "run" / "bundle")
    marker = tmp_path / "paused"
    proc = _start_paused(_publish_cmd(tmp_path / "run", redis_server.url), "verified", marker)
    publish_bundle(client, "shop", tiny_bundle(100, seed=3))  # someone else switches meanwhile
    marker.unlink()  # let the paused publisher continue to its switch
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "changed from 1 to 3" in out.decode()
    assert current_version(client, "shop") == "3"
    assert len(load_bundle(client, "shop").bundle.item_ids) == 100  # v3 intact, the loser's v2 never switched
    assert "2" not in list_versions(client, "shop")


def test_concurrent_publish_in_process_raises_concurrent_publish_error(redis_server, tmp_path, monkeypatch):
    import threading

    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", tiny_bundle(100, seed=1))
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_AT_ENV, "verified")
    monkeypatch.setenv(PAUSE_FILE_ENV, str(marker))
    errors: list[BaseException] = []

    def paused_publish() -> None:
        try:
            publish_bundle(client, "shop", tiny_bundle(100, seed=2))
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    worker = threading.Thread(target=paused_publish)
    worker.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    monkeypatch.delenv(PAUSE_AT_ENV)  # the competing publish below must not pause
    publish_bundle(client, "shop", tiny_bundle(100, seed=3))
    marker.unlink()
    worker.join(60)
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentPublishError)
    assert "changed from 1 to 3" in str(errors[0]) and current_version(client, "shop") == "3"
