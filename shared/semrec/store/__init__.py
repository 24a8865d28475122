"""The Redis store: versioned model bundles (publish/load) and user histories. Key schema: `keys`."""

from semrec.store.bundles import (
    BundleSignatureError,
    ChecksumError,
    ConcurrentPublishError,
    LoadedBundle,
    NoBundleError,
    PublishReport,
    StoreError,
    current_version,
    list_versions,
    load_bundle,
    prune_versions,
    publish_bundle,
    publish_id,
    read_manifest,
)
from semrec.store.histories import append_history, history_length, read_history, write_histories

__all__ = [
    "BundleSignatureError",
    "ChecksumError",
    "ConcurrentPublishError",
    "LoadedBundle",
    "NoBundleError",
    "PublishReport",
    "StoreError",
    "append_history",
    "current_version",
    "history_length",
    "list_versions",
    "load_bundle",
    "prune_versions",
    "publish_bundle",
    "publish_id",
    "read_history",
    "read_manifest",
    "write_histories",
]
