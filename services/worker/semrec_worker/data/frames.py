"""pandas DataFrames -> the raw records every reader produces (`RawInteractions`, items by id).

Interactions need `user_id` and `item_id` columns (names configurable) and may have a `timestamp`:
numbers, datetimes or ISO-8601 strings; without one, row order is the order of events. Items may carry
`title`, `brand`, `categories` (a list or a string) and any other column as an extra attribute.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from semrec.errors import UserError

from semrec_worker.data.records import Item, RawInteractions
from semrec_worker.data.timestamps import parse_timestamp

if TYPE_CHECKING:
    import pandas as pd

ITEM_FIELDS = ("title", "brand", "categories")


def interactions_from_frame(
    frame: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id", time_col: str = "timestamp"
) -> RawInteractions:
    missing = [c for c in (user_col, item_col) if c not in frame.columns]
    if missing:
        raise UserError(f"interactions frame: missing column(s) {', '.join(missing)} (has {list(frame.columns)})")
    if frame.empty:
        raise UserError("interactions frame: no rows")
    if frame[[user_col, item_col]].isna().any().any():
        row = frame.index[frame[[user_col, item_col]].isna().any(axis=1)][0]
        raise UserError(f"interactions frame: empty {user_col} or {item_col} at row {row!r}")
    if time_col in frame.columns:
        times = _seconds(frame[time_col])
    else:
        times = np.arange(len(frame), dtype=np.float64)
    users = frame[user_col].astype(str).to_numpy()
    items = frame[item_col].astype(str).to_numpy()
    return RawInteractions(users, items, times, None, None)


def _seconds(column: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        if column.dt.tz is None:
            column = column.dt.tz_localize("UTC")
        values = (column - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    elif pd.api.types.is_numeric_dtype(column):
        values = column.astype("float64")
    else:
        values = column.map(lambda v: parse_timestamp(str(v)) if v is not None and v == v else None)
    bad = values.isna()
    if bad.any():
        row = column.index[bad.to_numpy()][0]
        raise UserError(
            f"interactions frame: timestamp {column[row]!r} at row {row!r} is neither a number nor an "
            "ISO-8601 date-time"
        )
    return values.to_numpy(dtype=np.float64)


def items_from_frame(frame: pd.DataFrame | None, item_ids: np.ndarray, item_col: str = "item_id") -> dict[str, Item]:
    """Items by id; without a frame, every interacted item with no attributes. A repeated id keeps its last
    row and warns with the count."""
    if frame is None:
        return {i: Item(i) for i in np.unique(item_ids).tolist()}
    if item_col not in frame.columns:
        raise UserError(f"items frame: missing column {item_col} (has {list(frame.columns)})")
    ids = frame[item_col].astype(str)
    repeated = int(ids.duplicated().sum())
    if repeated:
        n_ids = int(ids[ids.duplicated(keep=False)].nunique())
        warnings.warn(
            f"items frame: {n_ids} item id(s) appear more than once ({repeated} extra rows; the last row of each "
            f"wins), e.g. {ids[ids.duplicated()].iloc[0]!r}",
            UserWarning,
            stacklevel=3,
        )
    extras = [c for c in frame.columns if c != item_col and c not in ITEM_FIELDS]
    items: dict[str, Item] = {}
    for item_id, record in zip(ids.tolist(), frame.to_dict("records"), strict=True):
        items[item_id] = Item(
            item_id,
            _text(record.get("title")),
            _text(record.get("brand")),
            _categories(record.get("categories")),
            {c: _plain(record[c]) for c in extras if not _missing(record[c])},
        )
    return items


def _missing(value: Any) -> bool:
    if isinstance(value, list | tuple | np.ndarray):
        return len(value) == 0
    return value is None or value != value or value == ""


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _categories(value: Any) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value if not _missing(v)]
    return [part.strip() for part in str(value).split(">") if part.strip()]


def _plain(value: Any) -> Any:
    """JSON-friendly values for the extras (numpy scalars and arrays become Python ones)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
