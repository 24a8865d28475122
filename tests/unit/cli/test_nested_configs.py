"""Nested configs: every leaf of a nested settings model is a flat flag, leaf names are unique (checked when a
command registers), flat input is routed to its group, per-invocation fields are never saved."""

import json

import pytest
import typer
from pydantic import Field, ValidationError
from semrec.cli_builder import config_command, invocation_flags, leaf_fields
from semrec.config import JobConfig, StrictModel, invocation_field, read_flat_config
from typer.testing import CliRunner


class Optim(StrictModel):
    lr: float = Field(0.1, gt=0, description="learning rate")
    epochs: int = Field(3, description="epochs")


class Shape(StrictModel):
    dim: int = Field(8, description="width")
    tags: list[str] = Field(["a"], description="tags")


class Job(JobConfig):
    out: str = invocation_field(..., "run directory")
    resume: bool = invocation_field(False, "continue")
    seed: int = Field(0, description="seed")
    optim: Optim = Field(default_factory=Optim)
    shape: Shape = Field(default_factory=Shape)


class Composed(JobConfig):
    job: Job


class Clash(JobConfig):
    optim: Optim = Field(default_factory=Optim)
    lr: float = Field(1.0, description="a second 'lr'")


def app_running(config_cls, seen):
    app = typer.Typer()
    config_command(app, "go", config_cls, seen.append, "test command")
    config_command(app, "other", JobConfig, seen.append, "a second command keeps typer in group mode")
    return app


def test_leaves_of_nested_models_are_flat_flags_and_fill_their_groups():
    seen = []
    result = CliRunner().invoke(app_running(Job, seen), ["go", "--out", "r", "--lr", "0.5", "--dim", "4",
                                                         "--tags", "x, y", "--seed", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.optim.lr == 0.5 and config.shape.dim == 4 and config.shape.tags == ["x", "y"] and config.seed == 2
    assert config.lr == 0.5 and config.dim == 4  # a unique leaf reads flat too
    assert config.optim.epochs == 3  # untouched leaves keep their defaults
    bad = CliRunner().invoke(app_running(Job, []), ["go", "--out", "r", "--lr", "-1"])
    assert bad.exit_code == 2 and "--lr:" in bad.output  # named by its flag, not by its group path


def test_two_leaves_with_one_name_are_refused_when_the_command_registers():
    with pytest.raises(ValueError, match="'lr' is both optim.lr and lr"):
        config_command(typer.Typer(), "clash", Clash, print, "")
    assert set(leaf_fields(Composed)) == {"out", "resume", "seed", "lr", "epochs", "dim", "tags"}


def test_flat_input_is_routed_and_a_leaf_given_twice_is_an_error():
    flat = Job(out="r", lr=0.2, dim=5)
    assert flat == Job(out="r", optim={"lr": 0.2}, shape=Shape(dim=5))
    assert Composed(out="r", lr=0.2).job.optim.lr == 0.2  # routed through two levels
    assert Job(out="r", optim=Optim(epochs=9), lr=0.2).optim == Optim(epochs=9, lr=0.2)  # beside a built group
    with pytest.raises(ValidationError, match="given twice"):
        Job(out="r", lr=0.2, optim={"lr": 0.3})
    with pytest.raises(ValidationError, match="given twice"):
        Job(out="r", lr=0.2, optim=Optim(lr=0.3))
    with pytest.raises(ValidationError, match="lrr"):
        Job(out="r", lrr=0.2)  # unknown keys stay errors


def test_saved_configs_are_nested_without_per_invocation_fields(tmp_path):
    Job(out="r", resume=True, lr=0.2).save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["config"] == {"seed": 0, "optim": {"lr": 0.2, "epochs": 3}, "shape": {"dim": 8, "tags": ["a"]}}
    assert read_flat_config(tmp_path) == {"seed": 0, "lr": 0.2, "epochs": 3, "dim": 8, "tags": ["a"]}
    assert Job.load(tmp_path, out="again") == Job(out="again", lr=0.2)
    assert invocation_flags(Job(out="r", resume=True)) == ["--out", "r", "--resume"]


def test_a_config_file_of_an_earlier_flat_layout_loads_and_its_run_settings_come_from_the_command_line(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"kind": "Job", "config": {"out": "old-run", "resume": True, "lr": 0.3, "dim": 6}}))
    seen = []
    result = CliRunner().invoke(app_running(Job, seen), ["go", "--config", str(path), "--out", "new", "--dim", "7"])
    assert result.exit_code == 0, result.output
    assert seen == [Job(out="new", lr=0.3, dim=7)]  # not resumed, flags override the file
    assert "ignoring --out, --resume of the file" in result.output
    missing = CliRunner().invoke(app_running(Job, []), ["go", "--config", str(path)])
    assert missing.exit_code == 2 and "--out" in missing.output  # the old run directory is not reused silently
