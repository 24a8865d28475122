"""The serving half of `semrec demo`: publish a trained run to a local Redis, serve it, call it, load it.

Given a run directory with an exported bundle (RUN_DIR/bundle/, written by `semrec export onnx`):
1. start a throw-away redis-server on loopback;
2. `semrec publish --run RUN_DIR --redis URL --catalog NAME`;
3. start the ranker (`semrec serve`) on a free loopback port and wait until /readyz says a bundle is loaded;
4. print one `/recommend` answer for a history taken from the catalogue, with the items' titles;
5. a short Locust run (`semrec bench load`), printing p50/p99;
6. stop everything it started (also on failure or Ctrl-C).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from semrec.bundle import Bundle
from semrec.cli_builder import echo
from semrec.errors import UserError

from semrec_worker.loadgen.load_test import LoadTestConfig, LoadTestOutcome, run_load_test
from semrec_worker.local_stack import LocalStack


def semrec_cli(*args: str) -> None:
    """Run a `semrec` subcommand as a child process (its progress goes to our stderr); fail on error."""
    command = [sys.executable, "-m", "semrec.cli", *args]
    result = subprocess.run(command)
    if result.returncode != 0:
        raise UserError(f"`semrec {' '.join(args)}` failed with exit status {result.returncode}")


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def run_titles(run_dir: Path) -> dict[str, str | None]:
    """Item titles of the run's dataset (the `data` of its config.json); empty when it cannot be read: the
    printout then shows ids only."""
    try:
        from semrec_worker.data.dataset import DataConfig, read_raw

        saved = json.loads((Path(run_dir) / "config.json").read_text())["config"]
        _, _, items = read_raw(DataConfig(data=saved["data"], format=saved.get("format", "auto")))
        return {item_id: item.title for item_id, item in items.items()}
    except Exception as exc:  # noqa: BLE001 - titles are a nicety of the printout, never a failure
        echo(f"(no titles: {type(exc).__name__}: {exc})")
        return {}


def describe_answer(history: list[str], answer: dict, titles: dict[str, str | None]) -> str:
    """The history and the recommended items, one per line, with their titles."""
    lines = ["history:"]
    lines += [f"  {item}  {titles.get(item) or ''}".rstrip() for item in history]
    lines.append(f"recommended (bundle v{answer['version']}{', popularity fallback' if answer['fallback'] else ''}):")
    for rank, scored in enumerate(answer["items"], start=1):
        item = scored["item_id"]
        lines.append(f"  {rank:>2}. {item}  {scored['score']:.3f}  {titles.get(item) or ''}".rstrip())
    return "\n".join(lines)


def serve_and_load(
    run_dir: Path,
    workdir: Path,
    catalog: str = "demo",
    load_duration_s: float = 20.0,
    users: int = 10,
    slo_p99_ms: float = 20.0,
) -> LoadTestOutcome:
    run_dir, workdir = Path(run_dir), Path(workdir)
    bundle = Bundle.load(run_dir)  # fails clearly when the run has no exported bundle
    with LocalStack(workdir / "stack") as stack:
        echo("== publish the bundle to a local redis-server")
        redis = stack.redis()
        semrec_cli("publish", "--run", str(run_dir), "--redis", redis.url, "--catalog", catalog)

        echo("== start the ranker")
        ranker = stack.ranker(redis.url, catalog)

        history = bundle.item_ids[:3]
        echo(f"== POST {ranker.url}/recommend  {{\"history\": {json.dumps(history)}, \"k\": 5}}")
        answer = post_json(f"{ranker.url}/recommend", {"history": history, "k": 5})
        print(json.dumps(answer, indent=2), flush=True)
        print(describe_answer(history, answer, run_titles(run_dir)), flush=True)

        echo(f"== load test: {users} users for {load_duration_s:g} s")
        outcome = run_load_test(
            LoadTestConfig(
                url=ranker.url, users=users, duration_s=load_duration_s, slo_p99_ms=slo_p99_ms, name="demo",
                out=workdir / "load", results=workdir / "load.json",
            )
        )
        m = outcome.metrics
        echo(f"demo load test: {m['rps']:.0f} req/s, p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, "
             f"{m['failures']:.0f} failed -> {'passed' if outcome.passed else 'FAILED: ' + '; '.join(outcome.problems)}")
    return outcome
