"""Versioned bundles in Redis: publish = write all -> verify -> atomic compare-and-set switch -> announce.

Publish protocol (a crash at any step leaves the current version intact and serving):

1. take a new version number (`INCR version_seq`);
2. write every blob in chunks of at most `chunk_bytes` (well below Redis' 512 MB value limit), each key
   with a TTL (`pending_ttl_s`), so an abandoned publish expires by itself;
3. read everything back and compare its xxh3-64 with the checksum computed before writing;
4. write the manifest (sizes, chunk counts, checksums, a random publish id, metadata; signed with HMAC-SHA256
   and carrying each blob's SHA-256 when a signing key is configured), also with the TTL;
5. one Lua script, atomically: check the pointer still holds the version read at step 1 (compare-and-set),
   check every key of the new version exists, PERSIST them, set the pointer, add to the versions set;
6. PUBLISH `{"catalog", "version"}` on the updates channel (rankers also poll, so a lost message only
   delays a reload);
7. delete versions beyond the newest `keep` (never the current one).

A reader (`load_bundle`) follows the pointer to a manifest and verifies every blob's checksum, so it gets
either a complete version or an error, never a mix. Given the signing key, it refuses unsigned or
mis-signed manifests and checks every blob's SHA-256 too (xxh3 catches corruption, not forgery).

Version numbers come from `INCR`, so after Redis loses its data they start again at 1; the manifest's
`publish_id` (random) is what tells two publishes apart (`publish_id()`), and the reloader compares that.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import xxhash

from semrec.bundle import Bundle, SignatureError, sign_manifest, verify_manifest
from semrec.errors import UserError
from semrec.item_table import utc_now
from semrec.store import keys

FORMAT_VERSION = 1
DEFAULT_CHUNK_BYTES = 8 * 2**20
VectorDtype = Literal["float32", "float16"]

# Fault injection for the crash tests: pause at a named step so a test can SIGKILL the process there.
PAUSE_AT_ENV = "SEMREC_PUBLISH_PAUSE_AT"
PAUSE_FILE_ENV = "SEMREC_PUBLISH_PAUSE_FILE"
PUBLISH_STEPS = ("writing", "written", "verified", "switched")

_SWITCH = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return {0, current or ''} end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return {-1, KEYS[i]} end
end
for i = 3, #KEYS do redis.call('PERSIST', KEYS[i]) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return {1, ARGV[2]}
"""


class StoreError(UserError):
    """The store holds no usable bundle (none published, pruned meanwhile, or a checksum mismatch)."""


class NoBundleError(StoreError):
    pass


class ChecksumError(StoreError):
    pass


class ConcurrentPublishError(StoreError):
    pass


class BundleSignatureError(StoreError, SignatureError):
    pass


@dataclass
class PublishReport:
    catalog: str
    version: str
    previous: str | None
    n_items: int
    dim: int
    dtype: str
    bytes_written: int
    deleted_versions: list[str]
    seconds: dict[str, float]


@dataclass
class LoadedBundle:
    version: str
    bundle: Bundle
    manifest: dict[str, Any]
    extras: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0


def checksum(data: bytes | memoryview) -> str:
    return xxhash.xxh3_64_hexdigest(data)


def _pause_point(step: str) -> None:
    """Test hook: at `step`, write the pause file and wait until someone deletes it (or kills us)."""
    if os.environ.get(PAUSE_AT_ENV) != step:
        return
    marker = Path(os.environ[PAUSE_FILE_ENV])
    marker.write_text(step)
    deadline = time.monotonic() + 3600
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _chunks(data: bytes, size: int) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, max(len(data), 1), size):
        yield view[start : start + size]


def encode_bundle(bundle: Bundle, dtype: VectorDtype) -> dict[str, bytes]:
    """The blobs of a bundle (vectors little-endian in `dtype`)."""
    vectors = bundle.item_vectors.astype("<f2" if dtype == "float16" else "<f4", copy=False)
    blobs = {
        "encoder": bundle.encoder_onnx,
        "ids": orjson.dumps(bundle.item_ids),
        "vectors": vectors.tobytes(),
        "popularity": bundle.popularity.astype("<f4", copy=False).tobytes(),
    }
    if bundle.ann_index is not None:
        blobs["ann"] = bytes(bundle.ann_index)
    return blobs


def _version_keys(catalog: str, version: str, manifest: Mapping[str, Any]) -> list[str]:
    names = [keys.manifest(catalog, version)]
    for blob, info in manifest["blobs"].items():
        names += [keys.chunk(catalog, version, blob, i) for i in range(info["chunks"])]
    return names


def publish_id(manifest: Mapping[str, Any]) -> str:
    """What identifies one publish for good: its random id (older manifests: version + content hash + time)."""
    return str(manifest.get("publish_id") or f"{manifest.get('version')}:{manifest.get('content_hash')}:"
               f"{manifest.get('created_at')}")  # fmt: skip


