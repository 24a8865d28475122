"""The load-test runner (`semrec bench load`) and the local stack helpers.

The runner is exercised end to end against the real ranker: a real redis-server, a published bundle with a
real ONNX encoder, `semrec serve` as its own process, a real Locust process and real HTTP.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from semrec.cli import build_app
from semrec.errors import UserError
from semrec.results import read_results
from semrec.settings import redis_settings
from semrec.store import publish_bundle
from semrec_worker.loadgen.memory import memory_growth
from semrec_worker.loadgen.samples import Samples, latency_summary, per_second
from semrec_worker.local_stack import LocalStack, ManagedProcess, free_port, http_ok, port_open
from typer.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[3]
ENDPOINTS = ("/recommend [user_id]", "/recommend [history]", "/events", "/items/{id}/similar")
RANKER_ENV = {"SEMREC_ORT_THREADS": "1", "SEMREC_ANN_THRESHOLD": "100000", "SEMREC_POLL_INTERVAL_S": "1"}


def semrec(*args: str) -> Result:
    """The `semrec` CLI in this process (Locust still runs as its own process)."""
    return CliRunner().invoke(build_app(), list(args))


def start_real_ranker(stack: LocalStack, n_items: int = 300) -> ManagedProcess:
    """redis-server + a published bundle + `semrec serve`, all stopped by `stack`.

    The ranker's port is picked free and bound a moment later by the child process; another process can take
    it in between, so a start that fails is retried on a new port."""
    redis = stack.redis()
    publish_bundle(redis_settings(redis.url).client(), "shop", tiny_bundle(n_items))
    for attempt in range(3):
        try:
            return stack.ranker(redis.url, "shop", port=free_port(), env=RANKER_ENV, timeout_s=180)
        except UserError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def request_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(latency ms, ok) of every request in the runner's requests.csv, read without the runner's code."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["response_ms"]) for r in rows]), np.array([r["ok"] == "1" for r in rows])


@pytest.fixture(autouse=True)
def short_catalogue_discovery(monkeypatch) -> None:
    """Locust discovers item ids through /recommend and then /similar until it knows SEMREC_LOADTEST_POOL ids:
    with the default 2000 and a 300-item catalogue it would walk every item's /similar before the first user
    request, which on a busy machine can take the whole of a few-second run. 100 come from the first call."""
    monkeypatch.setenv("SEMREC_LOADTEST_POOL", "100")


@pytest.mark.slow
def test_bench_load_against_the_real_ranker_writes_reports_and_judges_by_the_samples(tmp_path: Path) -> None:
    slo_ms = 500.0
    with LocalStack(tmp_path / "stack") as stack:
        ranker = start_real_ranker(stack)
        out, results = tmp_path / "load", tmp_path / "results" / "load-real.json"
        run = semrec(
            "bench", "load", "--url", ranker.url, "--users", "4", "--user-rps", "5", "--soak",
            "--soak-duration-s", "8", "--slo-p99-ms", str(slo_ms), "--max-memory-growth-mib", "256",
            "--out", str(out), "--results", str(results), "--name", "real",
        )  # fmt: skip
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html", "latency.png", "requests.csv"):
        assert (out / name).stat().st_size > 0, name
    ms, ok = request_samples(out / "requests.csv")
    assert len(ms) > 20 and ok.all(), "the real ranker failed requests"
    doc = read_results(results)
    metrics = doc.runs[0].metrics
    # the summary is the samples' own statistics, computed here with numpy
    assert metrics["requests"] == len(ms) and metrics["failures"] == 0
    for q in (50, 95, 99):
        assert metrics[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q), abs=1e-3)
    assert metrics["max_ms"] == pytest.approx(ms.max(), abs=1e-3)
    # the verdict follows from the measurements: p99 within the SLO, no failure, bounded memory growth
    expected_pass = np.percentile(ms, 99) <= slo_ms and metrics["rss_growth_mib"] <= 256
    assert metrics["passed"] == float(expected_pass) and run.exit_code == (0 if expected_pass else 1), run.stderr[-3000:]
    for endpoint in ENDPOINTS:  # the whole mix was exercised
        assert metrics[f"{endpoint} requests"] > 0, endpoint
    assert metrics["rss_end_mib"] > 10  # the ranker's real resident memory (ONNX Runtime loaded), from /metrics
    assert doc.runs[0].dataset == "shop" and doc.runs[0].config["ranker"]["bundle"]["n_items"] == 300


@pytest.mark.slow
def test_bench_load_exits_nonzero_on_failures_and_slo(tmp_path: Path) -> None:
    stale = tmp_path / "stale-items.txt"
    stale.write_text("".join(f"gone-{i}\n" for i in range(20)))  # ids the catalogue does not hold: 404
    with LocalStack(tmp_path / "stack") as stack:
        ranker = start_real_ranker(stack)
        run = semrec(
            "bench", "load", "--url", ranker.url, "--users", "3", "--duration-s", "5", "--slo-p99-ms", "0.001",
            "--mix", "user=1,history=0,events=0,similar=1", "--items-file", str(stale),
            "--out", str(tmp_path / "load"), "--results", str(tmp_path / "load.json"),
        )  # fmt: skip
    assert run.exit_code == 1, run.stderr[-3000:]
    assert "requests failed" in run.stderr and "> SLO 0.001 ms" in run.stderr
    metrics = read_results(tmp_path / "load.json").runs[0].metrics
    assert metrics["passed"] == 0.0 and metrics["/items/{id}/similar failures"] > 0
    assert metrics["/recommend [user_id] failures"] == 0  # by user: the ranker answers (popularity fallback)
    assert "/recommend [history] requests" not in metrics  # weight 0 in the mix: never sent


def test_bench_load_refuses_without_a_ranker(tmp_path: Path) -> None:
    run = semrec("bench", "load", "--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path))
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


@pytest.mark.slow
def test_local_stack_stops_what_it_started(tmp_path: Path) -> None:
    import redis

    with LocalStack(tmp_path) as stack:
        server = stack.redis()
        assert redis.Redis.from_url(server.url).ping()
        publish_bundle(redis_settings(server.url).client(), "shop", tiny_bundle(50))
        ranker = stack.ranker(server.url, "shop", port=free_port(), env=RANKER_ENV, timeout_s=180)
        assert http_ok(f"{ranker.url}/readyz")
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        ranker_port = int(ranker.url.rsplit(":", 1)[1])
    assert server.process.poll() is not None and ranker.process.poll() is not None
    assert not port_open(port) and not port_open(ranker_port)


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
        metadata={"max_len": max_len, "dim": dim, "backbone": "tiny-sum", "source": "tests/integration/demo/test_loadtest.py"},
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


@pytest.mark.slow
def test_serving_demo_against_real_ranker(tmp_path: Path) -> None:
    """publish -> semrec serve -> /recommend -> Locust -> everything stopped, with the real services."""
    from semrec_worker.serving_demo import serve_and_load

    run_dir = tmp_path / "run"
    tiny_bundle().save(run_dir / "bundle")
    outcome = serve_and_load(run_dir, tmp_path / "demo", load_duration_s=8, users=4, slo_p99_ms=500)
    assert outcome.metrics["failures"] == 0, outcome.problems
    ms, ok = request_samples(tmp_path / "demo" / "load" / "requests.csv")
    assert ok.all() and outcome.metrics["p99_ms"] == pytest.approx(np.percentile(ms, 99), abs=1e-3)
    assert outcome.passed == (np.percentile(ms, 99) <= 500)  # the verdict follows from the samples
    for endpoint in ENDPOINTS:
        assert outcome.metrics[f"{endpoint} requests"] > 0, endpoint
    results = json.loads((tmp_path / "demo" / "load.json").read_text())
    assert results["runs"][0]["dataset"] == "demo"
