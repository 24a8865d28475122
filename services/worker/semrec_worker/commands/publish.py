"""`semrec publish`: a run's bundle into Redis as the catalogue's new current version (see semrec.store)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from semrec.bundle import Bundle
from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.config import JobConfig, read_flat_config
from semrec.errors import UserError
from semrec.settings import redis_settings
from semrec.store import publish_bundle

from semrec_worker.data.text import CAPTION_VIEW, TextView, content_hashes
from semrec_worker.methods.registry import load_item_encoder
from semrec_worker.refresh.encoders import LinearTextMapEncoder, encoder_dir
from semrec_worker.refresh.items import load_items
from semrec_worker.refresh.job import TEXT_VIEW_KEY

TEXT_HASHES = "text_hashes"  # extra blob: uint64 content hash of each item's text, for `semrec refresh`


class StoreJobConfig(JobConfig):
    redis: str | None = Field(
        None, description="Redis URL (default $SEMREC_REDIS_URL or redis://127.0.0.1:6379/0; prefer "
        "$SEMREC_REDIS_PASSWORD to a password in the URL)",
    )
    catalog: str = Field("demo", description="catalogue name (namespace semrec:<catalog>:...)")
    dtype: Literal["float32", "float16"] = Field("float32", description="how item vectors are stored")
    keep: int = Field(3, ge=1, description="versions kept after the switch (older ones are deleted)")
    chunk_mib: float = Field(8.0, gt=0, le=256, description="blob chunk size in MiB")
    ann_threshold: int = Field(
        50_000, ge=0, description="build an HNSW index when the catalogue has at least this many items"
    )
    ann_dtype: Literal["f16", "i8"] = Field(
        "f16", description="vector storage of the HNSW index: f16, or i8 (half the bytes a search reads, faster "
        "distances; the ranker rescores its hits in float32, SEMREC_ANN_RESCORE)",
    )
    pending_ttl_s: int = Field(6 * 3600, ge=60, description="TTL of a version's keys until it is switched in")


class PublishConfig(StoreJobConfig):
    run: Path = Field(..., description="run directory with bundle/ (from `semrec export onnx`) or a bundle dir")
    items: str | None = Field(
        None, description="the run's items (items.jsonl[.gz], dataset folder or synthetic spec) for refresh "
        "content hashes (default: the run's config.json `data`)",
    )
    histories: bool = Field(
        False, description="also seed user histories (each user's newest --history-cap items) from the run's "
        "dataset, so known users get model answers from the first request",
    )
    history_cap: int = Field(200, ge=1, le=10_000, description="items per seeded history (as SEMREC_HISTORY_CAP)")
    history_ttl_s: int = Field(90 * 86400, ge=0, description="TTL of seeded histories (0: never expire)")
    max_histories: int = Field(1_000_000, ge=1, description="seed at most this many users (the last in the dataset's order)")
    refresh_encoder: Literal["none", "minilm", "hashing"] = Field(
        "none", description="fit a text -> item-vector map for `semrec refresh` and save it in the run "
        "(RUN_DIR/refresh_encoder/, or refresh_encoder/linear-text-map/ beside a method's own encoder)",
    )
    threads: int | None = Field(None, ge=1, description="CPU threads of the refresh-encoder fit (default: torch's choice)")


def _run_dir(path: Path) -> Path:
    return path.parent if path.name == "bundle" else path


def _run_config(config: PublishConfig) -> dict:
    for candidate in (_run_dir(config.run) / "config.json", config.run / "config.json"):
        if candidate.exists():
            return read_flat_config(candidate)  # by leaf name, nested or flat (earlier versions)
    return {}


def _items_source(config: PublishConfig) -> str | None:
    if config.items:
        return config.items
    data = _run_config(config).get("data")
    return data if isinstance(data, str) else None


def _seed_histories(config: PublishConfig, bundle, client) -> int:
    """Write the run's user sequences (item ids the bundle knows, newest `history_cap`) as histories."""
    from semrec.store import write_histories
    from semrec.vocabulary import accepted_keys

    from semrec_worker.data import DataConfig, load_dataset

    run_config = _run_config(config)
    if not isinstance(run_config.get("data"), str):
        raise UserError("--histories needs the run's dataset: the run has no config.json with `data`")
    data_config = DataConfig(**{k: v for k, v in run_config.items() if k in accepted_keys(DataConfig)})
    dataset = load_dataset(data_config)
    known = set(bundle.item_ids)
    ids = dataset.item_ids
    users = list(zip(dataset.user_ids, dataset.sequences, strict=True))[-config.max_histories :]
    histories = ((user, [ids[i - 1] for i in seq[-config.history_cap :].tolist() if ids[i - 1] in known])
                 for user, seq in users)  # fmt: skip
    return write_histories(client, config.catalog, histories, config.history_cap, config.history_ttl_s)


