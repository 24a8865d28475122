"""`semrec bench refresh`: new near-copies of catalogue items go through the run's refresh encoder exactly as
`semrec refresh` does, and land next to the item they were copied from."""

from __future__ import annotations

import numpy as np
from semrec.bundle import Bundle
from semrec.results import read_results
from semrec_worker.data.records import Item
from semrec_worker.experiments.refresh_bench import BenchRefreshConfig, bench_refresh, near_copies
from semrec_worker.export import export_run
from semrec_worker.refresh.encoders import LinearTextMapEncoder, encoder_dir
from semrec_worker.refresh.items import load_items
from semrec_worker.training import SeqRecConfig, train_seqrec

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"


def test_near_copies_change_only_the_model_number():
    catalogue = [Item("a", title="pipette 10 ml", brand="Acme"), Item("b", title="flask", brand="Vitro")]
    new, source_of = near_copies(catalogue, 2, seed=0)
    assert sorted(source_of.values()) == ["a", "b"]
    for item in new:
        source = next(i for i in catalogue if i.item_id == source_of[item.item_id])
        assert item.title != source.title and item.brand == source.brand and item.item_id.startswith("new-")
    assert {i.title for i in new} <= {"pipette 1000 ml", "pipette 1001 ml", "flask 1000", "flask 1001"}


def test_bench_refresh_places_new_items_with_the_text_map(tmp_path, tiny_synthetic):
    run = tmp_path / "run"
    train_seqrec(SeqRecConfig(data=DATA, out=run, backbone="sasrec", dim=16, epochs=1), dataset=tiny_synthetic)
    export_run(run)
    bundle = Bundle.load(run)
    items = load_items(DATA)
    encoder = LinearTextMapEncoder.fit([items[i] for i in bundle.item_ids], bundle.item_vectors, "hashing",
                                       progress=False)
    encoder.save(encoder_dir(run, encoder.kind))
    out = tmp_path / "refresh.json"
    (result,) = bench_refresh(BenchRefreshConfig(run=run, encoders=["text-map"], new_items=10, reproduce=True,
                                                 results=out))
    assert read_results(out).runs == [result]
    m = result.metrics
    assert result.method == "refresh-linear-text-map" and m["new_items"] == 10 and m["catalogue"] == len(bundle.item_ids)
    assert m["cos_to_source"] > m["random_pair_cos"] + 0.2  # the copies land near their sources
    assert 1 <= m["source_rank_median"] <= len(bundle.item_ids) and 0 <= m["source_in_top10"] <= 1
    assert np.isclose(m["reproduction_cos_mean"], encoder.fit_cosine, atol=1e-3)  # the in-sample fit
