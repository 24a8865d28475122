"""SAID stage 1 on the tiny test Llama: frozen LM, sparse table updates, loss falls, generation accuracy,
checkpoint/resume, --only-new, the item table and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from semrec.errors import UserError
from semrec.item_table import ItemTable
from semrec_worker.data.dataset import SequenceDataset
from semrec_worker.lm import load_language_model
from semrec_worker.methods.said import model as said
from semrec_worker.methods.said.generation import word_accuracy
from semrec_worker.methods.said.settings import TrainSAIDConfig
from semrec_worker.methods.said.trainer import SAIDTrainer, train_said

torch.set_num_threads(1)  # the CI machine is shared; one thread avoids oversubscription stalls


def small_config(tmp_path, **overrides) -> TrainSAIDConfig:
    settings = dict(
        data="synthetic:users=300,items=200,avg_len=10,seed=1", llm="tiny", out=tmp_path / "run", epochs=1,
        max_caption_tokens=8, eval_items=4, max_items=16, batch_size=8, threads=1, projector="table",
    )  # fmt: skip
    return TrainSAIDConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tiny_lm():
    return load_language_model("tiny")


def test_word_accuracy_hand_cases():
    assert word_accuracy("title: red glue, brand: acme", "title: red glue, brand: acme") == 1.0
    assert word_accuracy("title: red glue", "title: blue glue") == pytest.approx(2 / 3)
    assert word_accuracy("title: red glue", "title: red") == pytest.approx(2 / 3)  # truncation costs
    assert word_accuracy("title: red", "title: red glue glue") == pytest.approx(2 / 4)  # rambling costs
    assert word_accuracy("", "") == 1.0


def test_lm_stays_frozen_and_only_batch_rows_change(tmp_path, tiny_synthetic, tiny_lm):
    trainer = SAIDTrainer(small_config(tmp_path), tmp_path, tiny_synthetic, tiny_lm)
    lm_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rows_before = trainer.projector.rows.weight.detach().clone()
    batch = np.array([0, 3, 5])
    trainer.step(batch)
    assert all(not p.requires_grad for p in trainer.model.parameters())
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, lm_before[key]), key
    rows_after = trainer.projector.rows.weight.detach()
    changed = (rows_after != rows_before).any(dim=1)
    assert changed[batch].all()
    assert not changed[np.setdiff1d(np.arange(len(changed)), batch)].any()  # sparse updates: others untouched


@pytest.mark.parametrize("projector", ["table", "amortised"])
def test_loss_falls_on_a_few_items(tmp_path, tiny_synthetic, tiny_lm, projector):
    config = small_config(tmp_path, projector=projector, lr_rows=5e-2, lr_projector=5e-3)
    trainer = SAIDTrainer(config, tmp_path, tiny_synthetic, tiny_lm)
    batch = np.arange(8)
    losses = [trainer.step(batch)[0] for _ in range(30)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05  # a random tiny LM moves slowly, but it moves


def test_caption_loss_counts_caption_tokens_only(tiny_lm):
    model = said.freeze(tiny_lm.model)
    prefix = torch.zeros(2, 3, tiny_lm.hidden_size)
    captions = torch.tensor([[5, 6, 7], [8, 9, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    instruction = torch.zeros(0, tiny_lm.hidden_size)
    loss, _ = said.caption_loss(model, prefix, instruction, captions, mask)
    changed = captions.clone()
    changed[1, 2] = 42  # a padded position: must not change the loss
    loss_padded, _ = said.caption_loss(model, prefix, instruction, changed, mask)
    assert torch.allclose(loss, loss_padded)


@pytest.mark.slow
def test_train_writes_table_metrics_and_reports(tmp_path, tiny_synthetic, tiny_lm):
    config = small_config(tmp_path, projector="amortised", epochs=2)
    table = train_said(config, dataset=tiny_synthetic, lm=tiny_lm)
    run = config.out
    assert len(table) == tiny_synthetic.n_items and table.dim == config.virtual_tokens * tiny_lm.hidden_size
    meta = ItemTable.load(run).metadata
    assert meta["method"] == "said" and meta["lm"] == "tiny"
    assert meta["dataset"] == tiny_synthetic.name and meta["dataset_fingerprint"] == tiny_synthetic.fingerprint
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics["epochs"]] == [0.0, 1.0, 2.0]
    assert (run / "accuracy.png").stat().st_size > 0
    # the reported accuracy is the mean word accuracy (checked by hand above) of the examples it lists
    lines = (run / "generation_examples.md").read_text().splitlines()
    rows = [line for line in lines[lines.index("|---|---|---|") + 1 :] if line.startswith("| ")]
    assert len(rows) == config.eval_items
    pairs = [[cell.strip() for cell in row.strip("|").split(" | ")][:2] for row in rows]
    pairs = [["" if c == "(empty)" else c for c in pair] for pair in pairs]
    assert all(ref for ref, _ in pairs)  # real captions, not an empty table
    assert meta["accuracy"] == pytest.approx(np.mean([word_accuracy(r, g) for r, g in pairs]), abs=1e-4)


@pytest.mark.slow
def test_resume_continues_and_refuses_model_changes(tmp_path, tiny_synthetic, tiny_lm):
    config = small_config(tmp_path, epochs=1)
    first = train_said(config, dataset=tiny_synthetic, lm=tiny_lm)
    resumed = train_said(TrainSAIDConfig(resume_from=config.out, epochs=2), dataset=tiny_synthetic, lm=tiny_lm)
    epochs = [m["epoch"] for m in json.loads((config.out / "metrics.json").read_text())["epochs"]]
    assert epochs == [0.0, 1.0, 2.0]
    assert not np.allclose(first.vectors[:16], resumed.vectors[:16])
    np.testing.assert_array_equal(first.vectors[16:], resumed.vectors[16:])  # untrained rows keep their init
    with pytest.raises(UserError, match="--virtual-tokens"):
        train_said(TrainSAIDConfig(resume_from=config.out, virtual_tokens=2), dataset=tiny_synthetic, lm=tiny_lm)


@pytest.mark.parametrize("projector", ["table", "amortised"])
def test_only_new_keeps_existing_rows_fixed(tmp_path, tiny_synthetic, tiny_lm, projector):
    n_old = tiny_synthetic.n_items - 5
    old_dataset = SequenceDataset(
        "old", tiny_synthetic.item_ids[:n_old], tiny_synthetic.items[:n_old], tiny_synthetic.user_ids,
        tiny_synthetic.sequences,
    )  # fmt: skip
    config = small_config(tmp_path, projector=projector, max_items=None, epochs=1)
    old_table = train_said(config, dataset=old_dataset, lm=tiny_lm)
    new_table = train_said(
        TrainSAIDConfig(resume_from=config.out, only_new=True, epochs=2), dataset=tiny_synthetic, lm=tiny_lm
    )
    assert len(new_table) == tiny_synthetic.n_items
    old_rows, missing = new_table.aligned(old_table.ids)
    assert not missing
    np.testing.assert_allclose(old_rows, old_table.vectors, rtol=0, atol=1e-6)
    metrics = json.loads((config.out / "metrics.json").read_text())["epochs"]
    assert [m["phase"] for m in metrics].count("only_new") == 3  # before + 2 epochs


def test_only_new_needs_resume(tmp_path):
    with pytest.raises(UserError, match="--resume"):
        train_said(small_config(tmp_path, only_new=True))


@pytest.mark.slow
def test_cli_train_said_on_tiny_lm(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "semrec.cli", "train", "said", "--llm", "tiny", "--data",
         "synthetic:users=60,items=30,seed=3", "--epochs", "1", "--max-caption-tokens", "6", "--eval-items", "2",
         "--max-items", "8", "--threads", "1", "--out", str(tmp_path / "cli")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert ItemTable.load(tmp_path / "cli").metadata["method"] == "said"
    bad = subprocess.run(
        [sys.executable, "-m", "semrec.cli", "train", "said", "--llm", "tiny", "--only-new"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "--resume" in bad.stderr and "Traceback" not in bad.stderr


def test_stage2_summary_compares_against_random_init():
    from semrec.results import RunResult
    from semrec_worker.methods.said.stage2 import summarise

    def run(init, freeze, seed, ndcg):
        return RunResult(backbone="gru4rec", protocol="full", seed=seed, metrics={"ndcg@10": ndcg, "recall@10": 0.1,
                         "mrr": 0.05}, config={"init": init, "freeze_items": freeze})  # fmt: skip

    table = summarise([run("random", False, 0, 0.10), run("random", False, 1, 0.10), run("runs/s1/item_table.npz", False, 0, 0.11),
                       run("runs/s1", True, 0, 0.09)])  # fmt: skip
    assert "| gru4rec | s1 fine-tuned | 0 |" in table and "| gru4rec | s1 frozen | 0 |" in table and "+10.0%" in table and "-10.0%" in table
    assert "| gru4rec | random | 0,1 |" in table


def test_length_buckets_cover_every_row_once_with_little_padding():
    from semrec_worker.methods.said.batches import length_buckets

    lengths = np.random.default_rng(0).integers(3, 40, size=100)
    rows = np.arange(100)
    batches = length_buckets(lengths, rows, 8, seed=1)
    assert sorted(np.concatenate(batches).tolist()) == rows.tolist()
    padding = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)
    naive = sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in np.array_split(rows, len(batches)))
    assert padding < naive / 3
    assert [b.tolist() for b in batches] != [b.tolist() for b in length_buckets(lengths, rows, 8, seed=2)]


def test_auto_precision_is_bf16_only_where_the_device_has_native_bf16(monkeypatch):
    from semrec_worker.core import runtime
    from semrec_worker.core.runtime import precision_of, resolve_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(runtime, "native_bf16", lambda device: str(device).startswith("cuda"))
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: str(device) == "cpu")
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    assert (precision_of(None), precision_of(True), precision_of(False)) == ("auto", "bf16", "fp32")