def _decode(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def current_version(client, catalog: str) -> str | None:
    return _decode(client.get(keys.current(keys.check_catalog(catalog))))


def list_versions(client, catalog: str) -> list[str]:
    return [_decode(v) for v in client.zrange(keys.versions(catalog), 0, -1)]


def publish_bundle(
    client,
    catalog: str,
    bundle: Bundle,
    *,
    dtype: VectorDtype = "float32",
    keep: int = 3,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    pending_ttl_s: int = 6 * 3600,
    extras: Mapping[str, bytes] | None = None,
    progress: bool = False,
    signing_key: bytes | None = None,
) -> PublishReport:
    """Publish `bundle` as the catalogue's new current version (see the module docstring); signed when
    `signing_key` is given."""
    from tqdm import tqdm

    keys.check_catalog(catalog)
    if keep < 1:
        raise UserError("keep must be >= 1")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    previous = current_version(client, catalog)
    version = str(client.incr(keys.version_seq(catalog)))
    blobs = encode_bundle(bundle, dtype)
    for name, data in (extras or {}).items():
        if name in blobs or not name.isidentifier():
            raise UserError(f"extra blob name {name!r} is reserved or invalid")
        blobs[name] = bytes(data)
    sums = {name: checksum(data) for name, data in blobs.items()}
    timings["encode_s"] = time.perf_counter() - start

    t = time.perf_counter()
    total = sum(len(d) for d in blobs.values())
    blob_info: dict[str, dict[str, Any]] = {}
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"publish {catalog} v{version}", disable=not progress) as bar:
        for name, data in blobs.items():
            pipe = client.pipeline(transaction=False)
            n_chunks = 0
            for i, part in enumerate(_chunks(data, chunk_bytes)):
                pipe.set(keys.chunk(catalog, version, name, i), part.tobytes(), ex=pending_ttl_s)
                n_chunks += 1
                if n_chunks % 8 == 0:
                    pipe.execute()
                    _pause_point("writing")
                bar.update(len(part))
            pipe.execute()
            _pause_point("writing")
            blob_info[name] = {"size": len(data), "chunks": n_chunks, "xxh3_64": sums[name]}
            if signing_key is not None:
                blob_info[name]["sha256"] = hashlib.sha256(data).hexdigest()
    timings["write_s"] = time.perf_counter() - t
    _pause_point("written")

    t = time.perf_counter()
    for name, info in blob_info.items():
        _read_blob(client, catalog, version, name, info, keep=False)  # raises on any difference
    timings["verify_s"] = time.perf_counter() - t

    manifest = {
        "format": FORMAT_VERSION,
        "catalog": catalog,
        "version": version,
        "publish_id": uuid.uuid4().hex,
        "created_at": utc_now(),
        "n_items": len(bundle.item_ids),
        "dim": bundle.dim,
        "dtype": dtype,
        "chunk_bytes": chunk_bytes,
        "blobs": blob_info,
        "content_hash": checksum("".join(f"{k}={v};" for k, v in sorted(sums.items())).encode()),
        "metadata": bundle.metadata,
    }
    if signing_key is not None:
        manifest = sign_manifest(manifest, signing_key)
    client.set(keys.manifest(catalog, version), orjson.dumps(manifest), ex=pending_ttl_s)
    _pause_point("verified")

    t = time.perf_counter()
    version_keys = _version_keys(catalog, version, manifest)
    status, detail = client.eval(
        _SWITCH, 2 + len(version_keys), keys.current(catalog), keys.versions(catalog), *version_keys,
        previous or "", version, int(version),
    )  # fmt: skip
    if int(status) == 0:
        raise ConcurrentPublishError(
            f"catalog {catalog}: the current version changed from {previous} to {_decode(detail)} during this "
            "publish (another publisher?); nothing was switched, run it again"
        )
    if int(status) < 0:
        raise StoreError(f"catalog {catalog} v{version}: key {_decode(detail)} expired before the switch "
                         "(raise --pending-ttl-s); nothing was switched")  # fmt: skip
    timings["switch_s"] = time.perf_counter() - t
    _pause_point("switched")

    client.publish(keys.updates_channel(catalog), orjson.dumps({"catalog": catalog, "version": version}))
    deleted = prune_versions(client, catalog, keep)
    timings["total_s"] = time.perf_counter() - start
    return PublishReport(
        catalog=catalog,
        version=version,
        previous=previous,
        n_items=len(bundle.item_ids),
        dim=bundle.dim,
        dtype=dtype,
        bytes_written=total,
        deleted_versions=deleted,
        seconds={k: round(v, 4) for k, v in timings.items()},
    )


