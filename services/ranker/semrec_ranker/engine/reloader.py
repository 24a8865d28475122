"""Hot reload: follow the catalogue's pointer (pub/sub, with polling as the fallback) and swap engines.

The new engine is loaded, checksum-verified and warmed up on this background thread; only then is the
single `BundleHolder.engine` reference replaced. A version that fails (checksum, bad encoder) is refused,
counted, and not retried until the pointer moves or an admin forces a reload; the old engine keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from semrec.store import NoBundleError, current_version, keys, load_bundle

from semrec_ranker.engine.engine import Engine

log = logging.getLogger("semrec.ranker")


@dataclass
class BundleHolder:
    engine: Engine | None = None

    @property
    def version(self) -> str | None:
        engine = self.engine
        return engine.version if engine else None


@dataclass
class ReloadOutcome:
    status: str  # "loaded", "unchanged", "no_bundle", "failed", "redis_unavailable"
    version: str | None
    detail: str = ""


class Reloader:
    def __init__(
        self,
        client,
        catalog: str,
        holder: BundleHolder,
        build_engine: Callable[[str, object], Engine],
        poll_interval_s: float,
        on_outcome: Callable[[ReloadOutcome], None] = lambda outcome: None,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.holder = holder
        self.build_engine = build_engine
        self.poll_interval_s = poll_interval_s
        self.on_outcome = on_outcome
        self.failed_version: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self, force: bool = False) -> ReloadOutcome:
        """Load the current version if it differs from the served one (or always with `force`)."""
        with self._lock:
            try:
                version = current_version(self.client, self.catalog)
                if version is None:
                    return self._done(ReloadOutcome("no_bundle", None, "no bundle published yet"))
                if not force and (version == self.holder.version or version == self.failed_version):
                    return ReloadOutcome("unchanged", version)
                loaded = load_bundle(self.client, self.catalog, version)
                engine = self.build_engine(loaded.version, loaded.bundle)
            except NoBundleError as exc:
                return self._done(ReloadOutcome("no_bundle", None, str(exc)))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                return self._done(ReloadOutcome("redis_unavailable", self.holder.version, type(exc).__name__))
            except Exception as exc:  # noqa: BLE001 - any failure must leave the old engine serving
                self.failed_version = locals().get("version")
                log.error("reload of %s v%s refused: %s", self.catalog, self.failed_version, exc)
                return self._done(ReloadOutcome("failed", self.failed_version, str(exc)))
            old = self.holder.version
            self.holder.engine = engine
            self.failed_version = None
            log.info("serving %s v%s (was %s): %s", self.catalog, version, old, engine.describe())
            return self._done(ReloadOutcome("loaded", version))

    def _done(self, outcome: ReloadOutcome) -> ReloadOutcome:
        self.on_outcome(outcome)
        return outcome

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="semrec-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        channel = keys.updates_channel(self.catalog)
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(channel)
                    self.reload()  # catch anything published while we were not subscribed
                message = pubsub.get_message(timeout=self.poll_interval_s)
                if message is not None and message.get("type") == "message":
                    announced = orjson.loads(message["data"]).get("version")
                    log.info("update announced: %s v%s", self.catalog, announced)
                if not self._stop.is_set():
                    self.reload()
            except Exception as exc:  # noqa: BLE001 - Redis down: keep serving, retry after the poll interval
                log.warning("update watcher: %s; retrying in %.1fs", type(exc).__name__, self.poll_interval_s)
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001
                        pass
                    pubsub = None
                self._stop.wait(self.poll_interval_s)
        if pubsub is not None:
            pubsub.close()
