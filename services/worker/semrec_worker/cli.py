"""Registers the worker's commands on the `semrec` CLI. Each command module owns its config and runner."""

from __future__ import annotations

import importlib

from semrec.cli_builder import CommandGroups

COMMAND_MODULES = (
    "semrec_worker.commands.data",
    "semrec_worker.commands.evaluate",
    "semrec_worker.commands.demo",
    "semrec_worker.commands.llm_embeddings",
)


def register(groups: CommandGroups) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(groups)
