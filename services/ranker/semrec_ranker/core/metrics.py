"""Prometheus metrics (one registry per app, so several apps can live in one process, e.g. in tests)."""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_resident_memory_bytes / process_cpu_seconds_total: a loaded 1M-item bundle is ~1 GB, so
        # memory per pod is what capacity planning (and the soak test) watches
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        # Prometheus conventions: base units in the name (_seconds), one histogram with the route template as
        # a label (bounded cardinality), build/version facts as an _info metric with the value 1
        self.request_seconds = Histogram(
            "semrec_http_request_duration_seconds", "HTTP request latency by route template",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.model_seconds = Histogram(
            "semrec_model_seconds", "in-model latency by stage (encode, topk)", ["stage"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram("semrec_batch_size", "requests per micro-batch (one encoder call)",
                                    buckets=BATCH_BUCKETS, registry=self.registry)  # fmt: skip
        self.bundle_info = Info("semrec_bundle", "the served bundle (no series until one is loaded)",
                                registry=self.registry)  # fmt: skip
        self.bundle_items = Gauge("semrec_bundle_items", "items in the served catalogue (0: none loaded)",
                                  registry=self.registry)  # fmt: skip
        self.bundle_loaded_at = Gauge("semrec_bundle_loaded_timestamp_seconds", "when the served bundle was loaded",
                                      registry=self.registry)  # fmt: skip
        self.reloads = Counter("semrec_reloads_total", "bundle reload attempts by outcome", ["outcome"],
                               registry=self.registry)  # fmt: skip
        self.errors = Counter("semrec_errors_total", "errors by endpoint and kind", ["endpoint", "kind"],
                              registry=self.registry)  # fmt: skip
        self.events_unknown_items = Counter(
            "semrec_events_unknown_items_total", "item ids of POST /events not in the catalogue (dropped)",
            registry=self.registry,
        )  # fmt: skip
        self.fallbacks = Counter("semrec_popularity_fallback_total", "recommendations served by popularity",
                                 registry=self.registry)  # fmt: skip

    def bundle_loaded(self, version: str, n_items: int, index: str = "", catalog: str = "") -> None:
        self.bundle_info.info({"version": version, "index": index, "catalog": catalog})
        self.bundle_items.set(n_items)
        self.bundle_loaded_at.set(time.time())
