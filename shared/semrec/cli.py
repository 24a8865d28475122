"""The `semrec` command line. Subcommands come from the installed services:

- `semrec_worker` (offline): `data`, `train`, `eval`, `export`, `publish`, `refresh`, `bench`, `demo`
- `semrec_ranker` (online): `serve`, `bench ranker`

A slim ranker image installs only the ranker; the worker's commands are then simply absent.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import typer

from semrec.cli_builder import CommandGroups, SemrecGroup

PLUGINS = ("semrec_worker.cli", "semrec_ranker.cli")


def _group(app: typer.Typer, name: str, help: str) -> typer.Typer:
    group = typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_enable=False, cls=SemrecGroup)
    app.add_typer(group, name=name)
    return group


def semrec_version() -> str:
    try:
        return version("semrec")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"semrec {semrec_version()}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="semrec",
        cls=SemrecGroup,
        help="Semantic item embeddings from language models -> sequential recommenders -> REST serving.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    )

    @app.callback()
    def root(
        show_version: bool = typer.Option(
            False, "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ) -> None:
        """Semantic item embeddings from language models -> sequential recommenders -> REST serving."""

    groups = CommandGroups(
        root=app,
        data=_group(app, "data", "Datasets: load, filter, split, describe; generate the synthetic catalogue."),
        train=_group(app, "train", "Train an item-embedding method (ItemTable) or a sequential recommender."),
        eval=_group(app, "eval", "Evaluate recommenders with the shared protocol; results JSON under results/."),
        export=_group(app, "export", "Export a trained run for serving (ONNX)."),
        bench=_group(app, "bench", "Benchmarks: speed, memory and quality; results JSON under results/."),
    )
    for module_name in PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name in (module_name, module_name.split(".")[0]):
                continue  # that service is not installed in this image
            raise
        module.register(groups)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
