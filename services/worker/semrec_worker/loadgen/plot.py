"""One PNG per load test: latency percentiles and request rate per second (and memory on a soak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_load(
    per_second: dict[str, np.ndarray],
    path: Path,
    slo_ms: float,
    title: str,
    memory: list[tuple[float, int]] | None = None,
    epoch0: float = 0.0,
) -> Path:
    """`memory`: (unix time, bytes) samples, drawn against the same clock (`epoch0` = first request)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 3 if memory else 2
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.8 * rows + 0.6), sharex=True)
    t = per_second["t"]
    latency = axes[0]
    for key, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", "-")):
        latency.plot(t, per_second[key], style, label=key.replace("_ms", ""), linewidth=1.4 if key == "p99_ms" else 1)
    latency.axhline(slo_ms, color="red", linestyle=":", label=f"SLO p99 {slo_ms:g} ms")
    latency.set_ylabel("latency (ms)")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper right", fontsize=8)
    latency.grid(alpha=0.3)
    latency.set_title(title, fontsize=10)

    rate = axes[1]
    rate.plot(t, per_second["rps"], label="requests/s")
    if per_second["failures"].any():
        rate.plot(t, per_second["failures"], color="red", label="failures/s")
    rate.set_ylabel("requests / s")
    rate.set_ylim(bottom=0)
    rate.legend(loc="upper right", fontsize=8)
    rate.grid(alpha=0.3)

    if memory:
        mem = axes[2]
        mem.plot([s[0] - epoch0 for s in memory], [s[1] / 2**20 for s in memory], color="purple")
        mem.set_ylabel("ranker RSS (MiB)")
        mem.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds since the first request")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
