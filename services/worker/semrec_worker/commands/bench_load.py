"""`semrec bench load`: a Locust load test of a running ranker, judged against a p99 latency SLO
(the test itself: `semrec_worker.loadgen.load_test`)."""

from __future__ import annotations

import typer
from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.loadgen.load_test import LoadTestConfig, LoadTestOutcome, run_load_test


def bench_load(config: LoadTestConfig) -> LoadTestOutcome:
    outcome = run_load_test(config)
    if not outcome.passed:
        raise typer.Exit(1)
    return outcome


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench, "load", LoadTestConfig, bench_load,
        "Locust load test of a running ranker (--url); exit 1 if p99 > SLO, a request failed or memory grew.",
    )
