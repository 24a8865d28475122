"""Turn a pydantic job config into a typer command: the config class is the single source of the flags.

Each field becomes `--field-name` (its description is the help text, its default the shown default).
`--config FILE.json` loads a saved config first; flags given on the command line override it. Unknown
keys and invalid values are errors (exit 2), never silently ignored. A config's nested settings models
(one per concern) add their leaves as flat flags: leaf names are unique across a config (checked here).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperCommand, TyperGroup

from semrec.config import JobConfig, config_payload, is_per_invocation, nested_model
from semrec.errors import UserError
from semrec.vocabulary import DeprecatedNameWarning, old_names_of
from semrec.vocabulary import flag as flag_of

C = TypeVar("C", bound=BaseModel)
_SCALARS = (int, float, str, bool, Path)


@dataclass(frozen=True)
class CommandGroups:
    """The command groups that the services add their commands to."""

    root: typer.Typer
    data: typer.Typer
    train: typer.Typer
    eval: typer.Typer
    export: typer.Typer
    bench: typer.Typer


def _without_flag_placeholders(params: list[Any]) -> list[Any]:
    """A flag takes no value: show `--serve / --no-serve`, not `--serve / --no-serve <bool>` (Typer's rich help
    prints the type of every option, flags included, unless it has a metavar)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class SemrecCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))


class SemrecGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))


