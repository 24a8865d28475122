"""The load-test runner (`semrec bench load`) and the local stack helpers.

The runner is exercised end to end (real Locust process, real HTTP) against tests/stub_ranker.py, a
stand-in server with the ranker's endpoint shapes and no model, because the ranker itself lives on another
branch. `test_serving_demo_against_real_ranker` runs the same path against the real ranker (tiny ONNX
bundle, real redis-server, `semrec publish`, `semrec serve`) and is skipped until those commands exist.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from semrec.cli import build_app
from semrec.results import read_results
from semrec_worker.loadgen.memory import memory_growth
from semrec_worker.loadgen.samples import Samples, latency_summary, per_second
from semrec_worker.local_stack import LocalStack, free_port, http_ok, port_open
from typer.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "tests" / "stub_ranker.py"
ENDPOINTS = ("/recommend [user_id]", "/recommend [history]", "/events", "/items/{id}/similar")


def semrec(*args: str) -> Result:
    """The `semrec` CLI in this process (Locust still runs as its own process)."""
    return CliRunner().invoke(build_app(), list(args))


def start_stub(stack: LocalStack, *flags: str):
    port = free_port()
    command = [sys.executable, str(STUB), "--port", str(port), *flags]
    return stack.ranker("redis://unused", "stub", port=port, command=command, timeout_s=30)


def test_bench_load_against_stub_writes_reports_and_passes(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "stack") as stack:
        stub = start_stub(stack)
        out, results = tmp_path / "load", tmp_path / "results" / "load-stub.json"
        run = semrec(
            "bench", "load", "--url", stub.url, "--users", "4", "--user-rps", "5", "--soak",
            "--soak-duration-s", "5", "--slo-p99-ms", "10000", "--max-memory-growth-mib", "64",
            "--out-dir", str(out), "--results", str(results), "--name", "stub",
        )  # fmt: skip
    assert run.exit_code == 0, run.stderr[-3000:]
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html", "latency.png", "requests.csv"):
        assert (out / name).stat().st_size > 0, name
    metrics = read_results(results).runs[0].metrics
    assert metrics["failures"] == 0 and metrics["passed"] == 1.0
    assert metrics["p50_ms"] <= metrics["p95_ms"] <= metrics["p99_ms"] <= metrics["max_ms"]
    for endpoint in ENDPOINTS:  # the whole mix was exercised
        assert metrics[f"{endpoint} requests"] > 0, endpoint
    assert "rss_growth_mib" in metrics and metrics["rss_end_mib"] > 0
    assert "passed" in run.stderr


def test_bench_load_exits_nonzero_on_failures_and_slo(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "stack") as stack:
        stub = start_stub(stack, "--fail-similar", "--delay-ms", "15")
        run = semrec(
            "bench", "load", "--url", stub.url, "--users", "3", "--duration-s", "3", "--slo-p99-ms", "5",
            "--mix", "user=1,history=0,events=0,similar=1",
            "--out-dir", str(tmp_path / "load"), "--results", str(tmp_path / "load.json"),
        )  # fmt: skip
    assert run.exit_code == 1, run.stderr[-3000:]
    assert "requests failed" in run.stderr and "> SLO 5 ms" in run.stderr
    metrics = read_results(tmp_path / "load.json").runs[0].metrics
    assert metrics["passed"] == 0.0 and metrics["/items/{id}/similar failures"] > 0
    assert "/recommend [history] requests" not in metrics  # weight 0 in the mix: never sent


def test_bench_load_refuses_without_a_ranker(tmp_path: Path) -> None:
    run = semrec("bench", "load", "--url", f"http://127.0.0.1:{free_port()}", "--out-dir", str(tmp_path))
    assert run.exit_code == 2
    assert "nothing answers" in run.stderr and "Traceback" not in run.stderr


def test_latency_statistics() -> None:
    ms = np.arange(1, 96, dtype=float)  # 1..95 ms, one request every 0.1 s: 9.4 s
    samples = Samples(np.arange(95) * 0.1, np.array(["a"] * 95, dtype=object), ms, np.arange(95) != 7)
    summary = latency_summary(samples)
    assert summary["failures"] == 1 and summary["requests"] == 95
    assert summary["p50_ms"] == pytest.approx(48.0) and summary["p99_ms"] == pytest.approx(94.06)
    rows = per_second(samples)
    assert len(rows["rps"]) == 9  # the last, partial second (9.0-9.4 s) is left out
    assert rows["rps"][1:].tolist() == [10.0] * 8
    assert rows["failures"][0] == 1 and rows["failures"][1:].sum() == 0
    assert rows["p50_ms"][2] == pytest.approx(np.percentile(np.arange(21, 31), 50))


def test_memory_growth_tells_a_leak_from_a_plateau() -> None:
    t = np.arange(0, 600, 5.0)
    warm_then_flat = [(s, int((100 + min(s, 60) / 3) * 2**20)) for s in t]  # grows while warming up
    leaking = [(s, int((100 + s / 10) * 2**20)) for s in t]  # +6 MiB/min, forever
    flat = memory_growth(warm_then_flat)
    assert abs(flat["rss_growth_mib"]) < 0.5 and abs(flat["rss_slope_mib_per_min"]) < 0.1
    leak = memory_growth(leaking)
    assert leak["rss_growth_mib"] > 30 and leak["rss_slope_mib_per_min"] == pytest.approx(6.0, rel=0.01)


def test_local_stack_stops_what_it_started(tmp_path: Path) -> None:
    import redis

    with LocalStack(tmp_path) as stack:
        server = stack.redis()
        assert redis.Redis.from_url(server.url).ping()
        stub = start_stub(stack)
        assert http_ok(f"{stub.url}/readyz")
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    assert server.process.poll() is not None and stub.process.poll() is not None
    assert not port_open(port)


def tiny_bundle(n_items: int = 300, dim: int = 16, max_len: int = 20, seed: int = 0):
    """A real Bundle whose ONNX encoder is the L2-normalised sum of item vectors (built without torch)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from semrec.bundle import ENCODER_INPUT, ENCODER_OUTPUT, Bundle

    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n_items + 1, dim)).astype(np.float32)
    table[0] = 0.0
    nodes = [
        helper.make_node("Gather", ["table", ENCODER_INPUT], ["gathered"], axis=0),
        helper.make_node("ReduceSum", ["gathered", "axes"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "eps"], ["shifted"]),
        helper.make_node("LpNormalization", ["shifted"], [ENCODER_OUTPUT], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes, "tiny_sum_encoder",
        [helper.make_tensor_value_info(ENCODER_INPUT, TensorProto.INT64, ["batch", max_len])],
        [helper.make_tensor_value_info(ENCODER_OUTPUT, TensorProto.FLOAT, ["batch", dim])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.full(dim, 1e-3, dtype=np.float32), "eps"),
        ],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    vectors = table[1:] / np.linalg.norm(table[1:], axis=1, keepdims=True)
    return Bundle(
        encoder_onnx=model.SerializeToString(),
        item_ids=[f"item-{i}" for i in range(1, n_items + 1)],
        item_vectors=vectors,
        popularity=rng.integers(1, 100, n_items).astype(np.float32),
        metadata={"max_len": max_len, "dim": dim, "backbone": "tiny-sum", "source": "tests/test_loadtest.py"},
    )


def test_tiny_bundle_encoder_runs_in_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime")
    bundle = tiny_bundle()
    session = ort.InferenceSession(bundle.encoder_onnx, providers=["CPUExecutionProvider"])
    ids = np.zeros((2, bundle.max_len), dtype=np.int64)
    ids[0, -3:] = [4, 5, 6]
    (embedding,) = session.run(None, {"item_ids": ids})
    assert embedding.shape == (2, bundle.dim)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)


def _ranker_commands_available() -> bool:
    import typer

    commands = typer.main.get_command(build_app()).commands  # type: ignore[attr-defined]
    return "serve" in commands and "publish" in commands


@pytest.mark.slow
def test_serving_demo_against_real_ranker(tmp_path: Path) -> None:
    """publish -> semrec serve -> /recommend -> Locust -> everything stopped, with the real services."""
    if not _ranker_commands_available():
        pytest.skip("`semrec serve` / `semrec publish` are not on this branch yet (issues 7 and 8)")
    from semrec_worker.serving_demo import serve_and_load

    run_dir = tmp_path / "run"
    tiny_bundle().save(run_dir / "bundle")
    outcome = serve_and_load(run_dir, tmp_path / "demo", load_seconds=4, users=4, slo_p99_ms=10_000)
    assert outcome.metrics["failures"] == 0, outcome.problems
    for endpoint in ENDPOINTS:
        assert outcome.metrics[f"{endpoint} requests"] > 0, endpoint
    results = json.loads((tmp_path / "demo" / "load.json").read_text())
    assert results["runs"][0]["dataset"] == "demo"
