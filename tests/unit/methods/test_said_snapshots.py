"""`semrec train said --snapshot-tables`: the table at step 0 and at every evaluation, kept over a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from semrec.item_table import ItemTable
from semrec_worker.lm import load_language_model
from semrec_worker.methods.said import model as said
from semrec_worker.methods.said.settings import TrainSAIDConfig
from semrec_worker.methods.said.snapshots import SNAPSHOTS, drop_after, read_index, write_snapshot
from semrec_worker.methods.said.trainer import SAIDTrainer, train_said

torch.set_num_threads(1)


def small_config(tmp_path, **overrides) -> TrainSAIDConfig:
    settings = dict(
        data="synthetic:users=300,items=200,avg_len=10,seed=1", llm="tiny", out=tmp_path / "run", epochs=2,
        max_caption_tokens=8, eval_items=4, max_items=16, batch_size=8, threads=1, snapshot_tables=True,
    )  # fmt: skip
    return TrainSAIDConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tiny_lm():
    return load_language_model("tiny")


@pytest.mark.parametrize("projector", ["table", "amortised"])
def test_snapshots_start_at_the_mean_token_init_and_follow_every_evaluation(tmp_path, tiny_synthetic, tiny_lm,
                                                                            projector):
    config = small_config(tmp_path, projector=projector)
    final = train_said(config, dataset=tiny_synthetic, lm=tiny_lm)
    entries = read_index(config.out)
    metrics = json.loads((config.out / "metrics.json").read_text())["epochs"]
    steps = [e["step"] for e in entries]
    assert steps[0] == 0 and steps == sorted(set(steps)) and len(entries) == len(metrics) == 3  # step 0 + 2 epochs
    assert [e["epoch"] for e in entries] == [m["epoch"] for m in metrics]
    assert [e["word_accuracy"] for e in entries] == [m["word_accuracy"] for m in metrics]
    assert [e["items_seen"] for e in entries] == [0, 16, 32]  # max_items=16 per epoch
    # step 0: each item's row is its caption's mean token embedding, repeated over the K virtual tokens
    start = ItemTable.load(config.out / SNAPSHOTS / entries[0]["path"])
    trainer = SAIDTrainer(config, tmp_path / "probe", tiny_synthetic, tiny_lm)
    mean = said.caption_features(trainer.model, trainer.captions.ids).numpy()
    assert start.ids == final.ids
    np.testing.assert_allclose(start.vectors, np.tile(mean, (1, config.virtual_tokens)), rtol=1e-5, atol=1e-6)
    assert start.metadata["accuracy"] == entries[0]["word_accuracy"] and start.metadata["method"] == "said"
    # the last snapshot is the run's exported table; the trained rows moved away from the start
    last = ItemTable.load(config.out / SNAPSHOTS / entries[-1]["path"])
    np.testing.assert_array_equal(last.vectors, final.vectors)
    assert not np.allclose(last.vectors[:16], start.vectors[:16])
    if projector == "table":  # sparse rows: items beyond --max-items keep their init (the amortised MLP moves all)
        np.testing.assert_array_equal(last.vectors[16:], start.vectors[16:])


def test_no_snapshots_by_default(tmp_path, tiny_synthetic, tiny_lm):
    config = small_config(tmp_path, snapshot_tables=False, epochs=1)
    train_said(config, dataset=tiny_synthetic, lm=tiny_lm)
    assert not (config.out / SNAPSHOTS).exists() and read_index(config.out) == []


def test_resume_keeps_the_snapshots_already_written(tmp_path, tiny_synthetic, tiny_lm):
    config = small_config(tmp_path, epochs=1)
    train_said(config, dataset=tiny_synthetic, lm=tiny_lm)
    before = read_index(config.out)
    first = {e["step"]: (config.out / SNAPSHOTS / e["path"]).read_bytes() for e in before}
    train_said(TrainSAIDConfig(resume_from=config.out, epochs=2), dataset=tiny_synthetic, lm=tiny_lm)
    after = read_index(config.out)
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert after[-1]["step"] > before[-1]["step"] and after[-1]["epoch"] == 2.0
    assert {e["step"]: (config.out / SNAPSHOTS / e["path"]).read_bytes() for e in before} == first


def test_drop_after_forgets_only_later_snapshots_of_the_phase(tmp_path):
    table = ItemTable(["a", "b"], np.zeros((2, 3), dtype=np.float32), {"method": "said"})
    for phase, step in (("train", 0), ("train", 5), ("train", 9), ("only_new", 9)):
        write_snapshot(tmp_path, table, {"phase": phase, "step": step})
    dropped = drop_after(tmp_path, "train", 5)
    assert [(e["phase"], e["step"]) for e in dropped] == [("train", 9)]
    assert [(e["phase"], e["step"]) for e in read_index(tmp_path)] == [("train", 0), ("train", 5), ("only_new", 9)]
    assert not (tmp_path / SNAPSHOTS / "step9").exists() and (tmp_path / SNAPSHOTS / "only_new-step9").exists()
    write_snapshot(tmp_path, table, {"phase": "train", "step": 5, "epoch": 1.0})  # the same step again: replaced
    assert [e.get("epoch") for e in read_index(tmp_path) if e["step"] == 5 and e["phase"] == "train"] == [1.0]
