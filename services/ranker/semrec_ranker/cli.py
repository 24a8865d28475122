"""Registers the ranker's commands on the `semrec` CLI: `semrec serve`, `semrec bench ranker`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command
from semrec.config import JobConfig


class ServeConfig(JobConfig):
    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 in containers)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (each loads the bundle)")
    access_log: bool = Field(False, description="log every request (costs latency)")


def serve(config: ServeConfig) -> None:
    """Run the ranker. Everything else (Redis, catalogue, threads, ...) comes from SEMREC_* variables."""
    import logging

    import uvicorn

    from semrec_ranker.core.config import get_settings
    from semrec_ranker.server import uvicorn_options

    settings = get_settings()  # refuses unsafe settings (exit 2) before anything listens
    if config.workers > 1 and settings.shared_dir is None:
        import os
        import tempfile

        # the workers (spawned, so they read the environment again) map one copy of the arrays
        shared = Path(tempfile.gettempdir()) / f"semrec-ranker-{os.getuid()}" / settings.catalog
        os.environ["SEMREC_SHARED_DIR"] = str(shared)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "semrec_ranker.main:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        access_log=config.access_log,
        log_level=settings.log_level,
        loop="uvloop",
        **uvicorn_options(settings),
    )


def register(groups: CommandGroups) -> None:
    config_command(groups.root, "serve", ServeConfig, serve, "Run the online ranker (settings: SEMREC_* env vars).")
    from semrec_ranker.bench.cli import register as register_bench

    register_bench(groups)
