"""`wrk` (a C HTTP load generator, Debian package `wrk`) driving POST /recommend with a Lua script.

wrk is closed-loop: each of `connections` keeps one request in flight, so the offered rate follows the
server (wrk 4.1 has no constant-rate `-R`; that is wrk2). Latency is measured per request by wrk, in C,
off the server's cores when they are pinned apart (`cpus`). Each body file line is one JSON body; each wrk
thread walks the file from its own random start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from semrec.errors import UserError

LUA = r"""
local bodies, n, i = {}, 0, 0
local headers = {["Content-Type"] = "application/json"}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
function init(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
  i = ((thread_number or 1) * 7919) % n
end
function request()
  i = i % n + 1
  return wrk.format("POST", "/recommend", headers, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SEMREC_WRK {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class WrkResult:
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect + read + write + timeouts + non-2xx/3xx answers

    @classmethod
    def parse(cls, connections: int, output: str) -> WrkResult:
        line = next((ln for ln in output.splitlines() if ln.startswith("SEMREC_WRK ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary: {output[-2000:]}")
        raw = json.loads(line.removeprefix("SEMREC_WRK "))
        errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        return cls(connections, raw["requests"], round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
                   round(raw["p50_us"] / 1000, 3), round(raw["p90_us"] / 1000, 3), round(raw["p99_us"] / 1000, 3),
                   round(raw["max_us"] / 1000, 3), errors)  # fmt: skip


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise UserError("`semrec bench ranker` drives the server with wrk, which is not installed: "
                        "apt-get install wrk")  # fmt: skip
    return binary


def run_wrk(url: str, bodies_file: Path, connections: int, duration_s: float, threads: int,
            workdir: Path, cpus: set[int] | None = None, timeout_s: float = 5.0) -> WrkResult:  # fmt: skip
    script = workdir / "semrec-bench.lua"
    if not script.exists():
        script.write_text(LUA)
    cmd = [wrk_binary(), "-t", str(max(1, min(threads, connections))), "-c", str(connections),
           "-d", f"{max(1, round(duration_s))}s", "--timeout", f"{timeout_s:g}s", "-s", str(script), url,
           "--", str(bodies_file)]  # fmt: skip
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, preexec_fn=preexec)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return WrkResult.parse(connections, done.stdout)
