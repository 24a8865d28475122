"""Hot reload: follow the catalogue's pointer (pub/sub, with polling as the fallback) and swap engines.

The new engine is loaded, checksum-verified (signature-checked when a key is configured) and warmed up on
this background thread; only then is the single `BundleHolder.engine` reference replaced. Publishes are told
apart by the manifest's publish id, not the version number (which repeats after Redis loses its data). A
version that fails (checksum, signature, bad encoder) is refused, counted, and not retried until the pointer
moves or an admin forces a reload; the old engine keeps serving. With nothing served yet (start-up), a
refused pointer falls back to the newest listed version that verifies, and says so (`notice`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from semrec.store import (
    NoBundleError,
    current_version,
    keys,
    list_versions,
    load_bundle,
    publish_id,
    read_manifest,
)

from semrec_ranker.core.background import BackgroundLoop
from semrec_ranker.engine.engine import Engine

log = logging.getLogger("semrec.ranker")


def release_freed_memory() -> None:
    """Hand the heap freed by a load (the bundle's bytes as read from Redis, the replaced engine) back to the
    OS. glibc raises its mmap threshold after large frees, so later large buffers come from the heap and
    stay in RSS after they are freed unless the heap is trimmed; with shared arrays that private residue
    would be most of a worker's memory."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


@dataclass
class BundleHolder:
    engine: Engine | None = None

    @property
    def version(self) -> str | None:
        engine = self.engine
        return engine.version if engine else None


@dataclass
class ReloadOutcome:
    status: str  # "loaded", "fallback", "unchanged", "no_bundle", "failed", "redis_unavailable"
    version: str | None
    detail: str = ""


def announced_version(data: object) -> str | None:
    """The version named by an updates-channel message, or None for anything malformed."""
    try:
        payload = orjson.loads(data)  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):
        return None
    version = payload.get("version") if isinstance(payload, dict) else None
    return str(version) if isinstance(version, str | int) else None


class Reloader(BackgroundLoop):
    thread_name = "semrec-reloader"

    def __init__(
        self,
        client,
        catalog: str,
        holder: BundleHolder,
        build_engine: Callable[[str, object], Engine],
        poll_interval_s: float,
        on_outcome: Callable[[ReloadOutcome], None] = lambda outcome: None,
        signing_key: bytes | None = None,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.holder = holder
        self.build_engine = build_engine
        self.poll_interval_s = poll_interval_s
        self.on_outcome = on_outcome
        self.signing_key = signing_key
        self.served_id: str | None = None
        self.failed_id: str | None = None
        self.failed_version: str | None = None
        self.notice: str | None = None  # set while serving a fallback instead of the pointer's version
        self._lock = threading.Lock()
        super().__init__()

    def reload(self, force: bool = False) -> ReloadOutcome:
        """Load the current version if it is another publish than the served one (or always with `force`)."""
        with self._lock:
            version = identity = None
            try:
                version = current_version(self.client, self.catalog)
                if version is None:
                    return self._done(ReloadOutcome("no_bundle", None, "no bundle published yet"))
                identity = f"unreadable:{version}"
                identity = publish_id(read_manifest(self.client, self.catalog, version))
                if not force and identity in (self.served_id, self.failed_id):
                    return ReloadOutcome("unchanged", version)
                loaded = load_bundle(self.client, self.catalog, version, signing_key=self.signing_key)
                identity = publish_id(loaded.manifest)
                engine = self.build_engine(loaded.version, loaded.bundle)
            except NoBundleError as exc:
                return self._done(ReloadOutcome("no_bundle", None, str(exc)))
            except (RedisConnectionError, RedisTimeoutError) as exc:
                return self._done(ReloadOutcome("redis_unavailable", self.holder.version, type(exc).__name__))
            except Exception as exc:  # noqa: BLE001 - any failure must leave the old engine serving
                if not force and identity is not None and identity == self.failed_id:
                    return ReloadOutcome("unchanged", version)
                self.failed_id, self.failed_version = identity, version
                log.error("reload of %s v%s refused: %s", self.catalog, version, exc)
                if self.holder.engine is None:
                    fallback = self._fall_back(version, exc)
                    if fallback is not None:
                        return self._done(fallback)
                return self._done(ReloadOutcome("failed", version, str(exc)))
            old = self.holder.version
            self._serve(engine, identity)
            del loaded, engine
            release_freed_memory()
            engine = self.holder.engine
            log.info("serving %s v%s (was %s): %s", self.catalog, version, old, engine.describe())
            return self._done(ReloadOutcome("loaded", version))

    def _serve(self, engine: Engine, identity: str, notice: str | None = None) -> None:
        self.holder.engine = engine
        self.served_id = identity
        self.notice = notice
        if notice is None:
            self.failed_id = self.failed_version = None

    def _fall_back(self, refused: str | None, reason: Exception) -> ReloadOutcome | None:
        """Serve the newest listed version other than `refused` that loads and verifies (lock held)."""
        try:
            candidates = [v for v in reversed(list_versions(self.client, self.catalog)) if v != refused]
        except Exception:  # noqa: BLE001 - Redis gone meanwhile: nothing to fall back to now
            return None
        for version in candidates:
            try:
                loaded = load_bundle(self.client, self.catalog, version, signing_key=self.signing_key)
                engine = self.build_engine(loaded.version, loaded.bundle)
            except Exception as exc:  # noqa: BLE001
                log.warning("fallback candidate %s v%s refused too: %s", self.catalog, version, exc)
                continue
            notice = (f"the current pointer (v{refused}) was refused ({reason}); serving v{version}, the newest "
                      "listed version that verifies, until the pointer moves")  # fmt: skip
            self._serve(engine, publish_id(loaded.manifest), notice)
            log.warning("%s: %s", self.catalog, notice)
            return ReloadOutcome("fallback", version, notice)
        return None

    def _done(self, outcome: ReloadOutcome) -> ReloadOutcome:
        self.on_outcome(outcome)
        return outcome

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
                    announced = announced_version(message.get("data"))
                    if announced is None:
                        log.warning("ignoring a malformed message on %s", channel)
                    else:
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
