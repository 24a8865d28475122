"""Each item-layer mode end to end: train one epoch -> export -> publish to a real redis-server -> serve over real
HTTP (uvicorn + ONNX Runtime): the answer is the torch model's top-k; then `semrec refresh` gives a new item a
vector through the run's semantic view (no retraining), and the ranker serves it with the score torch expects."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch
from pydantic import SecretStr
from semrec.item_table import ItemTable
from semrec.serving_space import ServingSpace
from semrec.settings import redis_settings
from semrec.store import load_bundle
from semrec_ranker.core.config import RankerSettings
from semrec_worker.backbones import left_pad
from semrec_worker.commands.export import ExportOnnxConfig, export_onnx
from semrec_worker.commands.publish import PublishConfig, publish
from semrec_worker.commands.refresh import RefreshConfig, refresh
from semrec_worker.losses import scores
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.training import SeqRecConfig, train_seqrec
from serving_helpers import ready_version, running_ranker, wait_until

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
CASES = [  # every mode, every backbone, both serving spaces (cosine and dot through the MIPS augmentation)
    ("init", "sum", "sasrec", "said_cosine"),
    ("frozen", "sum", "gru4rec", "full_ce"),
    ("dual", "gate", "bert4rec", "said_cosine"),
    ("dual", "concat", "sasrec", "full_ce"),
]


def ranker_settings(redis_server) -> RankerSettings:
    return RankerSettings(redis_url=SecretStr(redis_server.url), catalog="shop", poll_interval_s=0.5,
                          admin_token=SecretStr("token"), history_cap=20)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "fusion", "backbone", "loss"), CASES)
def test_item_layer_mode_trains_exports_serves_and_refreshes(tmp_path, redis_server, tiny_synthetic, mode, fusion,
                                                             backbone, loss):
    rng = np.random.default_rng(0)
    table = ItemTable(tiny_synthetic.item_ids, rng.normal(size=(tiny_synthetic.n_items, 24)).astype(np.float32),
                      {"method": "fake-llm"})
    table.save(tmp_path / "table.npz")
    run = tmp_path / "run"
    config = SeqRecConfig(data=DATA, out=run, backbone=backbone, loss=loss, dim=16, max_len=12, epochs=1, threads=1,
                          batch_size=64, lr=5e-3, init=str(tmp_path / "table.npz"), item_layer=mode, fusion=fusion,
                          refresh_text_encoder="hashing", refresh_neighbours=0)  # fmt: skip
    model = train_seqrec(config, dataset=tiny_synthetic).model.eval()
    export_onnx(ExportOnnxConfig(run=run))  # `semrec export onnx`: the bundle and, frozen/dual, the refresh encoder
    if mode == "init":  # the ID embedding has no semantic view: the run's text map is the refresh encoder
        publish(PublishConfig(run=run, redis=redis_server.url, catalog="shop", items=DATA, refresh_encoder="hashing"))
    else:
        assert load_item_encoder(run).kind == "item-layer"
        publish(PublishConfig(run=run, redis=redis_server.url, catalog="shop", items=DATA))
    similarity = json.loads((run / "metrics.json").read_text())["model"]["similarity"]
    ids = tiny_synthetic.item_ids
    histories, _ = tiny_synthetic.split("test")
    with running_ranker(ranker_settings(redis_server)) as (base, _):
        assert wait_until(lambda: ready_version(base) == "1"), "the ranker did not load the bundle"
        http = httpx.Client(base_url=base, timeout=30)
        for history in histories[:5]:
            history = history[-12:]  # what the ranker encodes: the last max_len items, left-padded
            answer = http.post("/recommend", json={"history": [ids[i - 1] for i in history], "k": 10})
            assert answer.status_code == 200, answer.text
            rows = np.array([ids.index(item["item_id"]) for item in answer.json()["items"]])
            with torch.no_grad():
                expected = scores(model(left_pad([history], 12)), model.item_embedding.weight,
                                  similarity)[0, 1:].numpy().astype(np.float64)
            expected[np.asarray(history) - 1] = -np.inf  # the ranker excludes the history by default
            best = np.sort(expected)[::-1][:10]
            scale = max(1.0, float(np.abs(best).max()))
            np.testing.assert_allclose(np.sort(expected[rows])[::-1], best, atol=1e-4 * scale)

        new = type(tiny_synthetic.items[0])("new-0", title="a brand new gadget", brand="Acme")
        catalogue = tmp_path / "items.jsonl"
        catalogue.write_text("".join(json.dumps(i.to_json()) + "\n" for i in [*tiny_synthetic.items, new]))
        summary = refresh(RefreshConfig(catalog="shop", items=str(catalogue), redis=redis_server.url))
        assert summary["published"] and summary["added"] == 1 and summary["changed"] == 0
        served = load_bundle(redis_settings(redis_server.url).client(), "shop").bundle
        vector = served.item_vectors[served.item_ids.index("new-0")]
        encoder = load_item_encoder(run)
        if mode != "init":  # the independent expectation: the trained torch layer on the new item's table row
            z = torch.from_numpy(encoder.table_rows([new]).astype(np.float32))
            layer = model.item_embedding
            with torch.no_grad():
                semantic = (layer if mode == "frozen" else layer.semantic).adapter(z)
                fused = semantic if mode == "frozen" else layer.fusion(semantic, torch.zeros_like(semantic))
            space = ServingSpace.fit(model.item_embedding.weight[1:].detach().numpy(), similarity)
            np.testing.assert_allclose(vector, space.apply(fused.numpy())[0], atol=1e-5)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)

        assert wait_until(lambda: ready_version(base) == "2"), "the ranker did not switch to the refreshed bundle"
        history = histories[0][-12:]
        answer = http.post("/recommend", json={"history": [ids[i - 1] for i in history], "k": 200}).json()
        by_id = {item["item_id"]: item["score"] for item in answer["items"]}
        assert "new-0" in by_id  # a cold-start item is a candidate at once
        with torch.no_grad():
            hidden = torch.nn.functional.normalize(model(left_pad([history], 12)), dim=-1)[0].numpy()
        assert by_id["new-0"] == pytest.approx(float(hidden @ vector[: len(hidden)]), abs=1e-4)
