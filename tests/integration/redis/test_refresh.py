"""`semrec refresh`: content-hash diff, encoding of new/changed items only, idempotency, what the ranker serves."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import current_version, load_bundle
from semrec_ranker.engine import Engine
from semrec_worker.commands.publish import TEXT_HASHES, PublishConfig, publish
from semrec_worker.commands.refresh import RefreshConfig, refresh
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.refresh.encoders import LinearTextMapEncoder
from serving_helpers import tiny_bundle


def _write_items(path, items):
    path.write_text("".join(json.dumps(item.to_json()) + "\n" for item in items))
    return path


def test_refresh_diffs_encodes_publishes_and_is_idempotent(redis_server, tmp_path, tiny_synthetic):
    items = {i.item_id: i for i in tiny_synthetic.items}
    ids = list(tiny_synthetic.item_ids)
    base = tiny_bundle(len(ids))
    run = tmp_path / "run"
    Bundle(base.encoder_onnx, ids, base.item_vectors, base.popularity, base.metadata).save(run / "bundle")
    original = _write_items(tmp_path / "items.jsonl", [items[i] for i in ids])
    publish(PublishConfig(run=run, redis=redis_server.url, catalog="shop", items=str(original),
                          refresh_encoder="hashing"))  # fmt: skip
    assert isinstance(load_item_encoder(run), LinearTextMapEncoder)
    client = redis_settings(redis_server.url).client()
    first = load_bundle(client, "shop", extras=(TEXT_HASHES,))
    assert first.bundle.metadata["source_run"] == str(run.resolve())

    changed_id, removed_id = ids[0], ids[1]
    edited = dict(items)
    edited[changed_id] = dataclasses.replace(items[changed_id], title=(items[changed_id].title or "") + " (new edition)")
    del edited[removed_id]
    for n in range(2):
        edited[f"new-{n}"] = type(items[ids[2]])(f"new-{n}", title=f"brand new gadget {n}", brand="Acme")
    updated = _write_items(tmp_path / "items-v2.jsonl", list(edited.values()))

    summary = refresh(RefreshConfig(catalog="shop", items=str(updated), redis=redis_server.url))
    assert summary["published"] and summary["version"] == "2"
    assert (summary["added"], summary["changed"], summary["removed"]) == (2, 1, 1)
    assert summary["unchanged"] == len(ids) - 2

    second = load_bundle(client, "shop").bundle
    assert second.item_ids == ids + ["new-0", "new-1"]  # append-only: encoder indices stay valid
    assert second.metadata["encoder_vocab_size"] == len(ids) and second.metadata["retired_items"] == [removed_id]
    row = ids.index(changed_id)
    assert not np.allclose(second.item_vectors[row], first.bundle.item_vectors[row])
    untouched = [r for r in range(len(ids)) if r != row]
    np.testing.assert_array_equal(second.item_vectors[untouched], first.bundle.item_vectors[untouched])
    np.testing.assert_allclose(np.linalg.norm(second.item_vectors, axis=1), 1.0, atol=1e-5)

    engine = Engine("2", second)
    served = engine.recommend([ids[3], "new-0"], k=len(ids))  # a new item is skipped as input, not unknown
    served_ids = {second.item_ids[r] for r in served.rows}
    assert removed_id not in served_ids and "new-1" in served_ids and served.unknown_items == []
    similar_rows, _ = engine.similar("new-0", 5)
    vectors = second.item_vectors / np.linalg.norm(second.item_vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors[second.item_ids.index("new-0")]
    cosine[second.item_ids.index("new-0")] = -np.inf  # an item is not similar to itself
    cosine[second.item_ids.index(removed_id)] = -np.inf  # retired: never recommended
    # the five best cosines, by numpy; compared by value so that near-ties may come in either order
    np.testing.assert_allclose(cosine[similar_rows], np.sort(cosine)[::-1][:5], atol=1e-5)

    again = refresh(RefreshConfig(catalog="shop", items=str(updated), redis=redis_server.url))
    assert again["published"] is False and (again["added"], again["changed"], again["removed"]) == (0, 0, 0)
    assert current_version(client, "shop") == "2"


def test_a_retired_item_that_comes_back_is_served_again(redis_server, tmp_path, tiny_synthetic):
    ids = list(tiny_synthetic.item_ids)
    items = {i.item_id: i for i in tiny_synthetic.items}
    base = tiny_bundle(len(ids))
    run = tmp_path / "run"
    Bundle(base.encoder_onnx, ids, base.item_vectors, base.popularity, base.metadata).save(run / "bundle")
    everything = _write_items(tmp_path / "all.jsonl", [items[i] for i in ids])
    publish(PublishConfig(run=run, redis=redis_server.url, catalog="shop", items=str(everything),
                          refresh_encoder="hashing"))  # fmt: skip
    gone = ids[5]
    without = _write_items(tmp_path / "without.jsonl", [items[i] for i in ids if i != gone])
    removed = refresh(RefreshConfig(catalog="shop", items=str(without), redis=redis_server.url))
    assert (removed["added"], removed["changed"], removed["removed"]) == (0, 0, 1)
    client = redis_settings(redis_server.url).client()
    retired = load_bundle(client, "shop").bundle
    assert retired.metadata["retired_items"] == [gone]
    assert gone not in {retired.item_ids[r] for r in Engine("2", retired).recommend([ids[0]], k=len(ids)).rows}

    back = refresh(RefreshConfig(catalog="shop", items=str(everything), redis=redis_server.url))
    assert back["published"] and (back["added"], back["changed"], back["removed"]) == (0, 1, 0)
    revived = load_bundle(client, "shop").bundle
    assert revived.item_ids == ids and revived.metadata["retired_items"] == []  # same row, no duplicate
    served = Engine("3", revived).recommend([ids[0]], k=len(ids))
    assert gone in {revived.item_ids[r] for r in served.rows}
    again = refresh(RefreshConfig(catalog="shop", items=str(everything), redis=redis_server.url))
    assert again["published"] is False  # and it is not "changed" forever after


def test_refresh_with_a_signing_key_refuses_an_unsigned_served_bundle(redis_server, tmp_path, tiny_synthetic,
                                                                      monkeypatch):  # fmt: skip
    """With a key configured, refresh checks the served bundle's signature before re-signing a new version:
    a bundle written to Redis by someone without the key is never laundered into a signed one."""
    import pytest
    from semrec.store import BundleSignatureError

    ids = list(tiny_synthetic.item_ids)
    base = tiny_bundle(len(ids))
    run = tmp_path / "run"
    Bundle(base.encoder_onnx, ids, base.item_vectors, base.popularity, base.metadata).save(run / "bundle")
    items = _write_items(tmp_path / "items.jsonl", list(tiny_synthetic.items))
    publish(PublishConfig(run=run, redis=redis_server.url, catalog="shop", items=str(items),
                          refresh_encoder="hashing"))  # unsigned: no key yet  # fmt: skip
    monkeypatch.setenv("SEMREC_BUNDLE_SIGNING_KEY", "k" * 40)
    edited = [dataclasses.replace(tiny_synthetic.items[0], title="another title"), *tiny_synthetic.items[1:]]
    with pytest.raises(BundleSignatureError):
        refresh(RefreshConfig(catalog="shop", items=str(_write_items(tmp_path / "v2.jsonl", edited)),
                              redis=redis_server.url))  # fmt: skip
    assert current_version(redis_settings(redis_server.url).client(), "shop") == "1"
