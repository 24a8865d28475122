"""Registers the worker's commands on the `semrec` CLI.

Every module in `semrec_worker.commands` that defines `register(groups)` is a command module: it owns its
config class and runner. Adding a command is adding a module there.
"""

from __future__ import annotations

import importlib
import pkgutil

from semrec.cli_builder import CommandGroups

from semrec_worker import commands


def command_modules() -> list[str]:
    return sorted(f"{commands.__name__}.{m.name}" for m in pkgutil.iter_modules(commands.__path__))


def register(groups: CommandGroups) -> None:
    for name in command_modules():
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(groups)
