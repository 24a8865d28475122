"""The Redis bundle store against a real redis-server: round trips, checksums, retention, pub/sub, auth."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from conftest import RedisServer
from semrec.settings import RedisSettings, redact_url, redis_settings
from semrec.store import (
    ChecksumError,
    NoBundleError,
    append_history,
    current_version,
    keys,
    list_versions,
    load_bundle,
    publish_bundle,
    read_history,
    read_manifest,
)
from serving_helpers import tiny_bundle


@pytest.fixture
def client(redis_server):
    return redis_settings(redis_server.url).client()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_publish_then_load_round_trips_every_part(client, dtype):
    bundle = tiny_bundle(300)
    bundle.ann_index = b"index-bytes" * 10
    report = publish_bundle(client, "shop", bundle, dtype=dtype, chunk_bytes=4096, extras={"text_hashes": b"xyz"})
    assert report.version == "1" and report.previous is None
    loaded = load_bundle(client, "shop", extras=("text_hashes",))
    assert loaded.version == "1"
    assert loaded.bundle.item_ids == bundle.item_ids
    assert loaded.bundle.encoder_onnx == bundle.encoder_onnx
    assert loaded.bundle.ann_index == bundle.ann_index
    assert loaded.extras == {"text_hashes": b"xyz"}
    np.testing.assert_array_equal(loaded.bundle.popularity, bundle.popularity)
    tolerance = 1e-3 if dtype == "float16" else 0
    np.testing.assert_allclose(loaded.bundle.item_vectors, bundle.item_vectors, atol=tolerance)
    assert loaded.bundle.metadata == bundle.metadata
    manifest = read_manifest(client, "shop", "1")
    assert manifest["blobs"]["vectors"]["chunks"] > 1  # really chunked at 4 KiB
    assert all(client.ttl(k) == -1 for k in client.keys(keys.bundle_pattern("shop", "1")))  # persisted on switch


def test_no_bundle_is_a_clear_error(client):
    with pytest.raises(NoBundleError, match="no bundle published"):
        load_bundle(client, "empty")


def test_corrupted_chunk_is_refused(client):
    publish_bundle(client, "shop", tiny_bundle(), chunk_bytes=4096)
    client.setrange(keys.chunk("shop", "1", "vectors", 0), 10, b"\x00\x01\x02")
    with pytest.raises(ChecksumError, match="vectors"):
        load_bundle(client, "shop")


def test_keeps_last_n_versions_and_deletes_older_keys(client):
    for seed in range(4):
        publish_bundle(client, "shop", tiny_bundle(50, seed=seed), keep=2, chunk_bytes=4096)
    assert list_versions(client, "shop") == ["3", "4"]
    assert current_version(client, "shop") == "4"
    assert client.keys(keys.bundle_pattern("shop", "1")) == [] and client.keys(keys.bundle_pattern("shop", "2")) == []
    assert load_bundle(client, "shop", "3").bundle.item_ids == tiny_bundle(50, seed=2).item_ids


def test_switch_is_announced_on_the_updates_channel(client):
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.updates_channel("shop"))
    pubsub.get_message(timeout=1)
    publish_bundle(client, "shop", tiny_bundle())
    message = pubsub.get_message(timeout=5)
    assert message is not None and orjson.loads(message["data"]) == {"catalog": "shop", "version": "1"}


def test_histories_are_capped_lists(client):
    assert read_history(client, "shop", "u1", 5) == []
    assert append_history(client, "shop", "u1", ["a", "b", "c"], cap=4) == 3
    assert append_history(client, "shop", "u1", ["d", "e"], cap=4) == 4
    assert read_history(client, "shop", "u1", 4) == ["b", "c", "d", "e"]
    assert client.exists(keys.user_history("shop", "u1"))


def test_catalog_names_are_checked(client):
    with pytest.raises(Exception, match="catalog name"):
        publish_bundle(client, "bad name:*", tiny_bundle())


def test_password_from_settings_and_never_shown(tmp_path, monkeypatch):
    server = RedisServer(tmp_path, password="s3cret-pw")
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        monkeypatch.setenv("SEMREC_REDIS_PASSWORD", "s3cret-pw")
        settings = redis_settings(url)
        publish_bundle(settings.client(), "auth", tiny_bundle(50))
        assert current_version(settings.client(), "auth") == "1"
        with_password = RedisSettings(redis_url=server.url)
        assert "s3cret-pw" not in with_password.redacted_url() and "***" in with_password.redacted_url()
        assert "s3cret-pw" not in repr(with_password)
        monkeypatch.setenv("SEMREC_REDIS_PASSWORD", "wrong")
        with pytest.raises(Exception, match="(?i)auth|password|invalid"):
            redis_settings(url).client().ping()
    finally:
        server.stop()
    assert redact_url("rediss://user:pw@host:6380/1") == "rediss://user:***@host:6380/1"


def test_a_key_that_expires_before_the_switch_aborts_the_publish(client, tmp_path, monkeypatch):
    """The switch script's "key expired" branch: nothing switched, the previous version keeps serving."""
    import threading
    import time

    from semrec.store import StoreError
    from semrec.store.bundles import PAUSE_AT_ENV, PAUSE_FILE_ENV

    publish_bundle(client, "shop", tiny_bundle(50))
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_AT_ENV, "verified")
    monkeypatch.setenv(PAUSE_FILE_ENV, str(marker))
    errors: list[BaseException] = []

    def second_publish():
        try:
            publish_bundle(client, "shop", tiny_bundle(60), pending_ttl_s=1)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    worker = threading.Thread(target=second_publish)
    worker.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the publish never reached the switch"
    while client.exists(keys.manifest("shop", "2")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the pending keys (TTL 1 s) expire while the publisher is paused
    assert not client.exists(keys.manifest("shop", "2"))
    marker.unlink()
    worker.join(60)
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert "expired before the switch" in str(errors[0])
    assert current_version(client, "shop") == "1" and list_versions(client, "shop") == ["1"]
    assert len(load_bundle(client, "shop").bundle.item_ids) == 50
