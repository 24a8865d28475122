"""`semrec bench faults`: a real `semrec serve` under steady load while Redis and publishers fail.

Three request kinds run at a fixed rate the whole time (`history`: POST /recommend with a history, `user`:
POST /recommend by user_id, `events`: POST /events) and every answer is counted per scenario:

| scenario | what happens | expected |
|---|---|---|
| baseline | nothing | no errors |
| redis_sigkill | Redis SIGKILLed, restarted from its AOF | history: 0 errors; user/events: 503 while down |
| redis_sigstop | Redis SIGSTOPped (hung), then resumed | as above, each 503 within the request timeout |
| corrupt_bundle | a publish whose chunk is corrupted after its verify step | refused, old version keeps serving |
| unsigned_bundle | a publish without the signing key | refused, old version keeps serving |
| publisher_sigkill | a publisher SIGKILLed mid-write | nothing switched, old version keeps serving |
| data_loss | Redis loses everything, then a new publish reuses version 1 | the new publish is served |

Results: `results/faults.json` (one run per scenario; metrics `<kind>.<outcome>` counts, latency, checks).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field
from semrec.config import JobConfig
from semrec.vocabulary import AcceptsOldNames, OldName

KINDS = ("history", "user", "events")
PUBLISH_SCRIPT = """
import os, sys
from semrec.bundle import Bundle
from semrec.settings import redis_settings
from semrec.store import publish_bundle
key = os.environ.get("FAULTS_SIGNING_KEY")
publish_bundle(redis_settings(sys.argv[2]).client(), sys.argv[3], Bundle.load(sys.argv[1]), chunk_bytes=4096,
               signing_key=key.encode() if key else None)
