"""`semrec bench faults` end to end (real redis-server, real `semrec serve`, real publisher processes): the
counts per request kind it writes must show the failure modes docs/serving.md promises."""

from __future__ import annotations

from semrec.results import read_results
from semrec_ranker.bench.faults import FaultBenchConfig, bench_faults

OUTAGES = {"redis_sigkill", "redis_sigstop"}


def test_fault_suite_counts_errors_per_request_kind(tmp_path):
    path = bench_faults(FaultBenchConfig(scenario_s=2.0, rate=20, results_dir=tmp_path))
    runs = {run.method.removeprefix("fault:"): run for run in read_results(path).runs}
    assert set(runs) == {"baseline", "redis_sigkill", "redis_sigstop", "corrupt_bundle", "unsigned_bundle",
                         "publisher_sigkill", "data_loss"}  # fmt: skip
    for name, run in runs.items():
        m = run.metrics
        assert m.get("history.ok", 0) > 10 and all(not k.startswith("history.") or k.endswith(("ok", "_ms"))
                                                   for k in m), (name, m)  # fmt: skip
        assert not any(k.endswith((".5xx_other", ".connection_error", ".4xx")) for k in m), (name, m)
        if name not in OUTAGES:
            assert not any(k.endswith(".503") for k in m), (name, m)
    for name in OUTAGES:
        m, checks = runs[name].metrics, runs[name].config["checks"]
        assert m.get("user.503", 0) > 0 and checks["recovered_s"] is not None  # failed fast, then recovered
        assert m["user.max_ms"] < 1500, m  # a hung Redis costs one short request timeout, never a 2 s+ hang
    assert runs["corrupt_bundle"].config["checks"]["refused"] is True
    assert runs["unsigned_bundle"].config["checks"]["refused"] is True
    assert runs["publisher_sigkill"].config["checks"]["unchanged"] is True
    data_loss = runs["data_loss"].config["checks"]
    assert data_loss["new_version"] == "1" and data_loss["served_new_after_s"] is not None
