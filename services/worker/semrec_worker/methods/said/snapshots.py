"""Item-table snapshots of a SAID stage-1 run: the table as it stands at step 0 and at every evaluation.

Layout (with `semrec train said --snapshot-tables`):

    RUN_DIR/snapshots/step<N>/item_table.npz        the same export as RUN_DIR/item_table.npz, after N steps
    RUN_DIR/snapshots/only_new-step<N>/...          snapshots of an --only-new phase
    RUN_DIR/snapshots/index.json                    [{phase, step, epoch, items_seen, word_accuracy,
                                                      exact_match, path}, ...] in training order

They let stage 2 be trained from each point of stage 1 (`semrec bench said-gain`: the paper's Figure 5,
stage-2 gain against generation accuracy); step 0 is the untrained start (the caption's mean token embedding
with the default `--prefix-init mean`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from semrec.item_table import ItemTable

SNAPSHOTS = "snapshots"
INDEX = "index.json"


def snapshot_name(phase: str, step: int) -> str:
    return f"step{step}" if phase == "train" else f"{phase}-step{step}"


def read_index(run_dir: Path) -> list[dict]:
    """The run's snapshot entries in training order ([] when it has none)."""
    path = Path(run_dir) / SNAPSHOTS / INDEX
    return json.loads(path.read_text())["snapshots"] if path.exists() else []


def _write_index(run_dir: Path, entries: list[dict]) -> None:
    path = Path(run_dir) / SNAPSHOTS / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"snapshots": entries}, indent=2) + "\n")
    tmp.replace(path)


def write_snapshot(run_dir: Path, table: ItemTable, entry: dict) -> Path:
    """Save `table` as the snapshot of `entry` (phase, step, ...) and list it in the index (replacing an entry of
    the same phase and step). Returns the snapshot's directory."""
    name = snapshot_name(entry["phase"], entry["step"])
    out = Path(run_dir) / SNAPSHOTS / name
    out.mkdir(parents=True, exist_ok=True)
    table.save(out / "item_table.npz")
    entries = [e for e in read_index(run_dir) if (e["phase"], e["step"]) != (entry["phase"], entry["step"])]
    _write_index(run_dir, [*entries, {**entry, "path": f"{name}/item_table.npz"}])
    return out


def drop_after(run_dir: Path, phase: str, step: int) -> list[dict]:
    """Forget the snapshots of `phase` taken after `step` (a resume from an older checkpoint retrains those
    steps); earlier ones are kept. Returns the dropped entries."""
    entries = read_index(run_dir)
    dropped = [e for e in entries if e["phase"] == phase and e["step"] > step]
    if not dropped:
        return []
    for entry in dropped:
        shutil.rmtree(Path(run_dir) / SNAPSHOTS / snapshot_name(entry["phase"], entry["step"]), ignore_errors=True)
    _write_index(run_dir, [e for e in entries if e not in dropped])
    return dropped
