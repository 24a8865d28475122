"""Per-backbone recipe defaults: BERT4Rec gets a longer patience when --epochs/--patience are not given, SASRec and
GRU4Rec keep the defaults they had, a saved run records the values it ran with, and the quality grid passes
epochs/patience only when the user gave them (so each backbone of a grid gets its own recipe)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from semrec_worker.experiments import grid
from semrec_worker.experiments.config import QualityConfig
from semrec_worker.training.config import SeqRecConfig, load_seqrec_config
from semrec_worker.training.recipes import BACKBONE_RECIPES

DATA = "synthetic:users=300,items=200,avg_len=10,seed=1"
OLD = Path(__file__).parent / "old_configs"


@pytest.mark.parametrize(("backbone", "epochs", "patience"), [("sasrec", 100, 5), ("gru4rec", 100, 5),
                                                               ("bert4rec", 100, 20)])  # fmt: skip
def test_defaults_per_backbone_and_given_values_win(backbone: str, epochs: int, patience: int):
    config = SeqRecConfig(backbone=backbone, out="unused")
    assert (config.epochs, config.patience) == (epochs, patience)  # SASRec/GRU4Rec: the defaults they always had
    assert (BACKBONE_RECIPES[backbone].epochs, BACKBONE_RECIPES[backbone].patience) == (epochs, patience)
    given = SeqRecConfig(backbone=backbone, epochs=7, patience=2, out="unused")
    assert (given.epochs, given.patience) == (7, 2)
    half = SeqRecConfig(backbone=backbone, patience=3, out="unused")
    assert (half.epochs, half.patience) == (epochs, 3)


def test_the_saved_config_records_the_resolved_values(tmp_path: Path):
    SeqRecConfig(backbone="bert4rec", data=DATA, out=tmp_path).save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["config"]["optimisation"]
    assert (saved["epochs"], saved["patience"]) == (100, 20)
    assert load_seqrec_config(tmp_path).patience == 20
    # a run saved with other values rebuilds with them, whatever the recipe table says
    SeqRecConfig(backbone="bert4rec", data=DATA, patience=4, out=tmp_path).save(tmp_path)
    assert load_seqrec_config(tmp_path).patience == 4
    old = load_seqrec_config(OLD / "seqrec.json")  # a flat config.json of an earlier version (sasrec)
    assert (old.epochs, old.patience) == (2, 5)


def test_the_grid_passes_epochs_and_patience_only_when_given(tmp_path: Path):
    def schedules(**given) -> dict[str, tuple[int, int]]:
        config = QualityConfig(data=DATA, methods=["random"], backbones=["sasrec", "gru4rec", "bert4rec"], seeds=[0],
                               runs_dir=tmp_path, **given)  # fmt: skip
        out = {}
        for cell in grid.plan(config, tmp_path):
            command, job = grid.backbone_job(cell, config, tmp_path)
            assert command == "seqrec"
            out[cell.backbone] = (job.epochs, job.patience)
        return out

    assert schedules() == {"sasrec": (100, 5), "gru4rec": (100, 5), "bert4rec": (100, 20)}
    assert schedules(epochs=20, patience=3) == {b: (20, 3) for b in ("sasrec", "gru4rec", "bert4rec")}
