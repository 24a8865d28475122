"""`semrec --version`, shell completion, and one example config per job under docs/examples/."""

import json
from pathlib import Path

import pytest
from semrec.cli import build_app
from semrec.cli_builder import leaf_fields
from semrec.config import is_per_invocation, with_leaves
from typer.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def config_commands(app, prefix=()):
    """(command path, its config class) for every command generated from a config class."""
    for command in app.registered_commands:
        config_class = getattr(command.callback, "config_class", None)
        if config_class is not None:
            yield (*prefix, command.name), config_class
    for group in app.registered_groups:
        yield from config_commands(group.typer_instance, (*prefix, group.name))


def test_version_flag_prints_the_installed_version():
    from importlib.metadata import version

    result = CliRunner().invoke(build_app(), ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"semrec {version('semrec')}"


def test_shell_completion_script_is_offered():
    result = CliRunner().invoke(build_app(), ["--show-completion", "bash"])
    assert result.exit_code == 0 and "complete" in result.stdout and "semrec" in result.stdout.lower()
    assert "--install-completion" in CliRunner().invoke(build_app(), ["--help"]).stdout


def test_every_job_has_an_example_config_that_loads():
    commands = dict(config_commands(build_app()))
    assert len(commands) >= 20
    expected = {"-".join(path) + ".json" for path in commands}
    present = {p.name for p in EXAMPLES.glob("*.json")}
    assert present == expected, f"missing {sorted(expected - present)}, stale {sorted(present - expected)}"
    for path, config_class in commands.items():
        payload = json.loads((EXAMPLES / ("-".join(path) + ".json")).read_text())
        assert payload["kind"] == config_class.__name__, path
        assert set(payload["config"]) <= set(config_class.model_fields), path  # nested as the class is
        config_class.model_validate(with_leaves(config_class, payload["config"], required_invocation(config_class)))


def required_invocation(config_class):
    """The required per-invocation settings (a run's --out), which example files leave to the command line."""
    return {name: "runs/example" for name, (_, field) in leaf_fields(config_class).items()
            if is_per_invocation(field) and field.is_required()}


@pytest.mark.parametrize("example", ["data-stats.json"])
def test_an_example_drives_its_command(example, tmp_path):
    result = CliRunner().invoke(build_app(), ["data", "stats", "--config", str(EXAMPLES / example),
                                              "--data", "synthetic:users=60,items=30,seed=2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"] == "synthetic-u60-i30-s2"  # output_format comes from the file
