"""Typed job configs: one pydantic model per job is the single source of its CLI flags and its config.

Every config forbids unknown keys (a typo is an error, never silently ignored) and is saved as JSON
next to every artifact the job writes, so a model and the settings that made it travel together.

Nesting: a config may group its settings into one settings model per concern (`SeqRecConfig.model`,
`.training`, ...) and compose other configs (a stage-2 config holds a `seqrec` part beside its method's
settings). The leaf names are unique across a config, so a leaf is addressed by its name alone: the CLI flag
is `--lr` whatever group holds it, flat input (`SeqRecConfig(lr=1e-3)`, or a flat config.json of an earlier
version) is routed to its group on validation, and a leaf reads flat too (`config.lr` is
`config.training.lr`).

Per-invocation fields (`invocation_field`: the run directory, `--resume`, a results file to append to) belong
to one command line: they are never saved, and are dropped when a saved config is loaded, so a saved run
re-runs into a new `--out`.
"""

from __future__ import annotations

import copy
import inspect
import json
import types
from functools import cache
from pathlib import Path
from typing import Any, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

from semrec.vocabulary import old_names_of

CONFIG_FILENAME = "config.json"
PER_INVOCATION = "per_invocation"


def invocation_field(default: Any, description: str) -> Any:
    """A field that belongs to one invocation (never saved with the run, dropped when a saved config loads)."""
    return Field(default, description=description, json_schema_extra={PER_INVOCATION: True})


def is_per_invocation(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(PER_INVOCATION))


def nested_model(annotation: Any) -> type[StrictModel] | None:
    """The settings model a field holds (None for a leaf)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if inspect.isclass(annotation) and issubclass(annotation, StrictModel):
        return annotation
    return None


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated, nested groups are addressed
    by leaf name (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @classmethod
    def groups(cls) -> dict[str, type[StrictModel]]:
        """Field name -> settings model, for the fields that hold one."""
        return _groups(cls)

    @classmethod
    def leaf_paths(cls) -> dict[str, tuple[str, ...]]:
        """Leaf name -> its path from this model (("training", "lr")); ValueError when two leaves share a name."""
        return _leaf_paths(cls)

    @classmethod
    def nest(cls, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` with every flat leaf moved into its group (recursively); a leaf given both flat and inside
        its group is an error. Unknown keys are left where they are (validation rejects them)."""
        groups = cls.groups()
        if not groups or not isinstance(payload, dict):
            return payload
        owner = {leaf: path[0] for leaf, path in cls.leaf_paths().items() if len(path) > 1}
        owner |= {old: path[0] for old, path in _old_name_paths(cls).items() if old not in owner}
        out: dict[str, Any] = {k: v for k, v in payload.items() if k in cls.model_fields or k not in owner}
        for key, value in payload.items():
            if key in cls.model_fields or key not in owner:
                continue
            group = out.setdefault(owner[key], {})
            if isinstance(group, BaseModel):  # a built settings object: what it was given, plus this leaf
                group = group.model_dump(exclude_unset=True)
            if not isinstance(group, dict):
                continue  # not settings at all: validation reports it
            if key in _flatten(groups[owner[key]], group):
                raise ValueError(f"setting {key!r} is given twice (flat and inside {owner[key]!r})")
            out[owner[key]] = {**group, key: value}
        for name, model in groups.items():
            if isinstance(out.get(name), dict):
                out[name] = model.nest(out[name])
        return out

    @model_validator(mode="before")
    @classmethod
    def _route_flat_leaves(cls, data: Any) -> Any:
        return cls.nest(data) if isinstance(data, dict) and cls.groups() else data

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            path = _leaf_paths(type(self)).get(name) if not name.startswith("_") else None
            if path is None or len(path) == 1:
                raise
            value: Any = self
            for part in path:
                value = getattr(value, part)
            return value

    def flat(self) -> dict[str, Any]:
        """Every leaf by name (JSON values), e.g. for a results row's `config`."""
        return _flatten(type(self), self.model_dump(mode="json"))


@cache
def _groups(cls: type[StrictModel]) -> dict[str, type[StrictModel]]:
    return {name: m for name, f in cls.model_fields.items() if (m := nested_model(f.annotation)) is not None}


@cache
def _leaf_paths(cls: type[StrictModel]) -> dict[str, tuple[str, ...]]:
    paths: dict[str, tuple[str, ...]] = {}
    groups = _groups(cls)
    for name in cls.model_fields:
        found = {name: (name,)} if name not in groups else {k: (name, *p) for k, p in _leaf_paths(groups[name]).items()}
        for leaf, path in found.items():
            if leaf in paths or (leaf in groups and path != (leaf,)):
                raise ValueError(f"{cls.__name__}: setting {leaf!r} is both {'.'.join(paths.get(leaf, (leaf,)))} and "
                                 f"{'.'.join(path)} (leaf names must be unique across a config)")
            paths[leaf] = path
    return paths


