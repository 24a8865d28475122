"""`semrec bench refresh`: how a run's refresh encoders place new items (see experiments/refresh_bench.py)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.experiments.refresh_bench import BenchRefreshConfig, bench_refresh


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench, "refresh", BenchRefreshConfig, bench_refresh,
        "Refresh encoders on new items (near-copies of catalogue items): cosine and rank of each copy's source, "
        "refresh seconds, optionally the re-encoding of the trained items; results JSON.",
    )
