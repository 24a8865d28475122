"""The Redis store: versioned model bundles (publish/load) and user histories. Key schema: `keys`."""

from semrec.store.bundles import (
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
    read_manifest,
)
from semrec.store.histories import append_history, read_history

__all__ = [
    "ChecksumError",
    "ConcurrentPublishError",
    "LoadedBundle",
    "NoBundleError",
    "PublishReport",
    "StoreError",
    "append_history",
    "current_version",
    "list_versions",
    "load_bundle",
    "prune_versions",
    "publish_bundle",
    "read_history",
    "read_manifest",
]
