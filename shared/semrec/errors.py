"""Errors a user can fix. The CLI prints them as one line and exits with status 2 (no traceback)."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input or settings: the message says what is wrong and how to fix it."""

    exit_code = 2


class DataError(UserError):
    """A data file is malformed; names the file and, where known, the 1-based line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
