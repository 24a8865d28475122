"""A daemon thread that runs a loop until stopped: the shape of the ranker's background tasks."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """Subclasses implement `_run`, which returns once `self._stop` is set."""

    thread_name = "semrec-background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        raise NotImplementedError
