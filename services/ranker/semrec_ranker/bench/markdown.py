"""Markdown tables of `semrec bench ranker` results files, for docs/serving.md.

    python -m semrec_ranker.bench.markdown results/ranker-inprocess.json results/ranker-http-wrk.json
    python -m semrec_ranker.bench.markdown results/ranker-encoder-graph.json    # `semrec bench encoder` / `export`

Prints one section per file (in-process table or HTTP table), each headed by the commit, time and
load average the file records, so a reader can tell a quiet run from a contended one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _header(path: Path, data: dict[str, Any]) -> str:
    machine = data.get("machine", {})
    load = machine.get("load_average_1_5_15")
    load_text = f", load average {load[0]} / {load[1]} / {load[2]} when written" if load else ""
    return (
        f"`{path}` (commit {data.get('commit')}, {data.get('created_at')}; {machine.get('cpu_count')} x "
        f"{machine.get('cpu')}{load_text})"
    )


def inprocess_table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| items | encoder | index | p50 / p99 ms | CPU p50 / p99 ms | encode p50 ms | top-k p50 ms "
        "| recall@10 (encoder / near-catalogue queries) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        m = run["metrics"]
        n_items = int(run["dataset"].split("-")[1].split("x")[0])
        index = run["protocol"].removeprefix("in-process-")
        recall = (
            f"{m['recall_at_10_encoder_queries']} / {m['recall_at_10_near_catalogue_queries']}"
            if "recall_at_10_encoder_queries" in m
            else "1 (exact)"
        )
        lines.append(
            f"| {n_items:,} | {run['backbone']} | {index} | {m['p50_ms']} / {m['p99_ms']} | "
            f"{m['cpu_p50_ms']} / {m['cpu_p99_ms']} | {m['encode_p50_ms']} | {m['topk_p50_ms']} | {recall} |"
        )
    return "\n".join(lines)


def http_table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| server | rate req/s | p50 ms | p99 ms | errors | achieved req/s | server CPU ms/req | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summaries = []
    for run in runs:
        steps = run["config"].get("steps")
        if not steps:
            summaries.append(
                f"- {run['method']}: " + ", ".join(f"{k} = {v}" for k, v in run["metrics"].items())
            )
            continue
        for s in steps:
            lines.append(
                f"| {run['method']} | {s['rate']} | {s['p50_ms']} | {s['p99_ms']} | {s['errors']} | "
                f"{s['achieved_rps']} | {s['server_cpu_ms_per_request']} | {s.get('load_average_1m', '-')} |"
            )
        summaries.append(f"- {run['method']}: " + ", ".join(f"{k} = {v}" for k, v in run["metrics"].items()))
    return "\n".join(lines) + "\n\n" + "\n".join(summaries)


def _offered(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """`closed` for a closed-loop point; else the offered rate, with the share of sends that left late."""
    rate = config.get("offered_rps")
    if rate is None:
        return "closed"
    late = metrics.get("late_fraction", 0.0)
    return f"{rate:g}" + (f" ({late:.0%} late)" if late >= 0.01 else "")


def wrk_table(runs: list[dict[str, Any]]) -> str:
    """One row per wrk point: server, size, index, workers, kind, connections, rate, latency, the in-process
    floor beside it, CPU per request, memory of the workers."""
    lines = [
        "| server | items | index | workers | kind | conns | offered req/s | req/s | p50 / p90 / p99 ms | errors "
        "| floor p50 / p99 ms | p99 / floor p99 | CPU ms/req | RSS MiB (sum) | PSS MiB (sum) | anonymous MiB (sum) "
        "| load 1m |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        m, c = run["metrics"], run["config"]
        n_items = int(run["dataset"].split("-")[1].split("x")[0])
        memory = c.get("memory_after") or {}
        lines.append(
            f"| {run['method']} | {n_items:,} | {c.get('served_index') or c['index']} | {c['workers']} | {c['kind']} "
            f"| {c['connections']} | {_offered(c, m)} | {m['rps']:g} | {m['p50_ms']:g} / {m['p90_ms']:g} / {m['p99_ms']:g} "
            f"| {int(m['errors'])} | {m['floor_p50_ms']:g} / {m['floor_p99_ms']:g} | {m['p99_over_floor_p99']:g} "
            f"| {m['server_cpu_ms_per_request']:g} | {memory.get('total_rss_mib', '-')} "
            f"| {memory.get('total_pss_mib', '-')} | {memory.get('total_anonymous_mib', '-')} "
            f"| {m.get('load_average_1m', '-')} |"
        )
    return "\n".join(lines)


def encoder_graph_table(runs: list[dict[str, Any]]) -> str:
    """`semrec bench encoder` / `semrec bench export`: one row per encoder, measurement (encoder alone, floors)
    and batch size, both graph forms side by side."""
    lines = [
        "| encoder | measured | batch | all positions p50 / p99 ms | final position p50 / p99 ms | p50 ratio "
        "| identical top-k | load 1m |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for run in runs:
        key = (str(run["backbone"]), run["protocol"], int(run["config"]["batch"]))
        cells.setdefault(key, {})[run["config"]["encoder_graph"]] = run
    for (backbone, protocol, batch), forms in cells.items():
        if set(forms) != {"all-positions", "final-position"}:
            continue
        full, final = forms["all-positions"]["metrics"], forms["final-position"]["metrics"]
        same = final.get("identical_top_k")
        lines.append(
            f"| {backbone} | {protocol} | {batch} | {full['p50_ms']:g} / {full['p99_ms']:g} | {final['p50_ms']:g} / "
            f"{final['p99_ms']:g} | {full['p50_ms'] / final['p50_ms']:.2f}x | {'-' if same is None else f'{same:g}'} "
            f"| {final['load_average_1m_before']:g}-{final['load_average_1m_after']:g} |"
        )
    return "\n".join(lines)


def render(path: Path) -> str:
    data = json.loads(path.read_text())
    runs = data["runs"]
    if any(run["protocol"] == "encoder" for run in runs):
        table = encoder_graph_table(runs)
    elif any(run["protocol"] == "http-wrk" for run in runs):
        table = wrk_table(runs)
    elif any(run["protocol"] == "http-open-loop" for run in runs):
        table = http_table(runs)
    else:
        table = inprocess_table(runs)
    return f"{_header(path, data)}:\n\n{table}\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print("\n".join(render(Path(p)) for p in argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
