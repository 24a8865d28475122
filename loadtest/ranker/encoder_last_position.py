"""Encoder cost of the synthetic SASRec-like graph (width 256, max_len 50) as exported (every position through
the block, last one kept) against a graph that computes only the last position after the key/value
projections; same outputs (max |diff| printed). Usage: python encoder_last_position.py OUT.json"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
from semrec_ranker.bench.synthetic import build_encoder_module, export_onnx
from torch import nn

full = build_encoder_module("sasrec", 1000, 256, 50, 0)


class LastOnly(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, item_ids):
        m = self.m
        batch, length = item_ids.shape
        dim = m.items.weight.shape[1]
        x = m.items(item_ids) + m.positions.weight[:length].unsqueeze(0)
        q, k, v = m.qkv(m.norm1(x)).chunk(3, dim=-1)
        q = q[:, -1:]  # only the last position's query is needed
        hd = dim // m.heads
        q = q.reshape(batch, 1, m.heads, hd).transpose(1, 2)
        k, v = (t.reshape(batch, length, m.heads, hd).transpose(1, 2) for t in (k, v))
        scores = q @ k.transpose(-1, -2) / hd**0.5
        scores = scores.masked_fill((item_ids == 0).unsqueeze(1).unsqueeze(1), -1e9)
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, 1, dim)
        x = x[:, -1:] + m.out(att)
        x = x + m.ffn(m.norm2(x))
        return nn.functional.normalize(x[:, -1], dim=-1)


last = LastOnly(full).eval()
ids = torch.randint(1, 1000, (4, 50))
with torch.no_grad():
    print("max |diff|", (full(ids) - last(ids)).abs().max().item())
ids_keep = ids
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.add_session_config_entry("session.intra_op.allow_spinning", "0")
rows = []
for name, mod in (("all positions", full), ("last position", last)):
    s = ort.InferenceSession(export_onnx(mod, 50), o, providers=["CPUExecutionProvider"])
    for b in (1, 8):
        x = np.random.default_rng(0).integers(1, 1000, (b, 50)).astype(np.int64)
        for _ in range(20):
            s.run(None, {"item_ids": x})
        ts = []
        for _ in range(300):
            t = time.perf_counter()
            s.run(None, {"item_ids": x})
            ts.append(time.perf_counter() - t)
        row = {
            "graph": name,
            "batch": b,
            "p50_ms": round(float(np.percentile(ts, 50) * 1000), 3),
            "p99_ms": round(float(np.percentile(ts, 99) * 1000), 3),
        }
        print(row, flush=True)
        rows.append(row)
json.dump(
    {
        "encoder": "synthetic SASRec-like, 1 block, width 256, max_len 50, ORT 1 thread",
        "max_abs_diff": float((full(ids) - last(ids)).abs().max().item()),
        "load_average": os.getloadavg(),
        "rows": rows,
    },
    open(sys.argv[1], "w"),
    indent=1,
)
