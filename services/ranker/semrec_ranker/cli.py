"""Registers the ranker's commands on the `semrec` CLI."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups


def register(groups: CommandGroups) -> None:
    del groups  # `semrec serve` and `semrec bench ranker` arrive with the ranker (issue 8)
