"""How close each new item lands to the item it was copied from (same text but the model number)."""
import json
import sys

import numpy as np
from semrec.results import RunResult, write_results
from semrec.settings import redis_settings
from semrec.store import load_bundle

client = redis_settings(sys.argv[1]).client()
sources = json.load(open("sources.json"))
runs = []
for catalog, label in (("said0", "said (amortised, 0 row epochs)"), ("said2", "said (2 row epochs)"),
                       ("textmap", "linear-text-map (hashing)")):
    loaded = load_bundle(client, catalog)
    b = loaded.bundle
    index = {i: r for r, i in enumerate(b.item_ids)}
    vocab = b.metadata["encoder_vocab_size"]
    old = b.item_vectors[:vocab]
    cos, ranks = [], []
    for new_id, src_id in sources.items():
        v = b.item_vectors[index[new_id]]
        sims = old @ v
        cos.append(sims[index[src_id]])
        ranks.append(int((sims > sims[index[src_id]]).sum()) + 1)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, vocab, size=(2000, 2))
    baseline = float(np.mean(np.sum(old[pairs[:, 0]] * old[pairs[:, 1]], axis=1)))
    metrics = {"cos_to_source": round(float(np.mean(cos)), 4), "source_rank_median": float(np.median(ranks)),
               "source_in_top10": round(float(np.mean(np.array(ranks) <= 10)), 3),
               "random_pair_cos": round(baseline, 4), "catalogue": vocab, "new_items": len(sources)}
    print(f"{label}: {metrics}")
    runs.append(RunResult(dataset="synthetic-u2000-i600-s0", method=f"refresh-{label}", backbone="sasrec",
                          loss="said_cosine", protocol="new-item-vs-source", seed=0, metrics=metrics,
                          wall_s=None, config={"run": "runs/demo/sasrec (semrec demo, SAID stage 2, SmolLM2-135M)",
                                               "version": loaded.version}))
write_results("refresh-quality.json", runs)
