"""`wrk` (a C HTTP load generator, Debian package `wrk`) driving POST /recommend with a Lua script.

Two modes:

- closed loop (`rate=None`): each of `connections` keeps one request in flight, so the rate follows the
  server;
- fixed offered rate (`rate=R` req/s): wrk 4.1 has no `-R` (that is wrk2, not packaged), so the script's
  `delay()` hook paces the sends: every request claims the next slot of a fixed schedule (t0 + n / R, per
  wrk thread, read from the monotonic clock through LuaJIT's FFI) and its connection waits until then. As
  long as a connection is free at each slot, requests leave on schedule and wrk's per-request latency is
  the latency an open-loop client sees. A slot claimed more than 1 ms late (every connection was busy:
  the server fell behind) is counted in `late`; a point with late sends understates latency the way
  closed-loop generators do, so the report flags it (`late_fraction`) and the achieved rate falls below
  the offered one.

Latency is measured per request by wrk, in C, off the server's cores when they are pinned apart (`cpus`).
Each body file line is one JSON body; each wrk thread walks the file from its own random start.
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
local threads, thread_list = 0, {}
late, paced = 0, 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
  thread_list[threads] = thread
end
function init(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
  i = ((thread_number or 1) * 7919) % n
  if args[2] then start_pacing(tonumber(args[2])) end
end
function request()
  i = i % n + 1
  return wrk.format("POST", "/recommend", headers, bodies[i])
end
function start_pacing(rate) end
function done(summary, latency, requests)
  local e = summary.errors
  local all_late, all_paced = 0, 0
  for _, t in ipairs(thread_list) do
    all_late = all_late + (t:get("late") or 0); all_paced = all_paced + (t:get("paced") or 0)
  end
  io.write(string.format(
    'SEMREC_WRK {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "late": %d, "paced": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    all_late, all_paced))
end
"""

# Appended for a fixed offered rate: defining `delay` makes wrk ask it before every request (the first of each
# connection too).
PACING = r"""
local ffi = require("ffi")
ffi.cdef[[typedef struct { long tv_sec; long tv_nsec; } semrec_timespec;
          int clock_gettime(int clock_id, semrec_timespec *tp);]]
local clock, interval_us, next_us = ffi.new("semrec_timespec"), 0, 0
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end
function start_pacing(rate) interval_us = 1000000 / rate end
function delay()
  local now = now_us()
  if next_us == 0 then next_us = now end
  local slot = next_us
  next_us = next_us + interval_us
  paced = paced + 1
  if slot < now - 1000 then late = late + 1 end
  if slot <= now then return 0 end
  return math.floor((slot - now) / 1000)  -- wrk waits whole milliseconds; slots stay absolute
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
    offered_rps: float | None = None  # the fixed offered rate; None: closed loop
    late_fraction: float = 0.0  # of the paced sends, those that left more than 1 ms after their slot

    @classmethod
    def parse(cls, connections: int, output: str, offered_rps: float | None = None) -> WrkResult:
        line = next((ln for ln in output.splitlines() if ln.startswith("SEMREC_WRK ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary: {output[-2000:]}")
        raw = json.loads(line.removeprefix("SEMREC_WRK "))
        errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        return cls(connections, raw["requests"], round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
                   round(raw["p50_us"] / 1000, 3), round(raw["p90_us"] / 1000, 3), round(raw["p99_us"] / 1000, 3),
                   round(raw["max_us"] / 1000, 3), errors, offered_rps,
                   round(raw.get("late", 0) / max(raw.get("paced", 0), 1), 4))  # fmt: skip


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise UserError("`semrec bench ranker` drives the server with wrk, which is not installed: "
                        "apt-get install wrk")  # fmt: skip
    return binary


def run_wrk(url: str, bodies_file: Path, connections: int, duration_s: float, threads: int,
            workdir: Path, cpus: set[int] | None = None, timeout_s: float = 5.0,
            rate: float | None = None) -> WrkResult:  # fmt: skip
    """One wrk run; `rate`: a fixed offered rate in req/s over all threads (None: closed loop)."""
    threads = max(1, min(threads, connections))
    script = workdir / ("semrec-bench.lua" if rate is None else "semrec-bench-paced.lua")
    if not script.exists():
        script.write_text(LUA if rate is None else LUA + PACING)
    cmd = [wrk_binary(), "-t", str(threads), "-c", str(connections),
           "-d", f"{max(1, round(duration_s))}s", "--timeout", f"{timeout_s:g}s", "-s", str(script), url,
           "--", str(bodies_file)]  # fmt: skip
    if rate is not None:
        cmd.append(f"{rate / threads:g}")
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, preexec_fn=preexec)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return WrkResult.parse(connections, done.stdout, rate)
