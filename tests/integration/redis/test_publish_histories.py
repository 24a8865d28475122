"""`semrec publish --histories` (the real CLI, a real redis-server): known users get their training history."""

from __future__ import annotations

import json
import subprocess
import sys

from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import current_version, keys, read_history
from serving_helpers import tiny_bundle

DATA = "synthetic:users=120,items=80,avg_len=10,seed=3"


def test_publish_seeds_bounded_expiring_histories_from_the_runs_dataset(redis_server, tmp_path):
    from semrec_worker.data import DataConfig, load_dataset

    dataset = load_dataset(DataConfig(data=DATA))
    base = tiny_bundle(dataset.n_items)
    catalogue = dataset.item_ids[:-5]  # the bundle lacks the last 5 items: they must never be seeded
    bundle = Bundle(base.encoder_onnx, catalogue, base.item_vectors[: len(catalogue)],
                    base.popularity[: len(catalogue)], base.metadata)  # fmt: skip
    run = tmp_path / "run"
    bundle.save(run / "bundle")
    (run / "config.json").write_text(json.dumps({"config": {"data": DATA}}))
    client = redis_settings(redis_server.url).client()
    live_user = dataset.user_ids[-1]
    client.rpush(keys.user_history("shop", live_user), "live-event")  # a history written by /events: kept
    cmd = [sys.executable, "-m", "semrec.cli", "publish", "--run", str(run), "--redis", redis_server.url,
           "--catalog", "shop", "--histories", "--history-cap", "5", "--history-ttl-s", "600",
           "--max-histories", "100"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    known = set(catalogue)
    newest = list(zip(dataset.user_ids, dataset.sequences, strict=True))[-100:]
    seedable = [u for u, seq in newest if any(dataset.item_ids[i - 1] in known for i in seq[-5:].tolist())]
    assert f"seeded {len(seedable) - (live_user in seedable)} user histories" in result.stdout + result.stderr

    assert current_version(client, "shop") == "1"
    assert read_history(client, "shop", live_user, 10) == ["live-event"]
    for user, sequence in newest[:-1]:
        expected = [dataset.item_ids[i - 1] for i in sequence[-5:].tolist()]
        seeded = [i for i in expected if i in known]
        assert read_history(client, "shop", user, 10) == seeded
        if seeded:
            assert 0 < client.ttl(keys.user_history("shop", user)) <= 600
    oldest = dataset.user_ids[0]
    assert not client.exists(keys.user_history("shop", oldest))  # bounded by --max-histories
