"""The ranker's resident memory during a load test, and whether it grew.

Read from the ranker's own `/metrics` (`process_resident_memory_bytes`, exported by prometheus-client's
process collector on Linux), which works wherever the ranker runs, or from the process itself (psutil)
when the ranker is a local process whose pid is given.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request

import numpy as np
from semrec.errors import UserError

RSS_METRIC = re.compile(r"^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)\s*$", re.MULTILINE)


def rss_from_metrics(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url.rstrip('/')}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8", "replace")
    match = RSS_METRIC.search(text)
    if match is None:
        raise UserError(f"{base_url}/metrics has no process_resident_memory_bytes: pass --ranker-pid")
    return int(float(match.group(1)))


def rss_from_pid(pid: int) -> int:
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError) as exc:
        raise UserError(f"cannot read the memory of process {pid}: {exc}") from exc


class MemorySampler(threading.Thread):
    """Samples the ranker's RSS every `interval_s` in the background until `stop()`: (unix time, bytes)."""

    def __init__(self, base_url: str, pid: int | None = None, interval_s: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.base_url = base_url
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self.errors = 0
        self._stop_event = threading.Event()
        self.read()  # fail early (UserError) when memory cannot be read at all

    def read(self) -> int:
        return rss_from_pid(self.pid) if self.pid else rss_from_metrics(self.base_url)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.time(), self.read()))
            except (OSError, urllib.error.URLError, UserError):
                self.errors += 1
            self._stop_event.wait(self.interval_s)

    def stop(self) -> list[tuple[float, int]]:
        self._stop_event.set()
        self.join(timeout=10)
        return self.samples


def memory_growth(
    samples: list[tuple[float, int]], warmup_fraction: float = 0.25, window_fraction: float = 0.1
) -> dict[str, float]:
    """Growth of RSS from just after warm-up to the end, in MiB (medians of a window at each end, so one
    garbage-collection spike does not decide), and the slope over the post-warm-up part in MiB/min."""
    if len(samples) < 4:
        raise UserError(f"only {len(samples)} memory samples: run longer to check memory growth")
    t = np.array([s[0] for s in samples])
    mib = np.array([s[1] for s in samples], dtype=float) / 2**20
    span = t[-1] - t[0]
    rel = t - t[0]
    after_warmup = rel >= warmup_fraction * span
    baseline = mib[after_warmup & (rel <= (warmup_fraction + window_fraction) * span)]
    final = mib[rel >= (1 - window_fraction) * span]
    baseline = baseline if len(baseline) else mib[after_warmup][:1]
    final = final if len(final) else mib[-1:]
    slope = np.polyfit(t[after_warmup], mib[after_warmup], 1)[0] * 60 if after_warmup.sum() >= 2 else 0.0
    return {
        "rss_start_mib": round(float(mib[0]), 2),
        "rss_baseline_mib": round(float(np.median(baseline)), 2),
        "rss_end_mib": round(float(np.median(final)), 2),
        "rss_max_mib": round(float(mib.max()), 2),
        "rss_growth_mib": round(float(np.median(final) - np.median(baseline)), 2),
        "rss_slope_mib_per_min": round(float(slope), 3),
    }