def publish_with_index(bundle, config: StoreJobConfig, extras: dict[str, bytes], label: str):
    """Build the ANN index if the catalogue needs one, then publish. Returns the PublishReport."""
    if bundle.ann_index is None and len(bundle.item_ids) >= config.ann_threshold:
        from semrec.store.ann import build_hnsw  # usearch only when a catalogue needs the index

        echo(f"building the HNSW index ({config.ann_dtype}) over {len(bundle.item_ids)} items (usearch)")
        start = time.perf_counter()
        bundle.ann_index = build_hnsw(bundle.item_vectors, progress=True, dtype=config.ann_dtype)
        bundle.metadata = {**bundle.metadata, "ann": {"kind": "usearch-hnsw", "dtype": config.ann_dtype,
                                                      "build_s": round(time.perf_counter() - start, 1)}}

    settings = redis_settings(config.redis)
    client = settings.client()
    echo(f"publishing {label} to {settings.redacted_url()} catalogue {config.catalog}")
    report = publish_bundle(
        client, config.catalog, bundle, dtype=config.dtype, keep=config.keep,
        chunk_bytes=int(config.chunk_mib * 2**20), pending_ttl_s=config.pending_ttl_s, extras=extras, progress=True,
        signing_key=settings.signing_key(),
    )
    echo(f"catalogue {report.catalog}: version {report.version} is current (was {report.previous}); "
         f"{report.n_items} items x {report.dim} {report.dtype}, {report.bytes_written / 2**20:.1f} MiB, "
         f"{report.seconds['total_s']:.2f}s; deleted versions {report.deleted_versions or 'none'}"
         f"{'; signed' if settings.signing_key() else ''}")
    if isinstance(config, PublishConfig) and config.histories:
        start = time.perf_counter()
        n_users = _seed_histories(config, bundle, client)
        echo(f"seeded {n_users} user histories (newest {config.history_cap} items each, TTL "
             f"{config.history_ttl_s or 'none'}s) in {time.perf_counter() - start:.2f}s")
    return report


def refresh_view(run_dir: Path) -> TextView:
    """The text the run's default refresh encoder reads (the caption when it has none yet): what the content
    hashes cover, so `semrec refresh` re-encodes exactly the items whose text that encoder reads changed."""
    try:
        return load_item_encoder(run_dir).text_view
    except UserError:
        return CAPTION_VIEW


def publish(config: PublishConfig):
    from redis.exceptions import RedisError

    from semrec_worker.core.runtime import apply_threads

    source = _items_source(config)
    if source is None and config.refresh_encoder != "none":  # before the bundle and the items load
        raise UserError("--refresh-encoder needs the items' text: give --items")
    if config.histories and not isinstance(_run_config(config).get("data"), str):
        raise UserError("--histories needs the run's dataset: the run has no config.json with `data`")
    apply_threads(config.threads)
    bundle = Bundle.load(config.run)
    run_dir = _run_dir(config.run)
    bundle.metadata = {**bundle.metadata, "source_run": str(run_dir.resolve())}
    extras: dict[str, bytes] = {}
    if source is not None:
        items = load_items(source)
        if config.refresh_encoder != "none":
            known = [(row, items[i]) for row, i in enumerate(bundle.item_ids) if i in items]
            rows = np.array([r for r, _ in known])
            encoder = LinearTextMapEncoder.fit([it for _, it in known], bundle.item_vectors[rows], config.refresh_encoder)
            path = encoder.save(encoder_dir(run_dir, encoder.kind))
            echo(f"refresh encoder ({encoder.kind}, {config.refresh_encoder}) saved to {path}; "
                 f"in-sample cosine to the trained vectors {encoder.fit_cosine:.3f}")
        view = refresh_view(run_dir)
        extras[TEXT_HASHES] = content_hashes(bundle.item_ids, items, view).astype("<u8").tobytes()
        bundle.metadata["items_source"] = source
        bundle.metadata[TEXT_VIEW_KEY] = view.key
    else:
        echo("no items source found (give --items): `semrec refresh` will not be able to diff this version")
    try:
        return publish_with_index(bundle, config, extras, str(config.run))
    except RedisError as exc:
        raise UserError(f"redis: {type(exc).__name__}: {exc}") from None


def register(groups: CommandGroups) -> None:
    config_command(groups.root, "publish", PublishConfig, publish,
                   "Publish a run's bundle to Redis: write, verify, atomically switch, announce, keep the last N.")