def old_leaf_names(config_cls: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Old name of a renamed leaf -> (its path: the group that renames it, then the old name; its `OldName`),
    through nested settings models."""
    out: dict[str, tuple[tuple[str, ...], Any]] = {}

    def walk(cls: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for old, spec in old_names_of(cls).items():
            out.setdefault(old, ((*prefix, old), spec))
        for fname, field in cls.model_fields.items():
            inner = nested_model(field.annotation)
            if inner is not None:
                walk(inner, (*prefix, fname))

    walk(config_cls, ())
    return out


def _old_name_options(config_cls: type[BaseModel], fields: dict[str, Any]) -> list[inspect.Parameter]:
    """A hidden flag per old name of a renamed field (the vocabulary's deprecated aliases): it still works,
    and the config class warns when it is used. Registers each in `fields` with its type."""
    params = []
    for old, (_, spec) in old_leaf_names(config_cls).items():
        if old in fields:
            continue
        py_type = spec.cli_type or fields.get(spec.new)
        if py_type is None:
            continue
        fields[old] = py_type
        decls = [f"{flag_of(old)}/--no-{flag_of(old)[2:]}"] if py_type is bool else [flag_of(old)]
        option = typer.Option(*decls, hidden=True, help=f"deprecated: use {flag_of(spec.new)}")
        params.append(inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[py_type | None, option]))  # fmt: skip
    return params


def _validate_showing_deprecations(config_cls: type[C], raw: dict[str, Any]) -> C:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedNameWarning)
        try:
            config = config_cls.model_validate(raw)
        except ValidationError as exc:
            raise UserError(format_validation_error(exc, leaf_fields(config_cls))) from exc
    for warning in caught:
        if issubclass(warning.category, DeprecatedNameWarning):
            typer.secho(f"warning: {warning.message}", fg=typer.colors.YELLOW, err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return config


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def handle_user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print `UserError`s (bad data, bad settings) as one line and exit 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            fail(str(exc))
        except ValidationError as exc:
            fail(format_validation_error(exc))
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def format_validation_error(exc: ValidationError, leaves: dict[str, Any] | None = None) -> str:
    """One line for every error; a nested setting is named by its flag (`--lr`, not `training.lr`) when
    `leaves` (the config's `leaf_fields`) are known."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if leaves is not None:
            while loc and loc[-1] not in leaves and err["type"] != "extra_forbidden":
                loc.pop()  # a group's own check (e.g. two settings that exclude each other): the whole config
            loc = loc[-1:]
        name = ".".join(loc)
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown setting '{name}'")
        else:
            parts.append(f"{'--' + name.replace('_', '-') if name else 'config'}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)


def _strip_optional(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _cli_option(name: str, annotation: Any, field: Any) -> tuple[Any, dict[str, Any]] | None:
    """(python type, typer.Option kwargs) for a field, or None when it is only settable via --config."""
    inner = _strip_optional(annotation)
    origin = get_origin(inner)
    kwargs: dict[str, Any] = {"help": field.description or ""}
    if origin is Literal:
        return inner, kwargs
    if origin in (list, tuple) and all(
        a in _SCALARS or get_origin(a) is Literal for a in get_args(inner) if a is not Ellipsis
    ):
        kwargs["help"] += " (comma-separated)"
        return str, kwargs
    if inspect.isclass(inner) and issubclass(inner, Enum):
        return inner, kwargs
    if inner in _SCALARS:
        return inner, kwargs
    return None


def _shown_default(field: Any) -> str | None:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, Enum):
        return str(value.value)
    return None if value is None else str(value)


def leaf_fields(config_cls: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Leaf name -> (its path in `config_cls`, its pydantic field), through nested settings models.

    Raises ValueError when two leaves share a name: the flags (`--<leaf>`) must be unambiguous."""
    out: dict[str, tuple[tuple[str, ...], Any]] = {}

    def walk(cls: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for fname, field in cls.model_fields.items():
            inner = nested_model(field.annotation)
            if inner is not None:
                walk(inner, (*prefix, fname))
                continue
            if fname in out:
                raise ValueError(f"{config_cls.__name__}: setting {fname!r} is both {'.'.join(out[fname][0])} and "
                                 f"{'.'.join((*prefix, fname))}: leaf names must be unique (they are the flags)")
            out[fname] = ((*prefix, fname), field)

    walk(config_cls, ())
    return out


def config_command(
    app: typer.Typer,
    name: str,
    config_cls: type[C],
    run: Callable[[C], Any],
    help: str,
) -> None:
    """Register `name` on `app`: parse flags into `config_cls` and call `run(config)`.

    Every leaf of the config, nested settings models included, is a flat flag `--<leaf-name>`."""
    leaves = leaf_fields(config_cls)
    fields: dict[str, Any] = {}
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    params.append(
        inspect.Parameter(
            "config_file",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None,
                typer.Option("--config", help="JSON config (e.g. a run's config.json); flags override it"),
            ],
        )
    )
    for fname, (_, field) in leaves.items():
        option = _cli_option(fname, field.annotation, field)
        if option is None:
            continue
        py_type, kwargs = option
        fields[fname] = py_type
        flag = "--" + fname.replace("_", "-")
        decls = [f"{flag}/--no-{fname.replace('_', '-')}"] if py_type is bool else [flag]
        shown = _shown_default(field)
        params.append(
            inspect.Parameter(
                fname,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    py_type | None, typer.Option(*decls, show_default=shown if shown else False, **kwargs)
                ],
            )
        )

    params.extend(_old_name_options(config_cls, fields))
    old_paths = {old: path for old, (path, _) in old_leaf_names(config_cls).items()}
    list_valued = {f for f, (_, field) in leaves.items() if _is_list(field)}
    list_valued |= {old for old, (_, spec) in old_leaf_names(config_cls).items()
                    if spec.cli_type is None and spec.new in list_valued}

    @handle_user_errors
    def command(ctx: typer.Context, config_file: Path | None = None, **values: Any) -> Any:
        raw: dict[str, Any] = {}
        if config_file is not None:
            try:
                payload = json.loads(Path(config_file).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{config_file}: cannot read config ({exc})") from exc
            raw = _saved_settings(config_cls, payload, config_file)
        given = {}
        for fname, value in values.items():
            source = ctx.get_parameter_source(fname)
            if value is None or getattr(source, "name", "") not in ("COMMANDLINE", "ENVIRONMENT"):
                continue
            if fields.get(fname) is str and fname in list_valued:
                value = [v.strip() for v in str(value).split(",") if v.strip()]
            given[fname] = value
        raw = _set_leaves(raw, {leaves[f][0] if f in leaves else old_paths[f]: v for f, v in given.items()})
        config = _validate_showing_deprecations(config_cls, raw)
        return run(config)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.config_class = config_cls  # type: ignore[attr-defined]  # for docs/examples and their test
    command.__name__ = name.replace("-", "_")
    command.__doc__ = help
    app.command(name, help=help, cls=SemrecCommand)(command)


def _saved_settings(config_cls: type[BaseModel], payload: Any, path: Path) -> dict[str, Any]:
    """A --config file's settings, nested for `config_cls` (flat files of earlier versions too), without
    per-invocation fields (a run's --out, --resume): those come from this command line."""
    if isinstance(config_cls, type) and issubclass(config_cls, JobConfig):
        try:
            settings = config_cls.saved_settings(payload)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from exc
        given = _flat_values(config_payload(payload))
        dropped = sorted(n for n, (_, f) in leaf_fields(config_cls).items()
                         if is_per_invocation(f) and given.get(n) not in (None, False))
        if dropped:
            echo(f"note: {path}: ignoring {', '.join('--' + n.replace('_', '-') for n in dropped)} of the file "
                 "(they belong to one command line: give them as flags)")
        return settings
    settings = payload.get("config", payload) if isinstance(payload, dict) else payload
    if not isinstance(settings, dict):
        raise UserError(f"{path}: a config holds a JSON object of settings")
    return settings


def _flat_values(payload: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in payload.items() if isinstance(payload, dict) else ():
        out.update(_flat_values(value) if isinstance(value, dict) else {key: value})
    return out


def _set_leaves(raw: dict[str, Any], values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    out = dict(raw)
    for path, value in values.items():
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[path[-1]] = value
    return out


def invocation_flags(config: BaseModel) -> list[str]:
    """The command-line flags of `config`'s per-invocation settings (`--out`, `--resume`, ...): what a saved
    config file does not hold, for running `semrec <command> --config FILE` on it."""
    flags: list[str] = []
    for fname, (path, field) in leaf_fields(type(config)).items():
        if not is_per_invocation(field):
            continue
        value: Any = config
        for part in path:
            value = getattr(value, part)
        if value is None or value == field.get_default(call_default_factory=True):
            continue
        flag = "--" + fname.replace("_", "-")
        flags += [flag] if value is True else [f"--no-{fname.replace('_', '-')}"] if value is False else [flag, str(value)]
    return flags


def _is_list(field: Any) -> bool:
    return get_origin(_strip_optional(field.annotation)) in (list, tuple)


def echo(message: str = "") -> None:
    """Human-readable progress goes to stderr so stdout stays parseable."""
    print(message, file=sys.stderr, flush=True)
