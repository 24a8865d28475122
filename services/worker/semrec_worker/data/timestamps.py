"""Timestamps as float seconds: numbers (Unix time or any monotonic counter) or ISO-8601 date-times.

A date-time without a UTC offset is read as UTC, so every row of one file orders the same way whatever the
machine's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_timestamp(text: str) -> float | None:
    """Seconds for `text` (e.g. `1700000000`, `1.5`, `2024-03-01`, `2024-03-01T12:30:00Z`), None if neither."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
