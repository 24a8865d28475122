"""Redis reachability, kept by a background thread so that nothing on the request path waits to find out.

/readyz reads the last status (never a Redis call), and requests that need Redis (user_id, /events) fail
at once with 503 while the last ping failed, instead of each waiting for a socket timeout. A failed request
marks Redis unreachable too, so a hang is detected at the first request, not only at the next ping.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from semrec_ranker.core.background import BackgroundLoop

log = logging.getLogger("semrec.ranker")


@dataclass(frozen=True)
class RedisStatus:
    reachable: bool | None  # None: not checked yet
    checked_at: float
    error: str = ""

    @property
    def label(self) -> str:
        return {True: "ok", False: "unreachable", None: "unknown"}[self.reachable]


class RedisHealth(BackgroundLoop):
    thread_name = "semrec-redis-health"

    def __init__(self, client, interval_s: float) -> None:
        self.client = client  # a client with a short socket timeout and no retries
        self.interval_s = interval_s
        self.status = RedisStatus(None, time.monotonic())
        super().__init__()

    @property
    def usable(self) -> bool:
        """False while the last check (ping or request) failed."""
        return self.status.reachable is not False

    def mark_failed(self, error: Exception) -> None:
        self.status = RedisStatus(False, time.monotonic(), type(error).__name__)

    def check(self) -> RedisStatus:
        try:
            reachable, error = bool(self.client.ping()), ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable now"
            reachable, error = False, type(exc).__name__
        previous = self.status.reachable
        self.status = RedisStatus(reachable, time.monotonic(), error)
        if previous is not None and previous != reachable:
            log.warning("redis is %s%s", self.status.label, f" ({error})" if error else "")
        return self.status

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.interval_s)
