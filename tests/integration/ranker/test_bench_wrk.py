"""`semrec bench ranker` end to end on a tiny catalogue: real `semrec serve` workers, real wrk, real Redis."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

SMALL = ["--sizes", "", "--http-items", "3000", "--dim", "16", "--max-len", "10", "--http-indexes", "exact",
         "--connections", "2", "--duration-s", "1", "--warmup-s", "0", "--no-peer", "--queries", "20"]  # fmt: skip


def _bench(tmp_path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEMREC_CACHE": str(tmp_path / "cache")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "semrec.cli", "bench", "ranker", *SMALL, "--results-dir",
                           str(tmp_path / "results"), *args], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_without_wrk_the_bench_exits_2_and_says_how_to_install_it(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    done = _bench(tmp_path, path=str(bare))
    assert done.returncode == 2 and "apt-get install wrk" in done.stderr, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("redis-server") is None, reason="needs wrk and redis-server")
def test_the_wrk_bench_reports_every_point_with_its_floor_and_memory(tmp_path):
    done = _bench(tmp_path, "--http-workers", "1,2", "--http-kinds", "history,user", "--rates", "40",
                  "--rate-connections", "4", "--tag", "-t")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((tmp_path / "results" / "ranker-http-t.json").read_text())["runs"]
    points = {(r["config"]["workers"], r["config"]["kind"], r["config"]["offered_rps"]) for r in runs}
    assert points == {(w, kind, rate) for w in (1, 2) for kind in ("history", "user") for rate in (None, 40)}
    paced = [r for r in runs if r["config"]["offered_rps"]]
    assert all(30 <= r["metrics"]["rps"] <= 45 for r in paced), [r["metrics"]["rps"] for r in paced]  # held the pace
    for run in runs:
        m = run["metrics"]
        assert run["protocol"] == "http-wrk" and m["errors"] == 0 and m["requests"] > 0 and m["rps"] > 0
        assert m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"] and m["floor_p99_ms"] > 0
        memory = run["config"]["memory_after"]
        assert len([k for k in memory if k.endswith("_rss_mib") and k.startswith("worker")]) == run["config"]["workers"]
    assert (tmp_path / "results" / "ranker-http-t.png").stat().st_size > 0