def prune_versions(client, catalog: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete versions; the current one is always kept."""
    current = current_version(client, catalog)
    listed = list_versions(client, catalog)
    doomed = [v for v in listed[: max(len(listed) - keep, 0)] if v != current]
    for version in doomed:
        raw = client.get(keys.manifest(catalog, version))
        if raw is not None:
            names = _version_keys(catalog, version, orjson.loads(raw))
            for start in range(0, len(names), 512):
                client.unlink(*names[start : start + 512])
        client.zrem(keys.versions(catalog), version)
    return doomed


def _read_blob(client, catalog: str, version: str, name: str, info: Mapping[str, Any],
               keep: bool = True, sha256: bool = False) -> bytearray | None:  # fmt: skip
    """Read a blob chunk by chunk (one GET each: large replies parse fastest that way, with hiredis),
    checking its size and its xxh3-64 (and SHA-256 when asked) as it streams. Returns the bytes, or None when
    `keep` is False."""
    digest = xxhash.xxh3_64()
    strong = hashlib.sha256() if sha256 else None
    out = bytearray(info["size"]) if keep else None
    offset = 0
    for i in range(info["chunks"]):
        part = client.get(keys.chunk(catalog, version, name, i))
        if part is None:
            raise StoreError(f"catalog {catalog} v{version}: chunk {i} of '{name}' is missing")
        if offset + len(part) > info["size"]:
            raise ChecksumError(f"catalog {catalog} v{version}: blob '{name}' is longer than {info['size']} bytes")
        digest.update(part)
        if strong is not None:
            strong.update(part)
        if out is not None:
            out[offset : offset + len(part)] = part
        offset += len(part)
    if offset != info["size"]:
        raise ChecksumError(f"catalog {catalog} v{version}: blob '{name}' has {offset} bytes, expected {info['size']}")
    if digest.hexdigest() != info["xxh3_64"]:
        raise ChecksumError(f"catalog {catalog} v{version}: blob '{name}' fails its checksum; refusing it")
    if strong is not None and strong.hexdigest() != info.get("sha256"):
        raise BundleSignatureError(f"catalog {catalog} v{version}: blob '{name}' does not match the SHA-256 "
                                   "its signed manifest names; refusing it")  # fmt: skip
    return out


def read_manifest(client, catalog: str, version: str) -> dict[str, Any]:
    raw = client.get(keys.manifest(catalog, version))
    if raw is None:
        raise StoreError(f"catalog {catalog}: version {version} has no manifest (deleted or never completed)")
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise StoreError(f"catalog {catalog}: the manifest of version {version} is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("blobs"), dict):
        raise StoreError(f"catalog {catalog}: the manifest of version {version} is malformed")
    return manifest


def check_manifest(manifest: Mapping[str, Any], catalog: str, version: str, signing_key: bytes | None) -> None:
    """Raise BundleSignatureError if a key is configured and the manifest is not signed by it (or names
    another catalogue / version: a signed manifest copied under another pointer)."""
    if signing_key is None:
        return
    try:
        verify_manifest(dict(manifest), signing_key)
    except SignatureError as exc:
        raise BundleSignatureError(f"catalog {catalog} v{version}: {exc}; refusing it") from None
    if manifest.get("catalog") != catalog or str(manifest.get("version")) != version:
        raise BundleSignatureError(f"catalog {catalog} v{version}: the signed manifest is for {manifest.get('catalog')} "
                                   f"v{manifest.get('version')}; refusing it")  # fmt: skip


def load_bundle(
    client, catalog: str, version: str | None = None, extras: tuple[str, ...] = (), signing_key: bytes | None = None
) -> LoadedBundle:
    """The current (or given) version, every blob checksum-verified (and signature-checked when `signing_key`
    is given). Raises NoBundleError / ChecksumError / BundleSignatureError."""
    start = time.perf_counter()
    keys.check_catalog(catalog)
    if version is None:
        version = current_version(client, catalog)
        if version is None:
            raise NoBundleError(f"catalog {catalog}: no bundle published yet (run `semrec publish`)")
    manifest = read_manifest(client, catalog, version)
    check_manifest(manifest, catalog, version, signing_key)
    blobs: dict[str, bytearray] = {}
    for name, info in manifest["blobs"].items():
        if name not in ("encoder", "ids", "vectors", "popularity", "ann") and name not in extras:
            continue
        blobs[name] = _read_blob(client, catalog, version, name, info, sha256=signing_key is not None)
    n, dim = manifest["n_items"], manifest["dim"]
    dtype = "<f2" if manifest["dtype"] == "float16" else "<f4"
    vectors = np.frombuffer(blobs["vectors"], dtype=dtype).reshape(n, dim).astype(np.float32, copy=False)
    bundle = Bundle(
        encoder_onnx=bytes(blobs["encoder"]),
        item_ids=orjson.loads(blobs["ids"]),
        item_vectors=vectors,
        popularity=np.frombuffer(blobs["popularity"], dtype="<f4").copy(),
        metadata=manifest["metadata"],
        ann_index=bytes(blobs["ann"]) if "ann" in blobs else None,
    )
    return LoadedBundle(
        version=version,
        bundle=bundle,
        manifest=manifest,
        extras={k: bytes(blobs[k]) for k in extras if k in blobs},
        seconds=time.perf_counter() - start,
    )
