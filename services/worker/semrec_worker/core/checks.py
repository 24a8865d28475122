"""Checks of flags that a command runs before it loads any data: a typo in a path fails in a second, not
after the dataset has been read and filtered."""

from __future__ import annotations

from pathlib import Path

from semrec.errors import UserError


def require_existing(flag: str, path: str | Path | None, what: str = "no such file or directory") -> None:
    """`flag PATH: <what>` (exit 2) unless PATH is None or exists."""
    if path is not None and not Path(path).expanduser().exists():
        raise UserError(f"{flag} {path}: {what}")