"""


class FaultBenchConfig(AcceptsOldNames, JobConfig):
    old_names: ClassVar[dict[str, str | OldName]] = {"out_dir": "results_dir"}

    scenario_s: float = Field(4.0, gt=0, description="seconds of load per scenario (outages last half of it)")
    rate: float = Field(40.0, gt=0, le=500, description="requests per second of each kind")
    n_items: int = Field(500, ge=50, description="catalogue size of the published bundles")
    request_timeout_s: float = Field(5.0, gt=0, description="client timeout: a slower answer counts as an error")
    results_dir: Path = Field(Path("results"), description="where faults.json goes")
    tag: str = Field("", description="suffix of the results file (faults<tag>.json)")


class Recorder:
    def __init__(self) -> None:
        self.scenario = "warmup"
        self.counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
        self.latency: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.lock = threading.Lock()

    def add(self, kind: str, outcome: str, seconds: float) -> None:
        with self.lock:
            self.counts[self.scenario][kind][outcome] += 1
            self.latency[self.scenario][kind].append(seconds)


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 503:
        return "503"
    return "5xx_other" if status >= 500 else "4xx"


def _load(base: str, kind: str, rate: float, timeout: float, recorder: Recorder, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=timeout) as http:
        interval, n = 1.0 / rate, 0
        next_at = time.monotonic()
        while not stop.is_set():
            n += 1
            if kind == "history":
                args = ("/recommend", {"history": [f"i{n % 50 + 1}", f"i{n % 7 + 1}"], "k": 5})
            elif kind == "user":
                args = ("/recommend", {"user_id": f"u{n % 100}", "k": 5})
            else:
                args = ("/events", {"user_id": f"u{n % 100}", "items": [f"i{n % 50 + 1}"]})
            start = time.monotonic()
            try:
                outcome = _outcome(http.post(args[0], json=args[1]).status_code)
            except httpx.HTTPError:
                outcome = "connection_error"
            recorder.add(kind, outcome, time.monotonic() - start)
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))


def _served(base: str) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"{base}/readyz", timeout=2)
        return r.json().get("bundle")
    except (httpx.HTTPError, ValueError):
        return None


def _wait(predicate, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def bench_faults(config: FaultBenchConfig) -> Path:
    from semrec.cli_builder import echo
    from semrec.results import RunResult, write_results
    from semrec.settings import redis_settings
    from semrec.store import keys, publish_bundle, write_histories
    from semrec.store.bundles import PAUSE_AT_ENV, PAUSE_FILE_ENV
    from semrec.store.local import RedisProcess, _free_port

    from semrec_ranker.bench.synthetic import synthetic_bundle

    catalog, key = "faults", secrets.token_hex(32)
    bundles = [synthetic_bundle(config.n_items + 10 * i, dim=16, max_len=10, backbone="mean", seed=i) for i in range(6)]
    with tempfile.TemporaryDirectory(prefix="semrec-faults-") as tmp:
        redis = RedisProcess(tmp, appendonly=True).start()
        client = redis_settings(redis.url).client()
        publish_bundle(client, catalog, bundles[0], signing_key=key.encode())
        write_histories(client, catalog, ((f"u{u}", [f"i{u % 50 + 1}"]) for u in range(100)), cap=50, ttl_s=3600)
        port = _free_port()
        env = {**os.environ, "SEMREC_REDIS_URL": redis.url, "SEMREC_CATALOG": catalog, "SEMREC_POLL_INTERVAL_S": "0.5",
               "SEMREC_REDIS_HEALTH_INTERVAL_S": "0.2", "SEMREC_REDIS_REQUEST_TIMEOUT_S": "0.25",
               "SEMREC_BUNDLE_SIGNING_KEY": key, "SEMREC_HISTORY_CAP": "50", "SEMREC_LOG_LEVEL": "warning"}  # fmt: skip
        env.pop("SEMREC_ADMIN_TOKEN", None)
        ranker = subprocess.Popen([sys.executable, "-m", "semrec.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        recorder, stop = Recorder(), threading.Event()
        checks: dict[str, dict[str, Any]] = {}
        threads: list[threading.Thread] = []
        try:
            if _wait(lambda: _served(base) is not None, 120) is None:
                raise RuntimeError("semrec serve did not load the first bundle")
            threads = [threading.Thread(target=_load, args=(base, kind, config.rate, config.request_timeout_s,
                                                            recorder, stop), daemon=True) for kind in KINDS]  # fmt: skip
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            half = config.scenario_s / 2

            def run(name: str, action) -> None:
                recorder.scenario = name
                start = time.monotonic()
                checks[name] = action() or {}
                time.sleep(max(0.0, config.scenario_s - (time.monotonic() - start)))
                echo(f"{name}: {dict((k, dict(v)) for k, v in recorder.counts[name].items())} {checks[name]}")

            def redis_back() -> float | None:
                return _wait(lambda: httpx.post(f"{base}/recommend", json={"user_id": "u1"}).status_code == 200, 20)

            def sigkill():
                redis.kill()
                time.sleep(half)
                redis.start()
                return {"recovered_s": redis_back()}

            def sigstop():
                redis.signal(signal.SIGSTOP)
                time.sleep(half)
                redis.signal(signal.SIGCONT)
                return {"recovered_s": redis_back()}

            def paused_publish(bundle_index: int, step: str, signed: bool = True):
                run_dir = Path(tmp) / f"run{bundle_index}"
                bundles[bundle_index].save(run_dir / "bundle")
                marker = Path(tmp) / f"paused-{bundle_index}"
                penv = {**os.environ, PAUSE_AT_ENV: step, PAUSE_FILE_ENV: str(marker)}
                if signed:
                    penv["FAULTS_SIGNING_KEY"] = key
                proc = subprocess.Popen([sys.executable, "-c", PUBLISH_SCRIPT, str(run_dir), redis.url, catalog],
                                        env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                if _wait(marker.exists, 120) is None:
                    proc.kill()
                    raise RuntimeError(f"publisher did not reach {step}")
                return proc, marker

            def served_items() -> int | None:
                served = _served(base)
                return served["n_items"] if served else None

            def corrupt():
                before = served_items()
                proc, marker = paused_publish(1, "verified")
                version = client.get(keys.current(catalog)).decode()
                new_version = str(int(version) + 1)
                client.setrange(keys.chunk(catalog, new_version, "vectors", 0), 0, b"corrupt!")
                marker.unlink()
                proc.wait(60)
                time.sleep(half)
                return {"switched_to": client.get(keys.current(catalog)).decode(), "served_items_before": before,
                        "served_items_after": served_items(), "refused": served_items() == before}  # fmt: skip

            def unsigned():
                before = served_items()
                publish_bundle(client, catalog, bundles[2])
                time.sleep(half)
                return {"served_items_before": before, "served_items_after": served_items(),
                        "refused": served_items() == before}  # fmt: skip

            def publisher_kill():
                before, pointer = served_items(), client.get(keys.current(catalog))
                proc, _ = paused_publish(3, "writing")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                time.sleep(half)
                return {"pointer_unchanged": client.get(keys.current(catalog)) == pointer,
                        "served_items_after": served_items(), "unchanged": served_items() == before}  # fmt: skip

            def data_loss():
                client.flushall()
                report = publish_bundle(client, catalog, bundles[4], signing_key=key.encode())
                took = _wait(lambda: served_items() == bundles[4].item_vectors.shape[0], 20)
                return {"new_version": report.version, "served_new_after_s": took}

            run("baseline", lambda: None)
            run("redis_sigkill", sigkill)
            run("redis_sigstop", sigstop)
            run("corrupt_bundle", corrupt)
            run("unsigned_bundle", unsigned)
            run("publisher_sigkill", publisher_kill)
            run("data_loss", data_loss)
        finally:
            recorder.scenario = "teardown"  # requests cut off by the shutdown are not a scenario's
            stop.set()
            for thread in threads:
                thread.join(config.request_timeout_s + 1)
            ranker.terminate()
            try:
                ranker.wait(20)
            except subprocess.TimeoutExpired:
                ranker.kill()
            redis.stop()

    runs = []
    for name, per_kind in recorder.counts.items():
        if name in ("warmup", "teardown"):
            continue
        metrics: dict[str, float] = {}
        for kind, outcomes in per_kind.items():
            for outcome, n in outcomes.items():
                metrics[f"{kind}.{outcome}"] = n
            latencies = sorted(recorder.latency[name][kind])
            metrics[f"{kind}.max_ms"] = round(latencies[-1] * 1000, 1)
            metrics[f"{kind}.p99_ms"] = round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1)
        runs.append(RunResult(method=f"fault:{name}", protocol="semrec bench faults", metrics=metrics,
                              config={"checks": checks.get(name, {}), "scenario_s": config.scenario_s,
                                      "rate_per_kind": config.rate}))  # fmt: skip
    path = write_results(config.results_dir / f"faults{config.tag}.json", runs)
    echo(f"results written to {path}")
    return path
