"""Latency statistics from the per-request samples the locustfile writes (exact, not Locust's rounded ones)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from semrec.errors import DataError

ALL = "all"


@dataclass(frozen=True)
class Samples:
    start: np.ndarray  # seconds since the first request
    name: np.ndarray  # request name (endpoint)
    ms: np.ndarray  # response time in milliseconds
    ok: np.ndarray  # bool
    epoch0: float = 0.0  # wall-clock time (s since the epoch) of the first request

    def __len__(self) -> int:
        return len(self.ms)

    @property
    def duration_s(self) -> float:
        return float(self.start.max()) if len(self) else 0.0

    def after(self, seconds: float) -> Samples:
        keep = self.start >= seconds
        return Samples(self.start[keep], self.name[keep], self.ms[keep], self.ok[keep], self.epoch0)


def read_samples(path: Path) -> Samples:
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        start = np.array([float(r["start_time"]) for r in rows])
        name = np.array([r["name"] for r in rows], dtype=object)
        ms = np.array([float(r["response_ms"]) for r in rows])
        ok = np.array([r["ok"] == "1" for r in rows], dtype=bool)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(path, f"cannot read request samples ({exc})") from exc
    order = np.argsort(start, kind="stable")
    epoch0 = float(start.min()) if len(start) else 0.0
    return Samples(start[order] - epoch0, name[order], ms[order], ok[order], epoch0)


def latency_summary(samples: Samples) -> dict[str, float]:
    """p50/p95/p99/max latency (ms, all requests, failed ones included), rate and failures."""
    n = len(samples)
    if n == 0:
        return {"requests": 0.0, "failures": 0.0}
    p50, p95, p99 = np.percentile(samples.ms, [50, 95, 99])
    duration = max(samples.duration_s, 1e-9)
    return {
        "requests": float(n),
        "failures": float((~samples.ok).sum()),
        "rps": round(n / duration, 2),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(samples.ms.max()), 3),
        "mean_ms": round(float(samples.ms.mean()), 3),
    }


def per_endpoint(samples: Samples) -> dict[str, dict[str, float]]:
    summaries = {ALL: latency_summary(samples)}
    for name in sorted(set(samples.name.tolist())):
        keep = samples.name == name
        part = Samples(samples.start[keep], samples.name[keep], samples.ms[keep], samples.ok[keep])
        summaries[name] = latency_summary(part)
        summaries[name]["rps"] = round(len(part) / max(samples.duration_s, 1e-9), 2)
    return summaries


def per_second(samples: Samples) -> dict[str, np.ndarray]:
    """Per one-second window: request rate, failures and p50/p95/p99 of the requests started in it.
    The last window is left out when it is not a whole second (its rate would read as a drop)."""
    seconds = np.floor(samples.start).astype(int)
    n = int(seconds.max()) + 1 if len(samples) else 0
    if n > 1 and samples.duration_s - (n - 1) < 0.9:
        n -= 1
        samples = Samples(samples.start[seconds < n], samples.name[seconds < n], samples.ms[seconds < n],
                          samples.ok[seconds < n], samples.epoch0)
        seconds = seconds[seconds < n]
    rows = {key: np.full(n, np.nan) for key in ("p50_ms", "p95_ms", "p99_ms")}
    rows["rps"] = np.bincount(seconds, minlength=n).astype(float)
    rows["failures"] = np.bincount(seconds, weights=(~samples.ok).astype(float), minlength=n)
    for second in range(n):
        window = samples.ms[seconds == second]
        if len(window):
            rows["p50_ms"][second], rows["p95_ms"][second], rows["p99_ms"][second] = np.percentile(window, [50, 95, 99])
    rows["t"] = np.arange(n, dtype=float)
    return rows
