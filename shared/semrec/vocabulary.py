"""One vocabulary for the flags of every `semrec` command and the keys of their config files.

A flag is its config field's name with dashes (`max_train_minutes` -> `--max-train-minutes`). Each concept
below has one spelling; a command that has the concept spells it so, alone or after a prefix that says
whose it is (`stage1_max_train_minutes`, `sft_batch_size`). The synonyms are the spellings it must not take
(they were in use once; `tests/unit/cli/test_vocabulary.py` walks every command against this list).

A renamed field keeps its old name as a deprecated alias: a config class lists `old_names` and accepts them
(from a saved config.json, from Python) with a `DeprecatedNameWarning`; the CLI adds each as a hidden flag.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, model_validator


@dataclass(frozen=True)
class Concept:
    name: str  # the field name; the flag is --name-with-dashes
    meaning: str
    synonyms: tuple[str, ...] = ()


VOCABULARY: tuple[Concept, ...] = (
    Concept("out", "the directory a command writes its artifacts into (a run directory, a dataset folder)",
            ("out_dir", "output_dir", "outdir", "workdir", "work_dir", "run_dir")),
    Concept("results", "a results JSON file (written, or appended to)", ("results_file", "results_json", "json_out")),
    Concept("results_dir", "a directory that receives results JSON files", ("results_folder",)),
    Concept("bundle", "a serving bundle directory (encoder.onnx, items.npz, metadata.json)", ("bundle_dir",)),
    Concept("run", "a finished run directory to read", ()),
    Concept("data", "a dataset folder or synthetic spec", ("dataset", "data_dir", "data_path")),
    Concept("max_train_minutes", "wall-clock training budget (minutes)",
            ("time_budget_min", "budget_min", "budget_minutes", "time_budget", "max_minutes",
             "max_train_min")),
    Concept("max_len", "how many of a history's newest items a model sees",
            ("max_seq_len", "max_length", "seq_len", "max_seq_length")),
    Concept("history_cap", "keep only each user's newest N interactions", ("max_history_len",)),
    Concept("threads", "CPU threads of the compute (torch, BLAS, ONNX Runtime)",
            ("num_threads", "n_threads", "ort_threads", "torch_threads", "cpu_threads")),
    Concept("precision", "numeric precision of training / inference: auto, bf16 or fp32", ("bf16", "dtype_autocast")),
    Concept("output_format", "what a command prints: a table (for people) or JSON (for programs)",
            ("json_output", "output", "print_json", "json")),
    Concept("k", "items per recommendation", ("top_k", "topk", "n_recommendations")),
    Concept("slo_p99_ms", "p99 latency objective (milliseconds)", ("slo_ms", "p99_slo_ms", "slo")),
    Concept("seed", "random seed", ("random_seed",)),
)

# Units end a name: durations in seconds `_s`, milliseconds `_ms`, minutes `_minutes`; sizes `_mib`.
UNIT_SUFFIXES: dict[str, str] = {
    "_sec": "_s", "_secs": "_s", "_seconds": "_s", "_min": "_minutes", "_mins": "_minutes", "_minute": "_minutes",
    "_mb": "_mib", "_msec": "_ms",
}  # fmt: skip

CONCEPTS: dict[str, Concept] = {c.name: c for c in VOCABULARY}
SYNONYMS: dict[str, str] = {s: c.name for c in VOCABULARY for s in c.synonyms}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def spelling_problems(name: str) -> list[str]:
    """Why a field name breaks the vocabulary (empty when it does not)."""
    problems = []
    for synonym, canonical in SYNONYMS.items():
        if name == synonym or name.endswith("_" + synonym):
            better = canonical if name == synonym else name[: -len(synonym)] + canonical
            problems.append(f"{flag(name)} spells '{canonical}' as '{synonym}': use {flag(better)}")
    for suffix, unit in UNIT_SUFFIXES.items():
        if name.endswith(suffix):
            problems.append(f"{flag(name)}: write the unit as '{unit}', not '{suffix}'")
    return problems


# ------------------------------------------------------------------------------------------ deprecated names


class DeprecatedNameWarning(FutureWarning):
    """An old spelling of a flag / config key was used; it still works, and names its replacement."""


@dataclass(frozen=True)
class OldName:
    """A field's former name. `convert` maps the old value to the new fields (for a change of type, e.g.
    `--bf16/--no-bf16` -> `--precision`); `cli_type` is the old flag's type when it differs from the new one's."""

    new: str
    convert: Callable[[Any], dict[str, Any]] | None = None
    cli_type: Any = None

    def values(self, value: Any) -> dict[str, Any]:
        return self.convert(value) if self.convert is not None else {self.new: value}


def old_names_of(cls: type) -> dict[str, OldName]:
    """The old names a config class accepts (its own and its bases'), minus any that is a field again."""
    merged: dict[str, OldName] = {}
    for klass in reversed(cls.__mro__):
        for old, spec in klass.__dict__.get("old_names", {}).items():
            merged[old] = spec if isinstance(spec, OldName) else OldName(spec)
    fields = getattr(cls, "model_fields", {})
    return {old: spec for old, spec in merged.items() if old not in fields}


def accepted_keys(cls: type) -> set[str]:
    """The keys `cls` takes: its fields and their old names (to filter a saved config without losing a setting
    that was saved under its old name)."""
    return set(getattr(cls, "model_fields", {})) | set(old_names_of(cls))


def deprecation_message(old: str, spec: OldName) -> str:
    return f"{flag(old)} (config key '{old}') is deprecated: use {flag(spec.new)} ('{spec.new}')"


def rename_old_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the old names of `cls` replaced by the new ones, one warning per old name used."""
    olds = old_names_of(cls)
    used = [key for key in data if key in olds]
    if not used:
        return data
    data = dict(data)
    for old in used:
        spec = olds[old]
        for key, value in spec.values(data.pop(old)).items():
            if key in data:
                raise ValueError(f"{flag(old)} is the old name of {flag(key)}: give only {flag(key)}")
            data[key] = value
        warnings.warn(deprecation_message(old, spec), DeprecatedNameWarning, stacklevel=4)
    return data


class AcceptsOldNames(BaseModel):
    """Mixin of a config whose fields were renamed: `old_names = {"old_field": "new_field" | OldName(...)}`."""

    old_names: ClassVar[dict[str, str | OldName]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_old_names(cls, data: Any) -> Any:
        return rename_old_keys(cls, data) if isinstance(data, dict) else data


def names_in(fields: Iterable[str]) -> set[str]:
    """The vocabulary concepts among field names (as themselves or after a prefix)."""
    return {c for name in fields for c in CONCEPTS if name == c or name.endswith("_" + c)}
