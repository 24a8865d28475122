"""A bundle exported from a trained backbone, served over real HTTP, answers what the torch model ranks;
hot reload by pub/sub alone (polling practically off) while requests are in flight."""

from __future__ import annotations

import copy
import threading

import httpx
import numpy as np
import pytest
import torch
from pydantic import SecretStr
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import publish_bundle
from semrec_ranker.core.config import RankerSettings
from semrec_worker.export import export_run, load_run_encoder
from semrec_worker.losses import scores
from semrec_worker.training import SeqRecConfig, train_seqrec
from serving_helpers import ready_version, running_ranker, tiny_bundle, wait_until

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
NO_POLLING_S = 3600.0  # the pointer is polled once an hour: only a pub/sub message can trigger a reload


def ranker_settings(redis_server, **overrides) -> RankerSettings:
    values = {"redis_url": SecretStr(redis_server.url), "catalog": "shop", "poll_interval_s": NO_POLLING_S,
              "admin_token": SecretStr("token"), "history_cap": 20}  # fmt: skip
    return RankerSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, tiny_synthetic_shared):
    """One epoch of SASRec (SAID cosine loss) and GRU4Rec (full CE, dot scoring), each exported as a bundle."""
    dataset = copy.deepcopy(tiny_synthetic_shared)
    root = tmp_path_factory.mktemp("served")
    runs = {}
    for backbone, loss in (("sasrec", "said_cosine"), ("gru4rec", "full_ce")):
        config = SeqRecConfig(data=DATA, out=root / backbone, backbone=backbone, loss=loss, dim=16, max_len=12,
                              epochs=1, threads=1, batch_size=64, lr=5e-3)  # fmt: skip
        train_seqrec(config, dataset=dataset)
        export_run(root / backbone)
        runs[backbone] = root / backbone
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_served_answer_is_the_torch_models_top_k(trained_runs, backbone, redis_server, tiny_synthetic):
    run = trained_runs[backbone]
    bundle = Bundle.load(run)
    publish_bundle(redis_settings(redis_server.url).client(), "shop", bundle)
    encoder, _, _, metrics = load_run_encoder(run)
    encoder.eval()
    similarity = metrics["model"]["similarity"]
    histories, _ = tiny_synthetic.split("test")
    k = 10
    with running_ranker(ranker_settings(redis_server)) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1"), "the ranker did not load the bundle"
        http = httpx.Client(base_url=base, timeout=30)
        for history in histories[:8]:
            history = history[-12:]
            ids = [tiny_synthetic.item_ids[i - 1] for i in history]
            answer = http.post("/recommend", json={"history": ids, "k": k})
            assert answer.status_code == 200, answer.text
            served = [item["item_id"] for item in answer.json()["items"]]
            # the independent expectation: the torch model's own scores (its training similarity), history
            # items excluded (the ranker's default), read as a top-k that tolerates near-ties
            with torch.no_grad():
                hidden = encoder(torch.as_tensor(np.asarray(history)).view(1, -1))
                expected = scores(hidden, encoder.item_embedding.weight, similarity)[0, 1:].numpy().astype(np.float64)
            expected[np.asarray(history) - 1] = -np.inf
            row_of = {item_id: row for row, item_id in enumerate(tiny_synthetic.item_ids)}
            served_rows = np.array([row_of[i] for i in served])
            assert len(served) == k and not set(served) & set(ids)
            best = np.sort(expected)[::-1][:k]
            scale = max(1.0, float(np.abs(best).max()))
            np.testing.assert_allclose(np.sort(expected[served_rows])[::-1], best, atol=1e-4 * scale)


