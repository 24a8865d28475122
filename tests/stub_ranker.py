"""A stand-in HTTP server with the ranker's endpoint shapes, for testing the load-test runner only.

It has no model: it answers `/recommend`, `/events`, `/items/{id}/similar`, `/healthz`, `/readyz` and
`/metrics` (with `process_resident_memory_bytes`) in the shapes of the ranker's API (issue 8), from a
fixed catalogue. `--delay-ms` slows every answer; `--fail-similar` makes `/similar` answer 500. Used by
tests/test_loadtest.py until a ranker can be started from this branch (the real one arrives with issue 8).

    python tests/stub_ranker.py --port 8123 [--delay-ms 30] [--fail-similar]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CATALOGUE = [f"item-{i}" for i in range(1, 301)]
SIMILAR = re.compile(r"^/items/([^/]+)/similar$")


def resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.0
    fail_similar = False
    histories: dict[str, list[str]] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: object, content_type: str = "application/json") -> None:
        time.sleep(self.delay_s)
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _items(self, k: int, offset: int = 0) -> dict:
        chosen = CATALOGUE[offset : offset + k]
        return {"items": [{"item_id": i, "score": 1.0 / (1 + n)} for n, i in enumerate(chosen)], "version": "1"}

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/healthz":
            return self._send(200, {"status": "ok"})
        if path == "/readyz":
            return self._send(200, {"status": "ready", "bundle": {"version": "1", "backbone": "stub"}, "redis": "ok",
                                    "catalog": "stub"})  # fmt: skip
        if path == "/metrics":
            return self._send(200, f"process_resident_memory_bytes {float(resident_bytes())}\n", "text/plain")
        match = SIMILAR.match(path)
        if match:
            if self.fail_similar:
                return self._send(500, {"detail": "stub failure"})
            k = int(dict(p.split("=") for p in query.split("&") if "=" in p).get("k", 10))
            offset = CATALOGUE.index(match.group(1)) if match.group(1) in CATALOGUE else 0
            return self._send(200, self._items(k, offset + 1))
        return self._send(404, {"detail": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/recommend":
            k = int(body.get("k", 10))
            if "user_id" in body:
                seen = self.histories.get(body["user_id"], [])
                items = self._items(k, len(seen) % 50)
                return self._send(200, {**items, "fallback": not seen, "unknown_items": [], "history_used": len(seen)})
            history = body.get("history", [])
            unknown = [i for i in history if i not in CATALOGUE]
            known = len(history) - len(unknown)
            return self._send(200, {**self._items(k), "fallback": not known, "unknown_items": unknown, "history_used": known})
        if self.path == "/events":
            self.histories.setdefault(body["user_id"], []).extend(body["items"])
            length = len(self.histories[body["user_id"]])
            return self._send(200, {"user_id": body["user_id"], "stored": len(body["items"]), "history_length": length,
                                    "unknown_items": []})  # fmt: skip
        return self._send(404, {"detail": "not found"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-similar", action="store_true")
    args = parser.parse_args()
    Handler.delay_s = args.delay_ms / 1000
    Handler.fail_similar = args.fail_similar
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
