"""Typed job configs: one pydantic model per job is the single source of its CLI flags and its config.

Every config forbids unknown keys (a typo is an error, never silently ignored) and is saved as JSON
next to every artifact the job writes, so a model and the settings that made it travel together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

CONFIG_FILENAME = "config.json"


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class JobConfig(StrictModel):
    """A job's settings. `save` / `load` round-trip exactly."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def save(self, directory_or_file: str | Path, parts: dict[str, Any] | None = None) -> Path:
        """`parts`: what the job plugged in beside its settings (e.g. a trainer's item layer and extra loss, as
        "module:Class"), saved as `parts` next to `config` so the file says how the artifact was built."""
        path = Path(directory_or_file)
        if path.suffix != ".json":
            path = path / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"kind": type(self).__name__, "config": self.to_dict()}
        if parts:
            payload["parts"] = parts
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, directory_or_file: str | Path) -> Self:
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / CONFIG_FILENAME
        payload = json.loads(path.read_text())
        if isinstance(payload, dict) and "config" in payload and "kind" in payload:
            payload = payload["config"]
        return cls.model_validate(payload)