@cache
def _old_name_paths(cls: type[StrictModel]) -> dict[str, tuple[str, ...]]:
    """Old name of a renamed leaf inside a group -> (the groups down to the one that renames it, the old name),
    so a flat input under a leaf's old name is routed to the group that accepts it."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, model in _groups(cls).items():
        for old in old_names_of(model):
            paths.setdefault(old, (name, old))
        for old, path in _old_name_paths(model).items():
            paths.setdefault(old, (name, *path))
    return paths


def old_name_paths(cls: type[StrictModel]) -> dict[str, tuple[str, ...]]:
    """`_old_name_paths` plus the class's own old names (path of length one)."""
    return {**{old: (old,) for old in old_names_of(cls)}, **_old_name_paths(cls)}


def _flatten(cls: type[StrictModel], payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups = _groups(cls)
    for key, value in payload.items():
        if key in groups and isinstance(value, dict):
            out.update(_flatten(groups[key], value))
        else:
            out[key] = value
    return out


def drop_per_invocation(cls: type[StrictModel], payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (flat, nested or mixed) without the per-invocation fields of `cls`."""
    if not isinstance(payload, dict):
        return payload
    fields, groups = cls.model_fields, _groups(cls)
    transient = {leaf for leaf, path in _leaf_paths(cls).items() if _is_transient(cls, path)}
    out = {}
    for key, value in payload.items():
        if key in groups and isinstance(value, dict):
            out[key] = drop_per_invocation(groups[key], value)
        elif key not in transient and not (key in fields and is_per_invocation(fields[key])):
            out[key] = value
    return out


def _is_transient(cls: type[StrictModel], path: tuple[str, ...]) -> bool:
    model: type[StrictModel] = cls
    for part in path[:-1]:
        model = _groups(model)[part]
    return is_per_invocation(model.model_fields[path[-1]])


def config_payload(payload: Any) -> Any:
    """The settings of a saved config file (`{"kind", "config", ...}`) or of a bare settings dict."""
    if isinstance(payload, dict) and isinstance(payload.get("config"), dict):
        return payload["config"]
    return payload


def read_config_file(directory_or_file: str | Path) -> dict[str, Any]:
    """The whole saved file (`kind`, `config`, `parts`) of a run directory or a config file."""
    path = Path(directory_or_file)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a JSON object")
    return payload


def read_flat_config(directory_or_file: str | Path) -> dict[str, Any]:
    """A saved config's settings by leaf name, whatever its layout (nested, or flat from earlier versions):
    for readers that only need a few values (`data`, `backbone`, `init`, ...) without knowing its class."""
    settings = config_payload(read_config_file(directory_or_file))
    return _flatten_any(settings) if isinstance(settings, dict) else {}


def _flatten_any(payload: dict[str, Any]) -> dict[str, Any]:
    """Flatten by shape: every dict value that is a group of settings is opened (configs have no dict leaves
    except groups)."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            out.update(_flatten_any(value))
        else:
            out[key] = value
    return out


class JobConfig(StrictModel):
    """A job's settings. `save` / `load` round-trip exactly (per-invocation fields aside)."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def saved_dict(self) -> dict[str, Any]:
        """What `save` writes: the nested settings without the per-invocation fields."""
        return drop_per_invocation(type(self), self.to_dict())

    def save(self, directory_or_file: str | Path, parts: dict[str, Any] | None = None) -> Path:
        """`parts`: what the job plugged in beside its settings (e.g. a trainer's item layer and extra loss),
        saved as `parts` next to `config` so the file says how the artifact was built."""
        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"kind": type(self).__name__, "config": self.saved_dict()}
        if parts:
            payload["parts"] = parts
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def saved_settings(cls, payload: Any) -> dict[str, Any]:
        """A saved file's settings, nested for `cls` (flat files of earlier versions are migrated), without the
        per-invocation fields an earlier version saved."""
        settings = config_payload(payload)
        if not isinstance(settings, dict):
            raise ValueError("a config holds a JSON object of settings")
        return cls.nest(drop_per_invocation(cls, settings))

    @classmethod
    def load(cls, directory_or_file: str | Path, **overrides: Any) -> Self:
        """A saved config; `overrides` (by leaf name) set what a saved config does not hold: a required
        per-invocation field (a run's `out`) must be given here."""
        settings = cls.saved_settings(read_config_file(directory_or_file))
        return cls.model_validate(with_leaves(cls, settings, overrides))


def with_leaves(cls: type[StrictModel], settings: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`settings` (nested for `cls`) with each of `values` (by leaf name) set at its leaf's path."""
    paths = cls.leaf_paths()
    out = copy.deepcopy(settings)
    for leaf, value in values.items():
        node = out
        path = paths.get(leaf, (leaf,))
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out
