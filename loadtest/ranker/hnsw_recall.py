"""Recall@10 of the served (cached bench) HNSW index against the exact top-10, per ef, for the encoder's
queries (random-weight SASRec on random histories) and for queries near the catalogue. Load-independent."""

import json
import os
import sys

import numpy as np
from threadpoolctl import threadpool_limits

threadpool_limits(1, "blas")
from semrec.bundle import Bundle  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from semrec_ranker.engine import Engine  # noqa: E402 - after the BLAS limit / ONNX Runtime first

n = int(sys.argv[1])
out = sys.argv[2]
b = Bundle.load(os.path.expanduser(f"~/.cache/semrec/bench/http-sasrec-{n}x256-len50-seed0"))
rng = np.random.default_rng(3)
hist = [[f"i{j}" for j in rng.integers(1, n + 1, 20)] for _ in range(300)]
X = b.item_vectors
e = Engine("r", b, ann_threshold=0, ann_expansion=256)
enc = np.stack([e.encoder.encode(e._padded(e.prepare(h, 10).rows)[None, :])[0] for h in hist])
r2 = np.random.default_rng(2)
near = X[r2.integers(0, n, (300, 3))].mean(1) + r2.standard_normal((300, X.shape[1])).astype(np.float32) / (
    4 * np.sqrt(X.shape[1])
)
near /= np.linalg.norm(near, axis=1, keepdims=True)
none = np.empty(0, np.int64)
truth = {
    name: [e.exact.search(q, 10, none)[0] for q in qs] for name, qs in (("encoder", enc), ("near", near))
}
rows = []
for ef in (64, 128, 192, 256, 512):
    e.index.index.expansion_search = ef
    row = {"ef": ef}
    for name, qs in (("encoder", enc), ("near", near)):
        got = [e.index.search(q, 10, none)[0] for q in qs]
        row[f"recall_at_10_{name}_queries"] = round(
            float(np.mean([np.isin(t, g).mean() for t, g in zip(truth[name], got, strict=False)])), 4
        )
    print(row, flush=True)
    rows.append(row)
json.dump(
    {
        "n_items": n,
        "index": "usearch HNSW f16, M=16, expansion_add 64 (the bench bundle's)",
        "queries": 300,
        "rows": rows,
    },
    open(out, "w"),
    indent=1,
)
