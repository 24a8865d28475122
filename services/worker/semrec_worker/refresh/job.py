"""Refresh a served bundle from a new items file: diff by content hash, encode what is new or changed.

Row order is append-only so the ONNX encoder's input indices stay valid:
- unchanged items keep their row and vector;
- changed items keep their row and get a new vector (as recommendation targets; as history inputs the
  encoder still uses what it was trained with, until the next training run);
- removed items keep their row but are listed in `metadata["retired_items"]`: never recommended;
- added items are appended after the encoder's vocabulary (`metadata["encoder_vocab_size"]`): they can be
  recommended and found by similarity at once, and are skipped as history inputs until retraining.

"Changed" means changed in what the item encoder reads: the bundle's hashes are taken over the encoder's
`text_view` (its key is kept in `metadata["text_view"]`), e.g. every attribute for LLMEmb's prompt, the
caption fields for SAID and the text map. Hashes taken over another view cannot tell, so then every item is
re-encoded once (and the hashes are retaken over the encoder's view).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from semrec.bundle import Bundle
from semrec.item_table import utc_now

from semrec_worker.data.records import Item
from semrec_worker.data.text import CAPTION_VIEW, TextView, content_hashes
from semrec_worker.refresh.encoders import ItemEncoder

ENCODER_VOCAB_KEY = "encoder_vocab_size"
RETIRED_KEY = "retired_items"
TEXT_VIEW_KEY = "text_view"  # the key of the text view the bundle's content hashes were taken over


@dataclass
class RefreshDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed),
                "unchanged": self.unchanged}


def hashed_view(bundle: Bundle) -> str:
    """The text view the bundle's hashes cover (bundles published before views were recorded: the caption)."""
    return str(bundle.metadata.get(TEXT_VIEW_KEY, CAPTION_VIEW.key))


def diff_items(
    bundle: Bundle, hashes: np.ndarray, items: dict[str, Item], view: TextView = CAPTION_VIEW
) -> tuple[RefreshDiff, np.ndarray]:
    """What changed between the served catalogue and `items` in the text `view` reads; also the new items'
    hashes over `view` (bundle order). Hashes over another view: every item still served counts as changed."""
    retired = set(bundle.metadata.get(RETIRED_KEY, []))
    new_hashes = content_hashes(bundle.item_ids, items, view)
    comparable = hashed_view(bundle) == view.key
    diff = RefreshDiff()
    for row, item_id in enumerate(bundle.item_ids):
        if item_id not in items:
            if item_id not in retired:
                diff.removed.append(item_id)
        elif item_id in retired or not comparable or new_hashes[row] != hashes[row]:
            diff.changed.append(item_id)  # edited text, a retired item that came back, or hashes not comparable
        else:
            diff.unchanged += 1
    known = set(bundle.item_ids)
    diff.added = [i for i in items if i not in known]
    return diff, new_hashes


def refresh_bundle(
    bundle: Bundle, hashes: np.ndarray, items: dict[str, Item], encoder: ItemEncoder, source: str
) -> tuple[Bundle, np.ndarray, RefreshDiff]:
    """The refreshed bundle and its content hashes (unchanged bundle when the diff is empty)."""
    view = encoder.text_view
    diff, new_hashes = diff_items(bundle, hashes, items, view)
    if diff.empty:
        return bundle, hashes, diff
    row_of = {item_id: row for row, item_id in enumerate(bundle.item_ids)}
    to_encode = [items[i] for i in diff.changed] + [items[i] for i in diff.added]
    encoded = encoder.encode(to_encode) if to_encode else np.zeros((0, bundle.dim), np.float32)
    if encoded.shape != (len(to_encode), bundle.dim):
        raise ValueError(f"item encoder returned shape {encoded.shape}, expected ({len(to_encode)}, {bundle.dim})")
    vectors = bundle.item_vectors.copy()
    for offset, item_id in enumerate(diff.changed):
        vectors[row_of[item_id]] = encoded[offset]
    added_vectors = encoded[len(diff.changed) :]
    retired = (set(bundle.metadata.get(RETIRED_KEY, [])) - set(diff.changed)) | set(diff.removed)
    metadata = {
        **bundle.metadata,
        ENCODER_VOCAB_KEY: int(bundle.metadata.get(ENCODER_VOCAB_KEY, len(bundle.item_ids))),
        RETIRED_KEY: sorted(retired),
        TEXT_VIEW_KEY: view.key,
        "refreshed_at": utc_now(),
        "refresh": {**diff.summary(), "encoder": getattr(encoder, "kind", type(encoder).__name__), "source": source},
    }
    added_hashes = content_hashes(diff.added, items, view)
    refreshed = Bundle(
        encoder_onnx=bundle.encoder_onnx,
        item_ids=bundle.item_ids + diff.added,
        item_vectors=np.concatenate([vectors, added_vectors]),
        popularity=np.concatenate([bundle.popularity, np.zeros(len(diff.added), np.float32)]),
        metadata=metadata,
        ann_index=None,  # row set changed: the publisher rebuilds it when the catalogue needs one
    )
    return refreshed, np.concatenate([new_hashes, added_hashes]), diff
