"""`semrec bench ranker` registration (the benchmark itself lives in bench/ranker.py)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups


def register(groups: CommandGroups) -> None:
    del groups
