"""`semrec refresh`: the batch embedding refresh of a served catalogue (see semrec_worker.refresh)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.errors import UserError
from semrec.settings import redis_settings
from semrec.store import load_bundle

from semrec_worker.commands.publish import TEXT_HASHES, StoreJobConfig, publish_with_index
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.refresh.items import load_items
from semrec_worker.refresh.job import hashed_view, refresh_bundle


class RefreshConfig(StoreJobConfig):
    items: str = Field(..., description="the catalogue now: items.jsonl[.gz], a dataset folder or a synthetic spec")
    run: Path | None = Field(
        None, description="run whose refresh encoder to use (default: the served bundle's source_run)"
    )
    encoder: Literal["auto", "llmemb", "said", "text-map"] = Field(
        "auto", description="item encoder: the run's own (auto), or llmemb / said / text-map (exit 2 if the run "
        "has none of that kind)",
    )
    said_epochs: int | None = Field(
        None, ge=0, description="said encoder: per-row training epochs for the new items (default: the run's)"
    )
    threads: int | None = Field(None, ge=1, description="CPU threads of the item encoder (default: torch's choice)")


def refresh(config: RefreshConfig) -> dict:
    from redis.exceptions import RedisError

    from semrec_worker.core.runtime import apply_threads

    apply_threads(config.threads)
    start = time.perf_counter()
    encoder = load_item_encoder(config.run, config.encoder) if config.run is not None else None
    try:
        settings = redis_settings(config.redis)
        # with a signing key, a tampered served bundle is refused here instead of being re-signed below
        loaded = load_bundle(settings.client(), config.catalog, extras=(TEXT_HASHES,), signing_key=settings.signing_key())
    except RedisError as exc:
        raise UserError(f"redis: {type(exc).__name__}: {exc}") from None
    if TEXT_HASHES not in loaded.extras:
        raise UserError(f"catalogue {config.catalog} v{loaded.version} has no item text hashes: publish it with "
                        "--items so refresh can tell changed items from unchanged ones")
    hashes = np.frombuffer(loaded.extras[TEXT_HASHES], dtype="<u8")
    run = config.run or loaded.bundle.metadata.get("source_run")
    if run is None:
        raise UserError("the served bundle does not name its run: give --run RUN_DIR")
    echo(f"catalogue {config.catalog} v{loaded.version}: {len(loaded.bundle.item_ids)} items; reading {config.items}")
    items = load_items(config.items)
    encoder = encoder or load_item_encoder(run, config.encoder)
    if config.said_epochs is not None and hasattr(encoder, "row_epochs"):
        encoder.row_epochs = config.said_epochs
    echo(f"item encoder: {encoder.kind} from {run}")
    if hashed_view(loaded.bundle) != encoder.text_view.key:
        echo(f"note: the served hashes cover {hashed_view(loaded.bundle)!r}, this encoder reads "
             f"{encoder.text_view.key!r}: every item is re-encoded once")
    bundle, new_hashes, diff = refresh_bundle(loaded.bundle, hashes, items, encoder, str(config.items))
    summary = {**diff.summary(), "version": loaded.version, "published": False}
    if diff.empty:
        summary["seconds"] = round(time.perf_counter() - start, 2)
        echo(f"nothing to publish: version {loaded.version} already matches {config.items} ({summary})")
        return summary
    try:
        report = publish_with_index(bundle, config, {TEXT_HASHES: new_hashes.astype("<u8").tobytes()},
                                    f"refresh of v{loaded.version}")
    except RedisError as exc:
        raise UserError(f"redis: {type(exc).__name__}: {exc}") from None
    summary.update(version=report.version, published=True, seconds=round(time.perf_counter() - start, 2))
    echo("refresh: added {added}, changed {changed}, removed {removed}, unchanged {unchanged}; "
         "published version {version} in {seconds}s".format(**summary))
    return summary


def register(groups: CommandGroups) -> None:
    config_command(groups.root, "refresh", RefreshConfig, refresh,
                   "Embed new/changed items without retraining and publish a new version (idempotent).")