@pytest.mark.slow
def test_hot_reload_by_pub_sub_alone_under_concurrent_requests(redis_server):
    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", tiny_bundle(300, seed=1))
    with running_ranker(ranker_settings(redis_server)) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1")
        stop = threading.Event()
        seen: list[tuple[int, str | None]] = []
        errors: list[str] = []

        def hammer() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/recommend", json={"history": ["i3", "i7"], "k": 5})
                        seen.append((r.status_code, r.json().get("version")))
                        if r.status_code != 200 or len(r.json()["items"]) != 5:
                            errors.append(f"{r.status_code}: {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            assert wait_until(lambda: len(seen) >= 20), "no requests got through before the publish"
            publish_bundle(client, "shop", tiny_bundle(400, seed=2))  # announces v2 on the updates channel
            assert wait_until(lambda: any(version == "2" for _, version in seen[-50:]), timeout=60), (
                "the ranker did not switch on the pub/sub message (polling is off)"
            )
            switched = len(seen)
            assert wait_until(lambda: len(seen) >= switched + 20)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert errors == []
    versions = [version for _, version in seen]
    first_new = versions.index("2")
    assert set(versions[:first_new]) == {"1"} and versions[-1] == "2"


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_int8_top_k_equals_the_float32_top_k_on_an_exported_bundle(trained_runs, backbone, tiny_synthetic, tmp_path):
    """The int8 kernel with float32 rescoring on a real exported bundle: the same top-10 as the float32 scan,
    for every test history, batched and shared-from-files as `semrec serve --workers 2` runs it."""
    from semrec_ranker.engine import Engine

    bundle = Bundle.load(trained_runs[backbone])
    scan = Engine("1", bundle, exact_kernel="float32")
    # few candidates and all items on the int8 path: the exactness bound, not a wide margin, does the work
    fast = Engine("1", bundle, int8_min_items=0, rescore_candidates=10, shared_dir=tmp_path)
    assert fast.index_kind == "exact-int8"
    test_histories, _ = tiny_synthetic.split("test")
    histories = [[tiny_synthetic.item_ids[i - 1] for i in h] for h in test_histories]  # 1-based indices -> ids
    answers = fast.run([fast.prepare(h, 10) for h in histories])
    for history, answer in zip(histories, answers, strict=True):
        expected = scan.recommend(history, 10)
        assert answer.rows.tolist() == expected.rows.tolist(), history
        np.testing.assert_allclose(answer.scores, expected.scores, atol=1e-5)
    assert not any(a.fallback for a in answers)
    stats = fast.exact.stats
    assert stats["batched"] + stats["proved"] + stats["widened"] + stats["float32_scan"] == len(histories)
    assert stats["float32_scan"] < len(histories)  # the int8 path answered, not only the scan
    assert stats["batched"] > 0  # from the batch's one int8 product


@pytest.mark.slow
def test_a_bundle_exported_with_every_position_still_serves_and_answers_as_the_final_position_one(
    trained_runs, redis_server, tiny_synthetic
):
    """Bundles exported before the final-position graph (every position computed, no `encoder_graph` in their
    metadata) load as they did and answer what the final-position export of the same run answers."""
    import dataclasses

    from semrec_worker.export.onnx import ServingEncoder, serving_onnx

    run = trained_runs["sasrec"]
    new = Bundle.load(run)
    assert new.metadata["encoder_graph"] == "final-position" and new.metadata["final_position_max_abs_diff"] < 1e-5
    encoder, config, table, metrics = load_run_encoder(run)
    full = ServingEncoder(encoder, metrics["model"]["similarity"], final_position=False).eval()
    old_metadata = {k: v for k, v in new.metadata.items() if k not in ("encoder_graph", "final_position_max_abs_diff")}
    old = dataclasses.replace(new, encoder_onnx=serving_onnx(full, len(table), config.model.max_len),
                              metadata=old_metadata)  # fmt: skip
    assert old.encoder_onnx != new.encoder_onnx
    client = redis_settings(redis_server.url).client()
    publish_bundle(client, "shop", old)
    histories, _ = tiny_synthetic.split("test")
    bodies = [{"history": [tiny_synthetic.item_ids[i - 1] for i in h[-12:]], "k": 10} for h in histories[:12]]
    with running_ranker(ranker_settings(redis_server)) as (base, _):
        http = httpx.Client(base_url=base, timeout=30)
        assert wait_until(lambda: ready_version(base) == "1"), "the ranker did not load the older bundle"
        assert http.get("/readyz").json()["bundle"]["encoder_graph"] == "all-positions"
        before = [http.post("/recommend", json=body).json() for body in bodies]
        publish_bundle(client, "shop", new)
        assert wait_until(lambda: ready_version(base) == "2"), "the ranker did not load the final-position bundle"
        assert http.get("/readyz").json()["bundle"]["encoder_graph"] == "final-position"
        after = [http.post("/recommend", json=body).json() for body in bodies]
    for a, b in zip(before, after, strict=True):
        assert (a["version"], b["version"]) == ("1", "2")
        a_scores = {i["item_id"]: i["score"] for i in a["items"]}
        b_scores = {i["item_id"]: i["score"] for i in b["items"]}
        assert len(a_scores) == 10
        # the same top-10 up to float rounding: an item only one of them lists is a near-tie at the 10th score
        for item in set(a_scores) ^ set(b_scores):
            assert abs(a_scores.get(item, b_scores.get(item)) - min(min(a_scores.values()), min(b_scores.values()))) < 1e-5
        for item in set(a_scores) & set(b_scores):
            assert a_scores[item] == pytest.approx(b_scores[item], abs=1e-5)
