"""Data-parallel training: 2 processes (torchrun, gloo) give the single-process result.

The trainer makes this exact up to float summation order: every process draws the same global batch and
keeps half its rows, the loss is a sum divided by the global number of targets (DDP then averages the
gradients), and random draws that shape the batch (BERT4Rec's masks) are made on the global batch. Dropout
and sampled negatives are drawn per process, so the comparison uses dropout 0 and the full softmax.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from semrec.item_table import ItemTable

DATA = "synthetic:users=200,items=120,avg_len=8,seed=2"
COMMON = ["--data", DATA, "--backbone", "sasrec", "--loss", "full_ce", "--dim", "16", "--max-len", "10",
          "--batch-size", "32", "--epochs", "2", "--dropout", "0", "--lr", "3e-3", "--threads", "1"]  # fmt: skip


def semrec_script() -> str:
    return str(Path(sys.executable).parent / "semrec")


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    from semrec.cli import build_app
    from typer.testing import CliRunner

    single = CliRunner().invoke(build_app(), ["train", "seqrec", *COMMON, "--out", str(tmp_path / "one")])
    assert single.exit_code == 0, single.output[-2000:]
    for attempt in range(3):  # the master port can be taken before torchrun binds it: retry on a new one
        out = tmp_path / f"two-{attempt}"
        ddp = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
             "--master-port", str(free_port()), semrec_script(), "train", "seqrec", *COMMON, "--out", str(out)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if ddp.returncode == 0 or "address already in use" not in ddp.stderr.lower():
            break
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "2 process(es)" in ddp.stderr
    one, two = ItemTable.load(tmp_path / "one"), ItemTable.load(out)
    assert np.abs(one.vectors - two.vectors).max() < 1e-4
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["world_size"] == 2
    for a, b in zip(m1["epochs"], m2["epochs"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4
        assert abs(a["valid"]["ndcg@10"] - b["valid"]["ndcg@10"]) < 1e-3
