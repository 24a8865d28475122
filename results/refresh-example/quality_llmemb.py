"""New items vs their source items, and the encoder's reproduction of the 575 trained vectors."""
import json
import sys
import time

import numpy as np
from semrec.bundle import Bundle
from semrec.results import RunResult, read_results, write_results
from semrec.settings import redis_settings
from semrec.store import load_bundle
from semrec_worker.refresh.encoders import load_item_encoder
from semrec_worker.refresh.text import load_items

client = redis_settings(sys.argv[1]).client()
sources = json.load(open("sources.json"))
b = load_bundle(client, "llmemb").bundle
index = {i: r for r, i in enumerate(b.item_ids)}
vocab = b.metadata["encoder_vocab_size"]
old = b.item_vectors[:vocab]
cos, ranks = [], []
for new_id, src_id in sources.items():
    sims = old @ b.item_vectors[index[new_id]]
    cos.append(sims[index[src_id]])
    ranks.append(int((sims > sims[index[src_id]]).sum()) + 1)
pairs = np.random.default_rng(0).integers(0, vocab, size=(2000, 2))
trained = Bundle.load("runs/llmemb-rat")
encoder = load_item_encoder("runs/llmemb-rat", "llmemb")
items = load_items("v1.jsonl")
start = time.perf_counter()
again = encoder.encode([items[i] for i in trained.item_ids])
encode_s = time.perf_counter() - start
repro = np.sum(again * trained.item_vectors, axis=1)
metrics = {"cos_to_source": round(float(np.mean(cos)), 4), "source_rank_median": float(np.median(ranks)),
           "source_in_top10": round(float(np.mean(np.array(ranks) <= 10)), 3),
           "random_pair_cos": round(float(np.mean(np.sum(old[pairs[:, 0]] * old[pairs[:, 1]], axis=1))), 4),
           "catalogue": vocab, "new_items": len(sources), "reproduction_cos_min": round(float(repro.min()), 5),
           "reproduction_cos_mean": round(float(repro.mean()), 5), "reencode_575_s": round(encode_s, 1)}
print(f"llmemb: {metrics}")
runs = read_results("refresh-quality.json").runs + [RunResult(
    dataset="synthetic-u2000-i600-s0", method="refresh-llmemb (RAT, 20 SCFT steps)", backbone="sasrec",
    loss="said_cosine", protocol="new-item-vs-source", seed=0, metrics=metrics,
    config={"run": "runs/llmemb-rat (SmolLM2-135M; see measure_llmemb.sh)"})]
write_results("refresh-quality.json", runs)
