"""`semrec train <method>` for every method of the registry that builds an item table (lh, llm2x, said,
llmemb, ...): its settings class is the command's flags, its build function the runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from semrec.cli_builder import CommandGroups, config_command
from semrec.config import JobConfig

from semrec_worker.methods import registry
from semrec_worker.methods.registry import Ref


def _runner(ref: Ref) -> Callable[[JobConfig], Any]:
    def run(config: JobConfig) -> Any:
        from semrec_worker.core.runtime import apply_threads

        apply_threads(getattr(config, "threads", None))
        return ref.load()(config)  # the method's torch code loads only when the command runs

    return run


def register(groups: CommandGroups) -> None:
    for spec in registry.SPECS.values():
        if spec.table is not None:
            config_command(groups.train, spec.name, spec.table.config, _runner(spec.table.run), spec.table.help)
