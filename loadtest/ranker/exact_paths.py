"""Exact top-10 paths at 100k x 256 on this CPU: per-query cost alone and in batches, and whether each returns
the float32 top-10 (identical rows). Writes a JSON list to argv[2]."""

import json
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

threadpool_limits(1, "blas")
from semrec.store.ann import usearch_index  # noqa: E402 - after the BLAS limit / ONNX Runtime first

usearch_index()  # onnxruntime first, then usearch
import onnxruntime as ort  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from onnx import TensorProto, helper, numpy_helper  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from semrec.bundle import Bundle  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from semrec_ranker.engine.index import ExactIndex, QuantizedIndex, quantize  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from usearch.index import MetricKind  # noqa: E402 - after the BLAS limit / ONNX Runtime first
from usearch.index import search as usearch_search  # noqa: E402 - after the BLAS limit / ONNX Runtime first

n = int(sys.argv[1])
X = np.ascontiguousarray(
    Bundle.load(os.path.expanduser(f"~/.cache/semrec/bench/http-sasrec-{n}x256-len50-seed0")).item_vectors,
    dtype=np.float32,
)
rng = np.random.default_rng(1)
near = X[rng.integers(0, n, (64, 3))].mean(1) + rng.standard_normal((64, 256)).astype(np.float32) / 64
rand = rng.standard_normal((64, 256)).astype(np.float32)
Q = np.concatenate([near, rand])
Q /= np.linalg.norm(Q, axis=1, keepdims=True)
none = np.empty(0, np.int64)
ex = ExactIndex(X)
want = [ex.search(q, 10, none)[0] for q in Q]
out = []


def bench(name, fn, batch):
    """fn(queries [b, d]) -> list of row arrays; per-query ms p50/p99 over batches, and identical top-10 share."""
    got = []
    for s in range(0, len(Q), batch):
        got += fn(Q[s : s + batch])
    same = float(np.mean([np.array_equal(np.asarray(g)[:10], w) for g, w in zip(got, want, strict=False)]))
    recall = float(np.mean([np.isin(w, np.asarray(g)[:10]).mean() for g, w in zip(got, want, strict=False)]))
    ts = []
    for _r in range(3):
        for s in range(0, len(Q), batch):
            t = time.perf_counter()
            fn(Q[s : s + batch])
            ts.append((time.perf_counter() - t) / batch)
    ts = np.array(ts) * 1000
    row = {
        "path": name,
        "batch": batch,
        "per_query_p50_ms": round(float(np.percentile(ts, 50)), 3),
        "per_query_p99_ms": round(float(np.percentile(ts, 99)), 3),
        "identical_top10": same,
        "recall_at_10": recall,
    }
    print(row, flush=True)
    out.append(row)


qi = QuantizedIndex(X, quantize(X), 256, 1, ex)
for b in (1, 4, 8, 16):
    bench(
        "float32 GEMV/GEMM + argpartition (ExactIndex)",
        lambda qs: [r for r, _ in ex.search_batch(qs, [10] * len(qs), [none] * len(qs))],
        b,
    )
    bench(
        "int8 MatMulInteger + TopK, float32 rescoring (QuantizedIndex)",
        lambda qs: [r for r, _ in qi.search_batch(qs, [10] * len(qs), [none] * len(qs))],
        b,
    )
X16 = X.astype(np.float16)


def us(data, cast, k=10):
    def fn(qs):
        m = usearch_search(data, cast(qs), k, MetricKind.IP, exact=True, threads=1)
        keys = np.asarray(m.keys).reshape(len(qs), -1)
        return [np.asarray(r, dtype=np.int64) for r in keys]

    return fn


bench("usearch exact f32", us(X, lambda q: q), 1)
bench("usearch exact f32 batch", us(X, lambda q: q), 8)
bench("usearch exact f16 (top-10 as is)", us(X16, lambda q: q.astype(np.float16)), 1)


# f16 candidates + float32 rescoring (no exactness proof: measured share only)
def f16_rescored(qs):
    m = usearch_search(X16, qs.astype(np.float16), 64, MetricKind.IP, exact=True, threads=1)
    keys = np.asarray(m.keys).reshape(len(qs), -1).astype(np.int64)
    res = []
    for q, rows in zip(qs, keys, strict=False):
        s = X[rows] @ q
        res.append(rows[np.argsort(-s, kind="stable")[:10]])
    return res


bench("usearch exact f16 top-64 + float32 rescoring", f16_rescored, 1)
# int8 prepacked (the matrix as a constant initializer: MLAS packs it once, in each worker's heap)
qm = quantize(X)
g = helper.make_graph(
    [
        helper.make_node("MatMulInteger", ["query", "items_t", "zp"], ["dots"]),
        helper.make_node("Cast", ["dots"], ["dots_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["dots_f", "scales"], ["approx"]),
        helper.make_node("TopK", ["approx", "k"], ["values", "indices"], axis=-1, largest=1, sorted=1),
    ],
    "g",
    [
        helper.make_tensor_value_info("query", TensorProto.UINT8, ["b", 256]),
        helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
    ],
    [
        helper.make_tensor_value_info("values", TensorProto.FLOAT, ["b", "c"]),
        helper.make_tensor_value_info("indices", TensorProto.INT64, ["b", "c"]),
    ],
    initializer=[
        numpy_helper.from_array(np.array(128, np.uint8), "zp"),
        numpy_helper.from_array(qm.items_t, "items_t"),
        numpy_helper.from_array(qm.scales, "scales"),
    ],
)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.add_session_config_entry("session.intra_op.allow_spinning", "0")
sess = ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])


def prepacked(qs):
    res = []
    u8 = []
    for q in qs:
        sc = np.abs(q).max() / 127
        u8.append((np.clip(np.rint(q / sc), -127, 127) + 128).astype(np.uint8))
    _, idx = sess.run(None, {"query": np.stack(u8), "k": np.array([256], np.int64)})
    for q, rows in zip(qs, idx, strict=False):
        s = X[rows] @ q
        res.append(rows[np.argsort(-s, kind="stable")[:10]])
    return res


bench("int8 prepacked initializer + TopK 256 + float32 rescoring (no proof)", prepacked, 1)
bench("int8 prepacked initializer + TopK 256 + float32 rescoring (no proof)", prepacked, 8)
json.dump(
    {
        "n_items": n,
        "cpu_flags": sorted(
            set(open("/proc/cpuinfo").read().split())
            & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "f16c", "fma", "amx_int8"}
        ),
        "load_average": os.getloadavg(),
        "rows": out,
    },
    open(sys.argv[2], "w"),
    indent=1,
)
