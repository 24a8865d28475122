"""The load test behind `semrec bench load`: a Locust load test of a running ranker, judged against a p99 latency SLO.

It starts nothing but Locust (the ranker must already answer at `--url`), writes Locust's CSV stats and
HTML report, the exact per-request samples, a PNG of p50/p95/p99 and request rate per second, and a
results JSON; it exits 1 when p99 exceeds `--slo-p99-ms`, any request failed, or (with `--soak`) the
ranker's memory grew by more than `--max-memory-growth-mib`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from semrec.cli_builder import echo
from semrec.config import JobConfig
from semrec.errors import UserError
from semrec.results import RunResult, write_results
from semrec.vocabulary import AcceptsOldNames, OldName

from semrec_worker.loadgen.memory import MemorySampler, memory_growth
from semrec_worker.loadgen.runner import DEFAULT_LOCUSTFILE, run_locust
from semrec_worker.loadgen.samples import ALL, per_endpoint, per_second, read_samples


class LoadTestConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out_dir": "out"}

    url: str = Field("http://127.0.0.1:8000", description="base URL of a running ranker")
    users: int = Field(20, ge=1, le=10_000, description="concurrent simulated users")
    spawn_rate: float = Field(20.0, gt=0, description="users started per second")
    user_rps: float = Field(10.0, ge=0, description="requests per second per user (0 = as fast as possible)")
    duration_s: float = Field(30.0, gt=0, le=86_400, description="how long to run (seconds)")
    soak: bool = Field(False, description="soak test: run --soak-duration-s and check the ranker's memory")
    soak_duration_s: float = Field(600.0, gt=0, le=86_400, description="duration of a soak run (seconds)")
    max_memory_growth_mib: float = Field(32.0, gt=0, description="soak: allowed RSS growth after warm-up (MiB)")
    ranker_pid: int | None = Field(None, description="soak: read the memory of local process PID (psutil) instead of /metrics")
    slo_p99_ms: float = Field(20.0, gt=0, description="p99 latency objective (ms) over all requests")
    warmup_s: float = Field(0.0, ge=0, description="seconds at the start left out of the verdict statistics")
    k: int = Field(10, ge=1, le=200, description="items per recommendation")
    mix: str = Field("", description="request mix, e.g. user=45,history=20,events=25,similar=10")
    items_file: Path | None = Field(None, description="item ids to use (one per line) instead of discovering them")
    locustfile: Path = Field(DEFAULT_LOCUSTFILE, description="the Locust user behaviour")
    out: Path | None = Field(None, description="directory of the Locust CSV/HTML, samples and plot (default runs/load/<time>)")
    results: Path | None = Field(None, description="results JSON (default results/load-<name>.json)")
    name: str = Field("ranker", description="label of this run in the results (e.g. ranker-100k)")
    append: bool = Field(False, description="append to the results file instead of replacing it")


def check_ranker(url: str) -> dict:
    """The ranker's /readyz body; a clear error when nothing answers or no bundle is loaded."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise UserError(f"the ranker at {url} is not ready (HTTP {exc.code} from /readyz): is a bundle published?") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"nothing answers at {url} ({exc}); start a ranker with `semrec serve` first") from exc
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return {}


@dataclass(frozen=True)
class LoadTestOutcome:
    metrics: dict[str, float]  # overall (p50_ms, p99_ms, rps, ...), "<endpoint> <metric>", rss_* on a soak
    problems: list[str]  # why the run failed its objectives; empty when it passed
    results_path: Path
    out_dir: Path

    @property
    def passed(self) -> bool:
        return not self.problems


