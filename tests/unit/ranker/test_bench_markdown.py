"""The docs' ranker tables are printed from results files: every step and every cell becomes a row."""

from __future__ import annotations

from semrec.results import RunResult, write_results
from semrec_ranker.bench.markdown import main, render


def test_render_prints_a_row_per_http_step_and_per_inprocess_cell(tmp_path, capsys) -> None:
    steps = [
        {"rate": rate, "p50_ms": 1.0 + i, "p99_ms": 2.0 + i, "errors": 0, "achieved_rps": rate,
         "server_cpu_ms_per_request": 3.0, "load_average_1m": 0.5}
        for i, rate in enumerate([10, 20, 40])
    ]  # fmt: skip
    http = write_results(tmp_path / "http.json", [
        RunResult(dataset="synthetic-100x8", method="onnxruntime", backbone="sasrec", protocol="http-open-loop",
                  metrics={"max_sustained_rps": 40.0}, config={"steps": steps}),
    ])  # fmt: skip
    inproc = write_results(tmp_path / "inproc.json", [
        RunResult(dataset="synthetic-100x8", method="onnxruntime", backbone="gru4rec", protocol="in-process-exact",
                  metrics={"p50_ms": 1.5, "p99_ms": 2.5, "cpu_p50_ms": 1.4, "cpu_p99_ms": 2.4,
                           "encode_p50_ms": 0.9, "topk_p50_ms": 0.5}),
    ])  # fmt: skip
    http_md = render(http)
    assert [line for line in http_md.splitlines() if line.startswith("| onnxruntime |")] == [
        "| onnxruntime | 10 | 1.0 | 2.0 | 0 | 10 | 3.0 | 0.5 |",
        "| onnxruntime | 20 | 2.0 | 3.0 | 0 | 20 | 3.0 | 0.5 |",
        "| onnxruntime | 40 | 3.0 | 4.0 | 0 | 40 | 3.0 | 0.5 |",
    ]
    assert "max_sustained_rps = 40.0" in http_md
    assert "| 100 | gru4rec | exact | 1.5 / 2.5 | 1.4 / 2.4 | 0.9 | 0.5 | 1 (exact) |" in render(inproc)
    assert "load average" in render(inproc)  # machine_info records how busy the machine was
    assert main([]) == 2


def test_wrk_points_become_rows_with_their_floor_and_memory(tmp_path) -> None:
    metrics = {"rps": 812.5, "p50_ms": 1.2, "p90_ms": 2.0, "p99_ms": 4.5, "errors": 0.0, "floor_p50_ms": 1.0,
               "floor_p99_ms": 1.5, "p99_over_floor_p99": 3.0, "server_cpu_ms_per_request": 1.1}
    config = {"kind": "user", "index": "hnsw", "served_index": "hnsw", "workers": 2, "connections": 16,
              "pinned": False, "memory_after": {"total_rss_mib": 900.0, "total_pss_mib": 610.5,
                                                 "total_anonymous_mib": 250.0}}
    path = write_results(tmp_path / "wrk.json", [
        RunResult(dataset="synthetic-100000x256", method="onnxruntime", backbone="sasrec", protocol="http-wrk",
                  metrics=metrics, config=config),
    ])  # fmt: skip
    rows = [line for line in render(path).splitlines() if line.startswith("| onnxruntime |")]
    assert rows == ["| onnxruntime | 100,000 | hnsw | 2 | user | 16 | closed | 812.5 | 1.2 / 2 / 4.5 | 0 | 1 / 1.5 | 3 "
                    "| 1.1 | 900.0 | 610.5 | 250.0 | - |"]  # fmt: skip


def test_fixed_rate_points_show_the_offered_rate_and_late_sends(tmp_path) -> None:
    metrics = {"rps": 780.0, "p50_ms": 1.2, "p90_ms": 2.0, "p99_ms": 40.0, "errors": 0.0, "floor_p50_ms": 1.0,
               "floor_p99_ms": 1.5, "p99_over_floor_p99": 26.7, "server_cpu_ms_per_request": 1.1,
               "late_fraction": 0.25, "load_average_1m": 1.9}
    config = {"kind": "history", "index": "hnsw", "workers": 1, "connections": 32, "offered_rps": 1000.0,
              "mode": "fixed-rate"}
    path = write_results(tmp_path / "wrk.json", [
        RunResult(dataset="synthetic-100000x256", method="onnxruntime", backbone="sasrec", protocol="http-wrk",
                  metrics=metrics, config=config),
    ])  # fmt: skip
    row = next(line for line in render(path).splitlines() if line.startswith("| onnxruntime |"))
    assert "| 32 | 1000 (25% late) | 780 |" in row and row.endswith("| 1.9 |")
