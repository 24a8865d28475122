"""Run Locust headless as a child process against a URL; it starts nothing else and stops what it started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from semrec.errors import UserError
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[4]
DEFAULT_LOCUSTFILE = REPO / "loadtest" / "locustfile.py"


@dataclass(frozen=True)
class LocustOutputs:
    csv_prefix: Path
    html: Path
    samples: Path
    log: Path
    returncode: int

    @property
    def stats_csv(self) -> Path:
        return self.csv_prefix.with_name(self.csv_prefix.name + "_stats.csv")


def run_locust(
    locustfile: Path,
    url: str,
    out_dir: Path,
    users: int,
    spawn_rate: float,
    duration_s: float,
    user_rps: float,
    k: int,
    mix: str = "",
    items_file: Path | None = None,
    quiet: bool = False,
) -> LocustOutputs:
    """`locust --headless` for `duration_s` seconds with a progress bar; returns where it wrote its outputs."""
    if not Path(locustfile).is_file():
        raise UserError(f"locustfile not found: {locustfile}")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = LocustOutputs(
        csv_prefix=out_dir / "locust",
        html=out_dir / "report.html",
        samples=out_dir / "requests.csv",
        log=out_dir / "locust.log",
        returncode=-1,
    )
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
        "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{max(1, round(duration_s))}s",
        "--csv", str(outputs.csv_prefix), "--csv-full-history", "--html", str(outputs.html),
        "--only-summary", "--stop-timeout", "5", "--logfile", str(outputs.log), "--loglevel", "INFO",
    ]
    env = {
        **os.environ,
        "SEMREC_LOADTEST_SAMPLES": str(outputs.samples),
        "SEMREC_LOADTEST_USER_RPS": str(user_rps),
        "SEMREC_LOADTEST_K": str(k),
        "SEMREC_LOADTEST_MIX": mix,
    }
    if items_file is not None:
        env["SEMREC_LOADTEST_ITEMS"] = str(items_file)
    with (out_dir / "locust.stdout").open("wb") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        try:
            with tqdm(total=round(duration_s), unit="s", desc="locust", disable=True if quiet else None, leave=False) as bar:
                t0 = time.monotonic()
                while process.poll() is None:
                    time.sleep(0.5)
                    bar.n = min(round(time.monotonic() - t0), bar.total)
                    bar.refresh()
            returncode = process.wait()
        finally:
            if process.poll() is None:  # interrupted: stop the Locust we started
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    return LocustOutputs(outputs.csv_prefix, outputs.html, outputs.samples, outputs.log, returncode)