def run_load_test(config: LoadTestConfig) -> LoadTestOutcome:
    """Run the load test, print the summary, write the results; the verdict is in the outcome."""
    from semrec_worker.loadgen.plot import plot_load

    readiness = check_ranker(config.url)
    bundle = readiness.get("bundle") or {}
    duration = config.soak_duration_s if config.soak else config.duration_s
    out_dir = config.out or Path("runs/load") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    config.save(out_dir)
    echo(f"load test: {config.users} users x {config.user_rps or 'max'} req/s for {duration:g} s against "
         f"{config.url} (SLO p99 {config.slo_p99_ms:g} ms){', soak' if config.soak else ''}")

    load_before = os.getloadavg()  # other work on the machine shows up in the latencies: record it
    sampler = MemorySampler(config.url, config.ranker_pid, interval_s=max(0.5, duration / 300)) if config.soak else None
    if sampler:
        sampler.start()
    t0 = time.monotonic()
    try:
        outputs = run_locust(
            config.locustfile, config.url, out_dir, config.users, config.spawn_rate, duration,
            config.user_rps, config.k, config.mix, config.items_file,
        )
    finally:
        memory = sampler.stop() if sampler else []
    wall_s = time.monotonic() - t0
    machine_load = {"loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(os.getloadavg()[0], 2)}
    if not outputs.samples.exists():
        raise UserError(f"Locust made no requests (exit {outputs.returncode}): see {outputs.log}")
    samples = read_samples(outputs.samples)
    if len(samples) == 0:
        raise UserError(f"Locust made no requests: see {outputs.log}")
    endpoints = per_endpoint(samples.after(config.warmup_s))
    overall = endpoints[ALL]

    problems = []
    if overall["failures"]:
        problems.append(f"{overall['failures']:.0f} of {overall['requests']:.0f} requests failed "
                        f"(see {outputs.csv_prefix}_failures.csv)")
    if overall["p99_ms"] > config.slo_p99_ms:
        problems.append(f"p99 {overall['p99_ms']:.2f} ms > SLO {config.slo_p99_ms:g} ms")
    growth: dict[str, float] = {}
    if config.soak:
        growth = memory_growth(memory)
        if growth["rss_growth_mib"] > config.max_memory_growth_mib:
            problems.append(f"ranker memory grew {growth['rss_growth_mib']:.1f} MiB "
                            f"> {config.max_memory_growth_mib:g} MiB")

    plot = plot_load(
        per_second(samples), out_dir / "latency.png", config.slo_p99_ms,
        f"{config.name}: {config.users} users, {overall['rps']:.0f} req/s, p99 {overall['p99_ms']:.1f} ms",
        memory, samples.epoch0,
    )
    metrics = {**overall, **growth, "slo_p99_ms": config.slo_p99_ms, "passed": float(not problems)}
    for name, summary in endpoints.items():
        if name != ALL:
            metrics.update({f"{name} {key}": value for key, value in summary.items()})
    results_path = config.results or Path("results") / f"load-{config.name}.json"
    write_results(
        results_path,
        [RunResult(
            dataset=readiness.get("catalog"), method="http-load", backbone=bundle.get("backbone"), protocol="locust",
            metrics=metrics, wall_s=round(wall_s, 2),
            config={**config.to_dict(), "ranker": readiness, "duration_s": duration, "out_dir": str(out_dir),
                    **machine_load},
        )],
        append=config.append,
    )

    echo(f"{overall['requests']:.0f} requests, {overall['failures']:.0f} failed, {overall['rps']:.1f} req/s")
    echo(f"{'endpoint':<24} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'fail':>6}")
    for name, s in endpoints.items():
        echo(f"{name:<24} {s['rps']:>8.1f} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['p99_ms']:>8.2f} "
             f"{s['failures']:>6.0f}")
    if growth:
        echo(f"ranker RSS {growth['rss_baseline_mib']:.1f} -> {growth['rss_end_mib']:.1f} MiB "
             f"(growth {growth['rss_growth_mib']:+.1f} MiB, slope {growth['rss_slope_mib_per_min']:+.2f} MiB/min)")
    echo(f"report: {outputs.html}  plot: {plot}  stats: {outputs.stats_csv}  results: {results_path}")
    if problems:
        echo("FAILED: " + "; ".join(problems))
    else:
        echo(f"passed: p99 {overall['p99_ms']:.2f} ms <= {config.slo_p99_ms:g} ms, no failed requests")
    return LoadTestOutcome(metrics, problems, results_path, out_dir)
