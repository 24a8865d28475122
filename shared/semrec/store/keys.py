"""The Redis key schema. A catalogue's bundle keys share the hash tag `{catalog}`; user histories are tagged
by user id.

| key | type | what |
|---|---|---|
| `semrec:{<catalog>}:current` | string | the version the ranker serves (the pointer) |
| `semrec:{<catalog>}:versions` | sorted set | complete published versions, score = version number |
| `semrec:{<catalog>}:version_seq` | string (INCR) | the last version number handed out |
| `semrec:{<catalog>}:bundle:<version>:manifest` | string (JSON) | sizes, chunk counts, checksums, publish id, signature, metadata |
| `semrec:{<catalog>}:bundle:<version>:<blob>:<i>` | string (bytes) | chunk i of blob `encoder`, `ids`, `vectors`, `popularity`, `ann`, `text_hashes` |
| `semrec:{<catalog>}:updates` | pub/sub channel | `{"catalog", "version"}` after each switch |
| `semrec:<catalog>:user:{<user_id>}` | list | the user's item ids, oldest first, capped, with a TTL |

Redis Cluster maps a key to a slot by the part between the first `{` and the next `}` (the hash tag), so
every bundle key of a catalogue and its pointer live in one slot: the publish switch (one Lua script over
all of them) stays atomic on a cluster. User histories are tagged by user id, so they spread over the
cluster's slots instead of piling onto the catalogue's node.

Keys of a version being published carry a TTL until the atomic switch removes it, so whatever a crashed
publish wrote expires by itself and never becomes visible.
"""

from __future__ import annotations

import re

PREFIX = "semrec"
_CATALOG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_catalog(catalog: str) -> str:
    from semrec.errors import UserError

    if not _CATALOG.match(catalog):
        raise UserError(f"catalog name {catalog!r}: use 1-64 letters, digits, '_', '-' or '.'")
    return catalog


def _bundle_space(catalog: str) -> str:
    return f"{PREFIX}:{{{catalog}}}"


def current(catalog: str) -> str:
    return f"{_bundle_space(catalog)}:current"


def versions(catalog: str) -> str:
    return f"{_bundle_space(catalog)}:versions"


def version_seq(catalog: str) -> str:
    return f"{_bundle_space(catalog)}:version_seq"


def bundle_pattern(catalog: str, version: str) -> str:
    """A SCAN/KEYS pattern matching every key of one version (the braces are literal in glob patterns)."""
    return f"{_bundle_space(catalog)}:bundle:{version}:*"


def manifest(catalog: str, version: str) -> str:
    return f"{_bundle_space(catalog)}:bundle:{version}:manifest"


def chunk(catalog: str, version: str, blob: str, index: int) -> str:
    return f"{_bundle_space(catalog)}:bundle:{version}:{blob}:{index}"


def updates_channel(catalog: str) -> str:
    return f"{_bundle_space(catalog)}:updates"


def user_history(catalog: str, user_id: str) -> str:
    return f"{PREFIX}:{catalog}:user:{{{user_id}}}"
