"""Helpers for the hardening, hostile-input and fault tests: the ranker under the exact server `semrec serve` runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import free_port


@contextmanager
def hardened_ranker(settings) -> Iterator[str]:
    """The app under uvicorn with exactly the protocol and limits `semrec serve` uses; yields the base URL."""
    import uvicorn
    from semrec_ranker.main import create_app
    from semrec_ranker.server import uvicorn_options

    for _attempt in range(5):  # a free port can be taken between the probe and the bind: retry
        app = create_app(settings)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                **uvicorn_options(settings))  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.time() + 30
        while not server.started and thread.is_alive() and time.time() < deadline:
            time.sleep(0.05)
        if server.started:
            break
        thread.join(5)
    else:
        raise RuntimeError("ranker did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
