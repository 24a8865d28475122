"""The refresh benchmark (`semrec bench refresh`): how well a run's refresh encoders place new items.

The new items are copies of random catalogue items with another model number in the title (the first number
in it, or an appended one): an encoder that reads the text the way the trained vectors were made should put
each copy next to its source. For each encoder it runs the refresh job exactly as `semrec refresh` does
(`refresh_bundle`: content-hash diff, encode the added items, append them) on the run's exported bundle, in
this process (publishing is what `semrec bench store` measures), and reports:

- `cos_to_source`: mean cosine of a new item to its source; `random_pair_cos`: the same for random pairs of
  catalogue items (the level that means "no information");
- `source_rank_median`, `source_in_top10`: the source's rank among the catalogue by cosine to the new item;
- `refresh_s`: seconds of the refresh (diff + encoding, the LM's loading included);
- with `--reproduce`, `reproduction_cos_min|mean`: cosine of the existing items re-encoded to their trained
  vectors (how exactly the encoder reproduces the bundle: ~1 for `llmemb`, lower for `said`).
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from semrec.bundle import Bundle
from semrec.cli_builder import echo
from semrec.config import JobConfig, read_flat_config
from semrec.errors import UserError
from semrec.results import RunResult, write_results

from semrec_worker.data.records import Item
from semrec_worker.data.text import content_hashes
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.refresh.items import load_items
from semrec_worker.refresh.job import refresh_bundle

EncoderKind = Literal["auto", "llmemb", "said", "text-map"]


class BenchRefreshConfig(JobConfig):
    run: Path = Field(..., description="a run with bundle/ (`semrec export onnx`) and a refresh encoder")
    items: str | None = Field(None, description="the run's items (default: its config.json `data`)")
    encoders: list[EncoderKind] = Field(["auto"], description="refresh encoders of the run to measure")
    said_epochs: list[int] = Field([0], description="said encoder: per-row training epochs of the new items")
    new_items: int = Field(20, ge=1, description="new items: copies of random items with another model number")
    reproduce: bool = Field(False, description="also re-encode the existing items and compare with the bundle")
    seed: int = Field(0, description="which items are copied")
    results: Path = Field(Path("results/refresh-new-items.json"), description="results JSON to write")
    threads: int | None = Field(None, ge=1, description="CPU threads of the item encoders (default: torch's choice)")


def near_copies(catalogue: list[Item], n: int, seed: int) -> tuple[list[Item], dict[str, str]]:
    """n new items, each a random catalogue item with another model number in its title; new id -> source id."""
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(catalogue), min(n, len(catalogue)), replace=False)
    new, source_of = [], {}
    for k, row in enumerate(sources):
        source = catalogue[row]
        title = source.title or ""
        number = str(1000 + k)
        title = re.sub(r"\d+", number, title, count=1) if re.search(r"\d", title) else f"{title} {number}".strip()
        item = copy.deepcopy(source)
        item.item_id, item.title = f"new-{k}", title
        new.append(item)
        source_of[item.item_id] = source.item_id
    return new, source_of


def placement(vectors: np.ndarray, vocab: int, index: dict[str, int], source_of: dict[str, str], seed: int) -> dict:
    old = vectors[:vocab]
    cosines, ranks = [], []
    for new_id, source_id in source_of.items():
        sims = old @ vectors[index[new_id]]
        cosines.append(sims[index[source_id]])
        ranks.append(int((sims > sims[index[source_id]]).sum()) + 1)
    pairs = np.random.default_rng(seed).integers(0, vocab, size=(2000, 2))
    return {"cos_to_source": round(float(np.mean(cosines)), 4), "source_rank_median": float(np.median(ranks)),
            "source_in_top10": round(float(np.mean(np.array(ranks) <= 10)), 3),
            "random_pair_cos": round(float(np.mean(np.sum(old[pairs[:, 0]] * old[pairs[:, 1]], axis=1))), 4),
            "catalogue": float(vocab), "new_items": float(len(source_of))}


def _items_source(config: BenchRefreshConfig) -> str:
    if config.items is not None:
        return config.items
    payload = read_flat_config(config.run)  # by leaf name, nested or flat (earlier versions)
    if not isinstance(payload.get("data"), str):
        raise UserError(f"{config.run}/config.json names no data: give --items")
    return payload["data"]


def bench_refresh(config: BenchRefreshConfig) -> list[RunResult]:
    from semrec_worker.core.runtime import apply_threads

    apply_threads(config.threads)
    bundle = Bundle.load(config.run)
    items = load_items(_items_source(config))
    missing = [i for i in bundle.item_ids if i not in items]
    if missing:
        raise UserError(f"the items lack {len(missing)} of the bundle's items (first: {missing[0]!r}): give --items")
    catalogue = [items[i] for i in bundle.item_ids]  # the served catalogue (a source may hold filtered-out items)
    served = {item.item_id: item for item in catalogue}
    new, source_of = near_copies(catalogue, config.new_items, config.seed)
    updated = {**served, **{item.item_id: item for item in new}}
    runs = []
    for kind in config.encoders:
        for epochs in config.said_epochs if kind == "said" else [None]:
            encoder = load_item_encoder(config.run, kind)
            encoder.progress = False
            if epochs is not None:
                encoder.row_epochs = epochs
            hashes = content_hashes(bundle.item_ids, served, encoder.text_view)
            start = time.perf_counter()
            refreshed, _, diff = refresh_bundle(bundle, hashes, updated, encoder, "bench")
            refresh_s = time.perf_counter() - start
            if diff.summary() != {"added": len(new), "changed": 0, "removed": 0, "unchanged": len(bundle.item_ids)}:
                raise UserError(f"unexpected refresh diff {diff.summary()} (the items differ from the bundle's)")
            index = {item_id: row for row, item_id in enumerate(refreshed.item_ids)}
            metrics = placement(refreshed.item_vectors, len(bundle.item_ids), index, source_of, config.seed)
            metrics["refresh_s"] = round(refresh_s, 2)
            if config.reproduce:
                start = time.perf_counter()
                again = encoder.encode(catalogue)
                agreement = np.sum(again * bundle.item_vectors, axis=1)
                metrics.update(reproduction_cos_min=round(float(agreement.min()), 5),
                               reproduction_cos_mean=round(float(agreement.mean()), 5),
                               reencode_s=round(time.perf_counter() - start, 2))
            label = encoder.kind + (f" ({epochs} row epochs)" if epochs is not None else "")
            echo(f"refresh-{label}: {metrics}")
            runs.append(RunResult(
                dataset=str(bundle.metadata.get("dataset", "")) or None, method=f"refresh-{label}",
                backbone=bundle.metadata.get("backbone"), loss=bundle.metadata.get("loss"),
                protocol="new-item-vs-source", seed=config.seed, metrics=metrics, wall_s=round(refresh_s, 3),
                config={**config.to_dict(), "encoder": encoder.kind, "text_view": encoder.text_view.key,
                        "new_items_are": "copies of random catalogue items with another model number in the title"},
            ))
    write_results(config.results, runs)
    echo(f"results written to {config.results}")
    return runs
