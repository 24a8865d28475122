"""Plain records read from any source format, before filtering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Item:
    item_id: str
    title: str | None = None
    brand: str | None = None
    categories: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        """Non-empty textual attributes in a stable order (title, brand, category, then extras)."""
        attrs: dict[str, str] = {}
        if self.title:
            attrs["title"] = self.title
        if self.brand:
            attrs["brand"] = self.brand
        if self.categories:
            attrs["category"] = " > ".join(self.categories)
        for key, value in self.extra.items():
            if key in ("text", "release_date") or value in (None, "", []):
                continue
            attrs[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return attrs

    def to_json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "brand": self.brand,
            "categories": self.categories or None,
            **self.extra,
        }


@dataclass
class RawInteractions:
    """Column arrays of (user, item, timestamp) in file order, with where each row came from."""

    users: np.ndarray  # str
    items: np.ndarray  # str
    timestamps: np.ndarray  # float64
    source: Path | None = None
    lines: np.ndarray | None = None  # 1-based line of each row in `source`

    def __len__(self) -> int:
        return len(self.users)
