"""`semrec train <command>` for every stage 2 of the method registry (`seqrec`, `llmemb-rat`, `tslrec`, ...):
its config class is the command's flags, its run function the runner (torch loads only when it runs)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.methods import registry


def register(groups: CommandGroups) -> None:
    for entry in registry.stage2_entries():
        config_command(groups.train, entry.command, entry.config, entry.run.deferred(), entry.help)
